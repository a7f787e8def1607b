"""`lpm zoo`: list the fitted latency predictors (the user's zoo, then the bundled one)."""

from __future__ import annotations

import argparse
import json

from lpm_zoo.cli import Command
from lpm_zoo.errors import printable
from lpm_zoo.hardware import describe


def _configure_zoo(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list"], help="list: the fitted predictors (user zoo first, then bundled)")
    p.add_argument("--json", action="store_true", help="one JSON object per predictor")


_ZOO_COLUMN_MAX = 40  # a longer name or device is clipped in the table (--json has it whole)


def _run_zoo(args: argparse.Namespace) -> int:


    from lpm_zoo.predictors.zoo import zoo_dirs, zoo_table

    rows = zoo_table()
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    if not rows:
        print(f"no fitted predictors (looked in {', '.join(str(d) for _, d in zoo_dirs())}); "
              "make one with lpm profile ... then lpm fit ...")
        return 0
    head = ("name", "type", "backend", "device", "profile", "train", "MRE %", "tau")
    table, broken = [], []
    for r in rows:
        if "error" in r:
            broken.append(printable(f"{r['name']} unusable: {r['error']}  {r['where']}"))
            continue
        m = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        mre, tau = (f"{m[k]:{f}}" if isinstance(m.get(k), (int, float)) else "-"
                    for k, f in (("mre_pct", ".2f"), ("kendall_tau", ".3f")))
        cols = [printable(str(r.get(k))[:_ZOO_COLUMN_MAX])
                for k in ("name", "type", "backend", "device", "profile", "train_size")]
        table.append((*cols, mre, tau, printable(f"{r['where']:<8} {describe(r.get('hardware'))}")))
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(head)]  # columns fit their text
    right = {5, 6, 7}  # numbers align right
    for line in [(*head, "where    hardware"), *table]:
        cells = [f"{c:>{w}}" if i in right else f"{c:<{w}}" for i, (c, w) in enumerate(zip(line, widths))]
        print(" ".join(cells) + "  " + line[-1])
    for line in broken:
        print(line)
    return 0


# --- lpm predict ---------------------------------------------------------------------------------------


command = Command(help="list the fitted latency predictors", configure=_configure_zoo, run=_run_zoo)
