"""`lpm recheck`: measure stored architectures again to find the store's repeatability."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpm_zoo.backends.commands.options import add_target, log_for, store_name
from lpm_zoo.cli import Command
from lpm_zoo.errors import LpmError, clip


def _configure_recheck(p: argparse.ArgumentParser) -> None:
    add_target(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--samples", type=int,
                       help="measure again until this many stored architectures (a seeded random subset) were "
                            "measured twice")
    which.add_argument("--held-out", type=int, metavar="N",
                       help="measure again exactly the N architectures `lpm fit` / `lpm compare --test-size N` "
                            "hold out (split --split-seed), so predictors are scored against two measurements")
    p.add_argument("--split-seed", type=int, default=0,
                   help="the --seed of the lpm fit / lpm compare split that --held-out follows (default 0)")
    p.add_argument("--db", required=True, help="the SQLite measurement store to recheck (repeats are added to it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subset rechecked (default 0)")
    p.add_argument("--pass", dest="again", type=int, default=1, metavar="K",
                   help="measure the architectures measured K times once more (default 1: a second time); "
                        "run --pass 2 hours or days later to see how the figure drifts with time")
    p.add_argument("--json", action="store_true", help="print the repeatability as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_recheck(args: argparse.Namespace) -> int:


    from lpm_zoo.backends.profiling import run_recheck
    from lpm_zoo.store import MeasurementStore, Target, json_safe
    from lpm_zoo.store.analysis import pass_report

    if args.db.startswith("bundled:"):
        raise LpmError(f"{args.db} is data shipped with the package (its repeatability: `lpm data info --db "
                       f"{args.db}`); recheck a store of your own")
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}; fill one with `lpm profile ... --db {args.db}`")
    if not 0 <= args.split_seed < 2**32:  # the range of lpm fit / compare --seed, whose split it follows
        raise LpmError(f"--split-seed must be in [0, 2^32) like lpm fit's --seed, got {clip(args.split_seed)}")
    dev = args.device_name = store_name(args)
    added = run_recheck(args.backend, args.device, args.profile, args.samples or 0, args.db, seed=args.seed,
                        name=dev, progress=not args.no_progress, log=log_for("recheck"), again=args.again,
                        held_out=args.held_out, split_seed=args.split_seed)
    with MeasurementStore(args.db, readonly=True) as store:
        reports = [r for k in range(1, args.again + 1)
                   if (r := pass_report(store, Target(args.backend, dev, args.profile), k)) is not None]
    if args.json:
        kept = reports[0]["kept"] if reports else {"n": 0}  # the first recheck, as before passes existed
        print(json.dumps(json_safe({"backend": args.backend, "device": dev, "profile": args.profile, "added": added,
                                    **kept, "passes": reports}), allow_nan=False))
        return 0
    for rep in reports:
        kept = rep["kept"]
        print(f"{args.db}: {args.backend}/{dev}/{args.profile}: pass {rep['pass']}: {rep['n']} architectures "
              f"measured again, {rep['hours_apart_median']:.2f} h apart (median); kept statistic "
              f"{rep['statistic']}: |a-b|/mean mean {kept['mean_pct']:.2f}%, median {kept['median_pct']:.2f}%, "
              f"p90 {kept['p90_pct']:.2f}%, Kendall tau {kept.get('kendall_tau') or float('nan'):.3f}")
    if reports:
        print(f"{'statistic':<18} {'mean %':>7} {'median %':>8} {'p90 %':>6} {'tau':>6}   (same raw runs, "
              f"pass {reports[-1]['pass']})")
        for r in reports[-1]["by_statistic"]:
            print(f"{r['statistic']:<18} {r['mean_pct']:>7.2f} {r['median_pct']:>8.2f} {r['p90_pct']:>6.2f} "
                  f"{r.get('kendall_tau') or float('nan'):>6.3f}")
        best, kept = reports[-1]["best"], reports[-1]["statistic"]
        if best and best != kept:
            print(f"most repeatable here: {best}; re-express the store with: lpm data restat --db {args.db} "
                  f"--backend {args.backend} --device-name {dev} --profile {args.profile} --statistic {best}")
    return 0


command = Command(help="measure stored architectures again to find the store's repeatability "
                               "(the noise floor a predictor is judged against)",
                          configure=_configure_recheck, run=_run_recheck)


# --- lpm measure -------------------------------------------------------------------------
