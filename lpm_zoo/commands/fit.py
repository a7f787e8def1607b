"""`lpm fit`: fit a latency predictor on measured architectures and save it in the zoo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lpm_zoo.cli import Command
from lpm_zoo.commands.predictor_data import data_args, load_data, params_for, resolve_device
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.hardware import check_stated_rows


def _configure_fit(p: argparse.ArgumentParser) -> None:
    data_args(p)
    p.add_argument("--predictor", default="mlp", metavar="TYPE", help="predictor type (mlp, ridge, rf, gbrt, knn, lut, flops, ...)")
    p.add_argument("--name", default=None, help="name in the zoo (default: BACKEND-DEVICE)")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="training architectures (default: all left after the held-out set)")
    p.add_argument("--zoo-dir", default=None, metavar="DIR",
                   help="zoo directory to write into (default: $LPM_ZOO_HOME or ~/.cache/lpm_zoo/zoo)")
    p.add_argument("--json", action="store_true", help="print the saved metadata as JSON")


def _run_fit(args: argparse.Namespace) -> int:


    from lpm_zoo.evaluation.metrics import default_test_size, metrics, relative_spread_pct, split_indices
    from lpm_zoo.predictors import create_predictor, predictor_class, save_predictor, user_zoo_dir
    from lpm_zoo.predictors.zoo import check_new_name

    predictor_class(args.predictor).check_implemented(saving=True)  # a plugin's type: before the data is read
    name = args.name or f"{args.backend}-{resolve_device(args)}"
    if not name or "/" in name or name.startswith("."):
        raise LpmError(f"--name {clip(name)}: a predictor name is a plain word like ort-cpu")
    params = params_for(args)(args.predictor)
    zoo = Path(args.zoo_dir).expanduser() if args.zoo_dir else user_zoo_dir()
    check_new_name(name, zoo, "--name" if args.name else "the default name (BACKEND-DEVICE)")
    data = load_data(args)
    check_stated_rows(data.stated, f"lpm fit: {clip(args.db)}")
    n = len(data)
    test_size = default_test_size(n) if args.test_size is None else args.test_size
    pool, test = split_indices(n, test_size, args.seed)
    k = len(pool) if args.train_size is None else args.train_size
    if not 2 <= k <= len(pool):
        raise LpmError(f"--train-size {k}: between 2 and {len(pool)} architectures are available"
                       f" ({n} measured, {test_size} held out)")
    if "progress" in predictor_class(args.predictor)._param_names() and sys.stderr.isatty():
        params.setdefault("progress", True)
    p = create_predictor(args.predictor, **params)
    idx = pool[:k]
    print(f"fitting {args.predictor} on {k} architectures of {args.backend}/{args.device}/{args.profile}"
          f" ({test_size} held out)", file=sys.stderr)
    t0 = time.perf_counter()
    p.fit((data.ops[idx], data.inputs[idx]), data.latency_ms[idx])
    fit_s = time.perf_counter() - t0
    meta: dict[str, Any] = {"name": name, "backend": args.backend, "device": args.device, "profile": args.profile,
                            "fit_seconds": round(fit_s, 3), "split": {"seed": args.seed, "test_size": test_size},
                            "run_spread_pct": relative_spread_pct(data.latency_ms, data.spread_ms),
                            "data_repeatability": data.repeatability, "data_statistic": data.statistic,
                            "hardware": data.hardware, "runtime": data.runtime}
    if data.runtime_mixed:
        meta["runtime_mixed"] = data.runtime_mixed
        print(f"warning: the rows differ in runtime settings ({', '.join(data.runtime_mixed)[:200]}); the predictor "
              "mixes them (lpm data info shows the store)", file=sys.stderr)
    if test_size:
        meta["metrics"] = metrics(data.latency_ms[test], p.predict((data.ops[test], data.inputs[test])))
        meta["metrics"]["labels_measured_twice"] = data.repeated(test)
    if "progress" in p.get_params():
        p.progress = False  # stored parameters describe the model, not this terminal
    path = save_predictor(p, zoo / name, **meta)
    if args.json:
        print(json.dumps(p.meta, sort_keys=True))
    else:
        m = meta.get("metrics")
        if m:
            print(f"held-out ({m['n']}): MAE {m['mae_ms']:.4f} ms, MRE {m['mre_pct']:.2f}%, within ±10% "
                  f"{m['within10_pct']:.1f}%, Kendall tau {m['kendall_tau']:.3f}, Spearman rho {m['spearman_rho']:.3f}"
                  f"; {data.held_out_note(test)}")
        print(f"saved {name} ({args.predictor}, fit {fit_s:.1f} s) to {path}")
    return 0


# --- lpm compare -------------------------------------------------------------------------------------


command = Command(help="fit a latency predictor on measured architectures and save it in the zoo",
                      configure=_configure_fit, run=_run_fit)
