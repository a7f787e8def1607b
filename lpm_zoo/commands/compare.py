"""`lpm compare`: compare predictor types on a fixed held-out split (table and PNG plots)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lpm_zoo.cli import Command, int_list
from lpm_zoo.commands.predictor_data import data_args, load_data, params_for
from lpm_zoo.errors import LpmError


def _configure_compare(p: argparse.ArgumentParser) -> None:
    data_args(p)
    p.add_argument("--predictors", default="mlp,ridge,rf,gbrt,knn,lut,flops", metavar="T1,T2,...",
                   help="predictor types to compare")
    p.add_argument("--train-sizes", default="1000,2000,5000,10000", metavar="N1,N2,...",
                   help="training-set sizes (nested subsets of one training pool)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write compare.json and the PNG plots (default: compare-BACKEND-DEVICE-PROFILE)")
    p.add_argument("--json", action="store_true", help="print the result rows as JSON lines instead of a table")
    p.add_argument("--no-resume", action="store_true",
                   help="refit everything, ignoring results an earlier run left in OUT/compare.json")


def _repeatability_line(data: Any) -> str:
    """What the data's noise floor is, or how to find it."""
    r = data.repeatability
    if not r:
        return (f"repeatability of the data: unknown (no architecture measured twice; `lpm recheck --backend "
                f"{data.backend} --device ... --profile {data.profile} --samples 300 --db ...` measures it)")
    return (f"repeatability of the data ({r['n']} architectures measured twice): mean |a-b|/mean {r['mean_pct']:.2f}%,"
            f" median {r['median_pct']:.2f}%, 90th percentile {r['p90_pct']:.2f}%"
            + (f", Kendall tau of the two {r['kendall_tau']:.3f}" if "kendall_tau" in r else ""))


def _run_compare(args: argparse.Namespace) -> int:


    from lpm_zoo.evaluation import plots
    from lpm_zoo.evaluation.compare import HEADER, compare, format_row
    from lpm_zoo.evaluation.metrics import default_test_size, relative_spread_pct, split_indices
    from lpm_zoo.predictors import predictor_class
    from lpm_zoo.predictors.base import training_hash
    from lpm_zoo.predictors.linear import FlopsPredictor
    from lpm_zoo.profiles import get_profile

    types = [t.strip() for t in args.predictors.split(",") if t.strip()]
    if not types:
        raise LpmError("--predictors: give at least one predictor type")
    for t in types:
        predictor_class(t)
    sizes = int_list(args.train_sizes, "--train-sizes", 2, 10_000_000)
    params = params_for(args)
    for t in types:
        params(t)  # every parameter checked before the data is read or anything is fitted
    data = load_data(args)
    out = Path(args.out or f"compare-{args.backend}-{args.device}-{args.profile}")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "compare.json"
    test_size = default_test_size(len(data)) if args.test_size is None else args.test_size
    config = {"backend": args.backend, "device": args.device, "profile": args.profile, "n": len(data),
              "data_hash": training_hash(data.keys, data.latency_ms), "test_size": test_size, "seed": args.seed}
    # Resume: results of an earlier (interrupted) run on the same data, split and parameters are reused.
    done: dict[tuple[str, int], tuple[dict, Any]] = {}
    previous: dict[str, Any] = {}
    if state_path.is_file() and not args.no_resume:
        try:
            previous = json.loads(state_path.read_text())
        except json.JSONDecodeError:
            pass
    if previous.get("config") == config:
        for r in previous.get("rows", []):
            t = r["predictor"]
            if t in types and r.get("params") == json.loads(json.dumps(params(t))):
                done[(t, r["train_size"])] = (r, previous.get("predictions", {}).get(f"{t}@{r['train_size']}"))
    title = f"{args.backend}/{args.device}/{args.profile}, {len(data)} architectures"
    rep = relative_spread_pct(data.latency_ms, data.spread_ms)
    state: dict[str, Any] = {"config": config, "rows": [r for r, _ in done.values()],
                             "predictions": {f"{t}@{k}": p for (t, k), (_, p) in done.items() if p is not None}}

    def save_state() -> None:
        tmp = state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, default=float) + "\n")
        os.replace(tmp, state_path)

    if not args.json:
        print(f"# {title}; spread of the raw runs (mean IQR / latency) {rep:.2f}%")
        print(f"# {_repeatability_line(data)}")
        if test_size:
            print(f"# held out: {data.held_out_note(split_indices(len(data), test_size, args.seed)[1])}")
        if done:
            print(f"# reusing {len(done)} result(s) from {state_path}")
        print(HEADER, flush=True)

    def show(row: dict[str, Any]) -> None:
        print(json.dumps(row) if args.json else format_row(row), flush=True)

    def record(row: dict[str, Any], pred: Any) -> None:
        row["params"] = json.loads(json.dumps(params(row["predictor"])))
        state["rows"].append(row)
        state["predictions"][f"{row['predictor']}@{row['train_size']}"] = [round(float(v), 6) for v in pred]
        save_state()  # an interrupted compare resumes from here
        show(row)

    rows, extra = compare(data, types, sizes, test_size, args.seed, params, on_result=record, done=done,
                          progress=sys.stderr.isatty())
    if done and not args.json:
        for r in rows:
            if (r["predictor"], r["train_size"]) in done:
                print(format_row(r) + "  (reused)")
    elif done:
        for r in rows:
            if (r["predictor"], r["train_size"]) in done:
                show(r)
    if extra["skipped_sizes"]:
        print(f"note: skipped training sizes {extra['skipped_sizes']}: more than the training pool holds",
              file=sys.stderr)
    prof = get_profile(args.profile)
    madds = FlopsPredictor(prof.name).madds(data.ops, data.inputs)  # whole genotypes on a -both profile
    plots.error_vs_train_size(rows, out / "error_vs_train_size.png", title)
    plots.predicted_vs_measured(extra["predictions"], out / "predicted_vs_measured.png",
                                f"{title}; held-out, largest training size")
    fig2 = plots.latency_vs_madds(madds, data.latency_ms, out / "latency_vs_madds.png", title)
    state.update(run_spread_pct=rep, latency_vs_madds=fig2, skipped_sizes=extra["skipped_sizes"],
                 table=rows, repeatability=data.repeatability)
    save_state()
    if not args.json:
        if data.repeatability:
            best = min(rows, key=lambda r: r["mre_pct"])
            print(f"best: {best['predictor']} at {best['train_size']} architectures, MRE {best['mre_pct']:.2f}% = "
                  f"{best['mre_pct'] / data.repeatability['mean_pct']:.2f} x the repeatability of the data")
        print(f"latency vs multiply-adds: Pearson r {fig2['pearson_r']:.3f}, Kendall tau {fig2['kendall_tau']:.3f}")
        print(f"wrote {state_path}, error_vs_train_size.png, predicted_vs_measured.png, latency_vs_madds.png in {out}")
    return 0


# --- lpm zoo -----------------------------------------------------------------------------------------


command = Command(help="compare predictor types on a fixed held-out split (table and PNG plots)",
                          configure=_configure_compare, run=_run_compare)
