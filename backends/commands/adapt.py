"""`lpm adapt`: a predictor for this machine from zoo predictors and a handful of measurements here.

    lpm adapt --from ort-cpu --backend ort --device cpu --profile cifar-b1 --samples 10 --db here.db --name ort-here

Everything is checked before anything is measured (sources, profile, the store, the name). Then
the first N cells of the shipped calibration set (or N seeded random cells, `--cells random`) are
measured into `--db` (resuming: cells already there are reused; a new store runs its pilot), the
method is chosen by leave-one-out error on them (`lpm_zoo.adaptation.adapt`), and the adapted
predictor is saved in the user zoo with this machine's fingerprint, its sources, N, the method and
every candidate's LOO error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lpm_zoo.backends.commands.options import backend_options, require_own_name
from lpm_zoo.backends.device import check_same_machine, check_same_options, device_fingerprint, plain_name, store_device_name
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.cli import Command, check_seed
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.hardware import check_stated_rows, cpu_fingerprint, is_stated


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="sources", action="append", required=True, metavar="PREDICTOR",
                   help="a zoo predictor to adapt (repeatable: several are stacked); the first is the main one")
    p.add_argument("--backend", required=True, help="the backend to measure here (ort, torch, ...)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--device-name", default=None, help="name the measurements are filed under (default detected)")
    p.add_argument("--profile", default="cifar-b1", help="the measurement profile (default cifar-b1)")
    p.add_argument("--samples", type=int, default=10, help="cells to measure here (default 10; at least 3)")
    p.add_argument("--db", required=True, help="measurement store for the cells measured here (created if missing)")
    p.add_argument("--name", required=True, help="name of the adapted predictor in the zoo")
    p.add_argument("--cells", choices=["calibration", "random"], default="calibration",
                   help="which cells: the shipped calibration set's first N (default) or N seeded random ones")
    p.add_argument("--seed", type=int, default=0, help="seed of --cells random and of the networks' weights")
    p.add_argument("--no-finetune", dest="finetune", action="store_false",
                   help="do not try fine-tuning an MLP source (tried by default when the first --from is an MLP and "
                        "N >= 5; chosen only when its cross-validated error is 5%% below the linear methods')")
    p.add_argument("--zoo-dir", default=None, help="zoo to save into (default the user zoo)")
    p.add_argument("--force", action="store_true", help="replace an existing predictor of that name")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--backend-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of the backend that changes what is measured (lpm backends --options), e.g. "
                        "precision=bf16; needs --device-name; repeatable")


def _run(args: argparse.Namespace) -> int:


    from lpm_zoo.adaptation import MAX_SOURCES, MIN_CELLS, adapt
    from lpm_zoo.backends.profiling import Measurer, choose_statistic, drive
    from lpm_zoo.backends.protocol import Protocol, default_warmup_s
    from lpm_zoo.calibration import calibration_cells
    from lpm_zoo.encoding import ENCODING
    from lpm_zoo.predictors import get_predictor, user_zoo_dir
    from lpm_zoo.predictors.files import save_predictor
    from lpm_zoo.predictors.zoo import check_new_name, predictor_path
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.sampler import sample_unique_arrays
    from lpm_zoo.store import MeasurementStore, Target

    t0 = time.time()
    check_stated_rows(args.samples if is_stated(cpu_fingerprint()) else 0, "lpm adapt (the cells it measures here)")
    check_seed(args.seed)
    need = min(MIN_CELLS.values())
    if args.samples < need:
        raise LpmError(f"--samples {args.samples}: adaptation needs at least {need} measured cells (scale and affine; "
                       f"stacking {MIN_CELLS['stack']}, the residual table {MIN_CELLS['residual']})")
    if args.samples > 1000:
        raise LpmError(f"--samples {args.samples}: at most 1000 (with more, fit a predictor from scratch: lpm fit)")
    if len(args.sources) > MAX_SOURCES:
        raise LpmError(f"--from: at most {MAX_SOURCES} source predictors")
    if not plain_name(args.name):
        raise LpmError(f"--name {clip(args.name)}: use letters, digits, '.', '_' or '-' (at most 64)")
    prof = get_profile(args.profile)
    if args.cells == "calibration":  # checked (a -both profile, N past the set) before anything is loaded
        keys, ops, inputs = calibration_cells(args.profile, args.samples)
    else:
        ops, inputs, keys = sample_unique_arrays(args.samples, seed=args.seed, cells=prof.cells)
    zoo = Path(args.zoo_dir).expanduser() if args.zoo_dir else user_zoo_dir()
    check_new_name(args.name, zoo)  # a bundled predictor's name is taken, --force or not
    if (zoo / args.name).exists() and not args.force:
        raise LpmError(f"a predictor named {args.name!r} exists in {zoo}; choose another --name or add --force")
    sources, dirs = [], []
    for name in args.sources:
        p = get_predictor(name)
        if p.type_name == "adapted":
            raise LpmError(f"--from {clip(name)} is itself adapted; adapt from the predictors it came from")
        if p.meta.get("profile") != args.profile or p.meta.get("encoding", ENCODING) != prof.encoding:
            raise LpmError(f"--from {clip(name)} predicts profile {clip(p.meta.get('profile'))} "
                           f"({p.meta.get('encoding', ENCODING)}); the target is {args.profile} ({prof.encoding})")
        sources.append(p)
        dirs.append(predictor_path(name))
    get_backend(args.backend).check(args.device)
    options = backend_options(args.backend, args.backend_option, args.device)
    require_own_name(args, options)
    try:  # found now, not after the measuring
        zoo.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LpmError(f"cannot create the zoo folder {clip(str(zoo))} ({e.strerror or type(e).__name__}); "
                       "choose another --zoo-dir") from None
    with MeasurementStore(args.db) as store:
        dev = args.device_name = store_device_name(store, args.backend, args.device, args.profile, args.device_name)
        check_same_machine(store, args.backend, dev, args.profile, device_fingerprint(args.device), args.db)
        check_same_options(store, args.backend, dev, args.profile, dict(options), args.db)
        others = [f"{r['backend']}/{r['device']}/{r['profile']}" for r in store.summary()
                  if (r["backend"], r["device"], r["profile"]) != (args.backend, dev, args.profile)]
        if others:
            raise LpmError(f"{clip(args.db)} holds {', '.join(others[:3])}: give a store of {args.backend}/{dev}/"
                           f"{args.profile} measurements only (or a new path)")
        have = store.keys(Target(args.backend, dev, args.profile))
        todo = [prof.from_arrays(o, i) for o, i, k in zip(ops, inputs, keys) if k not in have]
        protocol = Protocol(warmup=5, warmup_s=default_warmup_s(args.device), rounds=10, reps=5, interleave=8,
                            target_pct=2.0, statistic="auto", backend_options=options)
        if todo:
            protocol = choose_statistic(store, args.backend, args.device, args.profile, protocol, args.device_name,
                                        args.seed, todo, args.db, lambda m: print(m, file=sys.stderr))
            have = store.keys(Target(args.backend, dev, args.profile))
            todo = [prof.from_arrays(o, i) for o, i, k in zip(ops, inputs, keys) if k not in have]
        if todo:
            measurer = Measurer(args.backend, args.device, args.profile, protocol, args.device_name, args.seed)
            try:
                drive(store, todo, protocol.interleave, lambda gs: (measurer.measure(g) for g in gs), args.backend,
                       dev, args.profile, args.db, len(keys), not args.no_progress,
                       lambda m: print(m, file=sys.stderr))
            finally:
                measurer.close()
        data = store.dataset(Target(args.backend, dev, args.profile))
    check_stated_rows(data.stated, f"lpm adapt: {clip(args.db)}")
    index = {k: i for i, k in enumerate(data.keys)}
    missing = [k for k in keys if k not in index]
    if missing:
        raise LpmError(f"{len(missing)} of the {len(keys)} cells have no usable measurement in {clip(args.db)}; "
                       "run the same command again")
    rows = [index[k] for k in keys]
    fit = adapt(sources, dirs, data.ops[rows], data.inputs[rows], data.latency_ms[rows], args.profile, args.finetune)
    adapted, method, lam, best, table = fit.predictor, fit.method, fit.lam, fit.loo_mre_pct, fit.candidates
    summary = {"name": args.name, "method": method, "lambda": lam, "n": len(keys), "cells": args.cells,
               "loo_mre_pct": best, "sources": list(args.sources), "backend": args.backend, "device": dev,
               "profile": args.profile, "statistic": data.statistic, "candidates": table,
               "hardware": data.hardware or cpu_fingerprint(), "seconds": round(time.time() - t0, 1)}
    save_predictor(adapted, zoo / args.name, name=args.name, backend=args.backend, device=dev, profile=args.profile,
                   hardware=summary["hardware"], adapted={k: summary[k] for k in
                                                          ("sources", "n", "cells", "method", "lambda", "loo_mre_pct",
                                                           "candidates", "statistic")},
                   data_statistic=data.statistic, runtime=data.runtime)
    summary["path"] = str(zoo / args.name)
    if args.json:
        print(json.dumps(summary, allow_nan=False))
    else:
        print(f"adapted {', '.join(args.sources)} to {args.backend}/{dev}/{args.profile} with {len(keys)} measured "
              f"cells ({args.cells}): method {method}"
              + (f" (lambda {lam:g})" if method in ("stack", "residual") or method.startswith("finetune") else "")
              + f", leave-one-out MRE {best:.2f}%; saved {args.name} to {zoo / args.name} in {summary['seconds']} s")
    return 0


command = Command(help="a predictor for this machine from zoo predictors and a few measurements here",
                  configure=_configure, run=_run)
