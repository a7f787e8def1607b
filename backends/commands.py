"""`lpm backends`, `lpm profile`, `lpm measure`: list device backends, fill a measurement store, time one genotype.

Nothing heavy is imported at module level, so `lpm --help` stays fast.
"""

from __future__ import annotations

import argparse

from lpm_zoo.cli import Command


# --- lpm backends ------------------------------------------------------------------------
def _configure_backends(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per backend and device kind")


def _run_backends(args: argparse.Namespace) -> int:
    import json

    from backends.registry import get_backend, list_backends

    rows = []
    for name in list_backends():
        b = get_backend(name)
        for kind in b.devices:
            ok, why = b.available(kind)
            rows.append({"backend": name, "device": kind, "available": ok, "reason": why,
                         "module": type(b).__module__})
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        for r in rows:
            state = "available" if r["available"] else f"unavailable: {r['reason']}"
            print(f"{r['backend']:<8} {r['device']:<5} {state}")
    return 0


backends_command = Command(help="list device backends and whether each is usable here (and why not)",
                           configure=_configure_backends, run=_run_backends)


# --- shared options ----------------------------------------------------------------------
def _add_target(p: argparse.ArgumentParser) -> None:
    """Which backend, device and profile a command times, and the name its measurements are filed under."""
    p.add_argument("--backend", required=True, help="a backend name (see `lpm backends`): torch, ort, trt, ...")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--profile", default="cifar-b1", help="cifar-b1 (default), cifar-b32 or imagenet-b32")
    p.add_argument("--device-name", default=None,
                   help="name to file the measurements under (default: detected, 'cpu' or the GPU model, e.g. p100)")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1; recorded with each measurement)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled cells and random weights (default 0)")
    g = p.add_argument_group("protocol")
    g.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    g.add_argument("--rounds", type=int, default=10, help="timed rounds (default 10)")
    g.add_argument("--reps", type=int, default=10, help="timed runs per round (default 10)")
    g.add_argument("--statistic", default="ref_ratio",
                   help="kept statistic: ref_ratio (default: per-round ratio to a reference network timed in turns, "
                        "in the store's ms), min_round_median, median, p10, min")
    g.add_argument("--no-reference", action="store_true",
                   help="do not time the reference network (then pick a statistic other than ref_ratio)")
    g.add_argument("--clock", default="auto", choices=["auto", "thread", "wall"],
                   help="CPU clock: thread CPU time (auto with 1 thread: ignores time descheduled) or wall")


def _protocol(args: argparse.Namespace, interleave: int = 1):
    from backends.protocol import Protocol
    from lpm_zoo.cli import check_threads

    check_threads(args.threads)
    return Protocol(warmup=args.warmup, rounds=args.rounds, reps=args.reps, threads=args.threads,
                    statistic=args.statistic, interleave=interleave, clock=args.clock,
                    reference=not args.no_reference)


def _log_for(command: str):
    """Progress lines to stderr; a `warning: ...` line is prefixed with the command, like the CLI's errors."""
    import sys

    def log(line: str) -> None:
        print(f"lpm {command}: {line}" if line.startswith("warning: ") else line, file=sys.stderr)

    return log


# --- lpm profile -------------------------------------------------------------------------
def _configure_profile(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--samples", type=int, required=True,
                   help="measure until the store holds this many unique architectures (those present are skipped)")
    p.add_argument("--db", required=True, help="SQLite measurement store (created if missing)")
    p.add_argument("--interleave", type=int, default=4,
                   help="architectures timed in turns as one group, committed together (default 4)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray workers, one device each: a cluster address, 'auto', or 'local'")
    p.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per device / thread group)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_profile(args: argparse.Namespace) -> int:
    from backends.device import device_name
    from backends.profiler import run_profile
    from lpm_zoo.store import MeasurementStore

    added = run_profile(args.backend, args.device, args.profile, args.samples, args.db, seed=args.seed,
                        protocol=_protocol(args, args.interleave), name=args.device_name, ray_address=args.ray,
                        workers=args.workers, progress=not args.no_progress, log=_log_for("profile"))
    with MeasurementStore(args.db, readonly=True) as store:
        dev = device_name(args.device, args.device_name)
        rows = [r for r in store.summary()
                if r["backend"] == args.backend and r["profile"] == args.profile and r["device"] == dev]
    for r in rows:
        print(f"{args.db}: {r['backend']}/{r['device']}/{r['profile']}: {r['n_unique']} unique architectures "
              f"({r['n']} measurements; {added} added now)")
    return 0


profile_command = Command(help="time sampled cells on a backend/device into a resumable measurement store",
                          configure=_configure_profile, run=_run_profile)


# --- lpm recheck -------------------------------------------------------------------------
def _configure_recheck(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--samples", type=int, required=True,
                   help="measure again until this many stored architectures were measured twice")
    p.add_argument("--db", required=True, help="the SQLite measurement store to recheck (repeats are added to it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subset rechecked (default 0)")
    p.add_argument("--json", action="store_true", help="print the repeatability as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_recheck(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from backends.device import device_name
    from backends.profiler import run_recheck
    from lpm_zoo.errors import LpmError
    from lpm_zoo.store import MeasurementStore, json_safe

    if args.db.startswith("bundled:"):
        raise LpmError(f"{args.db} is data shipped with the package (its repeatability: `lpm data info --db "
                       f"{args.db}`); recheck a store of your own")
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}; fill one with `lpm profile ... --db {args.db}`")
    added = run_recheck(args.backend, args.device, args.profile, args.samples, args.db, seed=args.seed,
                        name=args.device_name, progress=not args.no_progress, log=_log_for("recheck"))
    dev = device_name(args.device, args.device_name)
    with MeasurementStore(args.db, readonly=True) as store:
        rep = store.repeatability(args.backend, dev, args.profile)
    rep = {"backend": args.backend, "device": dev, "profile": args.profile, "added": added, **(rep or {"n": 0})}
    if args.json:
        print(json.dumps(json_safe(rep), allow_nan=False))
    else:
        print(f"{args.db}: {args.backend}/{dev}/{args.profile}: {rep['n']} architectures measured twice "
              f"({added} now); relative difference |a-b|/mean: mean {rep['mean_pct']:.2f}%, "
              f"median {rep['median_pct']:.2f}%, 90th percentile {rep['p90_pct']:.2f}%")
    return 0


recheck_command = Command(help="measure stored architectures again to find the store's repeatability "
                               "(the noise floor a predictor is judged against)",
                          configure=_configure_recheck, run=_run_recheck)


# --- lpm measure -------------------------------------------------------------------------
def _configure_measure(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--genotype", required=True,
                   help="a published name (DARTS_V2, ...), a DARTS string, JSON or a .json file (normal cell is used)")
    p.add_argument("--db", metavar="PATH",
                   help="express the latency in this store's milliseconds (its reference baseline), so it compares "
                        "with the store's data and the predictors fitted on it; nothing is written to the store")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_measure(args: argparse.Namespace) -> int:
    import json

    from backends.profiler import Measurer, normalize
    from lpm_zoo.encoding import cell_key
    from lpm_zoo.published import DARTS_V2
    from lpm_zoo.space import parse_genotype
    from lpm_zoo.store import json_safe

    g = parse_genotype(args.genotype, DARTS_V2.reduce)
    protocol = _protocol(args)
    base = _store_baseline(args, protocol) if args.db else None  # checked before minutes of timing
    m = Measurer(args.backend, args.device, args.profile, protocol, args.device_name, args.seed)
    try:
        (r,) = m.measure([g.normal])
    finally:
        m.close()
    if base is not None:
        normalize([r], base)
    p = r.protocol
    if args.json:
        print(json.dumps(json_safe({"backend": r.backend, "device": r.device, "profile": r.profile,
                                    "key": cell_key(g), "latency_ms": r.latency_ms, "spread_ms": r.spread_ms,
                                    "statistic": p["statistic"], "runs_ms": r.runs_ms, "protocol": p}),
                         allow_nan=False))
    else:
        threads = f", {p['threads']} thread(s)" if p.get("threads") else ""
        print(f"{r.latency_ms:.3f} ms  (IQR {r.spread_ms:.3f} ms; {p['statistic']} of {p['rounds']}x{p['reps']} runs"
              f"{threads})  {r.backend}-{r.device}  {r.profile}")
        if g.reduce != DARTS_V2.reduce:
            print("note: the profile fixes the reduction cell to DARTS_V2's; only the normal cell was measured")
    return 0


def _store_baseline(args: argparse.Namespace, protocol) -> float:
    """The reference baseline (ms) of the store at `args.db` for this backend/device/profile."""
    from backends.device import device_name
    from backends.profiler import baseline_of
    from lpm_zoo.errors import LpmError
    from lpm_zoo.store import MeasurementStore, resolve_db

    if not resolve_db(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}")
    if protocol.statistic != "ref_ratio":
        raise LpmError("--db needs the ref_ratio statistic (the default); drop --statistic/--no-reference")
    dev = device_name(args.device, args.device_name)
    with MeasurementStore(args.db, readonly=True) as store:  # nothing is written to it
        base = baseline_of(store, args.backend, dev, args.profile)
    if base is None:
        raise LpmError(f"{args.db} holds no {args.backend}/{dev}/{args.profile} measurements to take a baseline from")
    return base


measure_command = Command(help="time one architecture on a backend/device and print its latency (ms) and spread",
                          configure=_configure_measure, run=_run_measure)
