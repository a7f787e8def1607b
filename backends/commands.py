"""`lpm backends`, `lpm profile`, `lpm measure`: list device backends, fill a measurement store, time one genotype.

Nothing heavy is imported at module level, so `lpm --help` stays fast.
"""

from __future__ import annotations

import argparse

from lpm_zoo.cli import Command
from lpm_zoo.notes import note


# --- lpm backends ------------------------------------------------------------------------
def _configure_backends(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per backend and device kind")


def _run_backends(args: argparse.Namespace) -> int:
    import json

    from backends.registry import get_backend, list_backends

    rows = []
    for name in list_backends():
        b = get_backend(name)
        version = _library_version(b.library)
        for kind in b.devices:
            ok, why = b.available(kind)
            rows.append({"backend": name, "device": kind, "available": ok, "reason": why,
                         "module": type(b).__module__, "version": version})
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        for r in rows:
            state = "available" if r["available"] else f"unavailable: {r['reason']}"
            print(f"{r['backend']:<8} {r['device']:<5} {r['version'] or '-':<22} {state}")
    return 0


def _library_version(dists: tuple[str, ...]) -> str:
    """'name version' of the first installed distribution of `dists` ("" when none is), read without importing it."""
    from importlib import metadata

    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return ""


backends_command = Command(help="list device backends and whether each is usable here (and why not)",
                           configure=_configure_backends, run=_run_backends)


# --- shared options ----------------------------------------------------------------------
def _add_target(p: argparse.ArgumentParser) -> None:
    """Which backend, device and profile a command times, and the name its measurements are filed under."""
    p.add_argument("--backend", required=True, help="a backend name (see `lpm backends`): torch, ort, trt, ...")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--profile", default="cifar-b1", help="cifar-b1 (default), small-b1, cifar-b8, cifar-b32 or imagenet-b32")
    p.add_argument("--device-name", default=None,
                   help="name to file the measurements under (default: a slug of the hardware, e.g. xeon, epyc or "
                        "p100; a store filed under another name on this same hardware, such as 'cpu', keeps it)")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1; recorded with each measurement)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled cells and random weights (default 0)")
    g = p.add_argument_group("protocol")
    g.add_argument("--warmup", type=int, default=5, help="untimed runs of each model first (default 5)")
    g.add_argument("--warmup-s", type=float, default=None, metavar="S",
                   help="then untimed runs in turns until S seconds have passed, so a GPU's clocks have settled "
                        "(default 2 on CUDA, 0 on CPUs)")
    g.add_argument("--rounds", type=int, default=10,
                   help="timed rounds, the most with --target-pct (default 10)")
    g.add_argument("--reps", type=int, default=5, help="timed runs per round (default 5)")
    g.add_argument("--target-pct", type=float, default=2.0,
                   help="adaptive timing: stop a group once every model's statistic is known to this relative "
                        "uncertainty in %% (bootstrap over rounds), after --min-rounds; 0 times all --rounds "
                        "(default 2.0)")
    g.add_argument("--min-rounds", type=int, default=3, help="rounds before adaptive timing may stop (default 3)")
    g.add_argument("--statistic", default="auto",
                   help="kept statistic: auto (default: a new store measures a pilot and keeps the statistic that "
                        "repeats best on this machine; an existing store keeps its own), or one of " + _STATS)
    g.add_argument("--no-reference", action="store_true",
                   help="do not time the reference network (then only statistics without _ratio)")
    g.add_argument("--clock", default="auto", choices=["auto", "thread", "wall"],
                   help="CPU clock: thread CPU time (auto with 1 thread: ignores time descheduled) or wall")


_STATS = ("ref_ratio, round_min_ratio, min_ratio, p10_ratio, p25_ratio (against the reference network timed in "
          "turns, in the store's ms), min_round_median, median, p10, min")


def _protocol(args: argparse.Namespace, interleave: int = 1):
    import math

    from backends.protocol import Protocol, default_warmup_s
    from lpm_zoo.cli import check_threads
    from lpm_zoo.errors import LpmError

    check_threads(args.threads)
    if not math.isfinite(args.target_pct) or args.target_pct < 0:
        raise LpmError(f"--target-pct must be a finite number >= 0 (0: fixed rounds), got {args.target_pct}")
    if args.warmup_s is None:
        args.warmup_s = default_warmup_s(args.device)
    return Protocol(warmup=args.warmup, warmup_s=args.warmup_s, rounds=args.rounds, reps=args.reps, threads=args.threads,
                    statistic=args.statistic, interleave=interleave, clock=args.clock,
                    reference=not args.no_reference, target_pct=args.target_pct or None,
                    min_rounds=min(args.min_rounds, args.rounds) if args.target_pct else args.min_rounds)


def protocol_flags(protocol) -> list[str]:
    """The `lpm profile` flags from which `_protocol` builds `protocol` again: every field, so none is left behind.

    A field is `--field-name VALUE`, except `reference` (`--no-reference` when off) and an unset
    `target_pct` (0: fixed rounds); a field the CLI has no flag for fails to parse, not silently.
    """
    from dataclasses import fields

    argv: list[str] = []
    for f in fields(protocol):
        value = getattr(protocol, f.name)
        if f.name == "reference":
            argv += [] if value else ["--no-reference"]
        elif f.name == "target_pct":
            argv += ["--target-pct", repr(float(value or 0))]
        else:
            argv += [f"--{f.name.replace('_', '-')}", str(value)]
    return argv


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
    p.add_argument("--interleave", type=int, default=8,
                   help="architectures timed in turns as one group, committed together (default 8)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray workers, one device each: a cluster address, 'auto', or 'local'")
    p.add_argument("--workers", type=int, default=None,
                   help="with --ray: Ray workers (default one per device); without: this many local profiler "
                        "processes share the store, each with --threads threads (CPU backends)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="measure only every N-th architecture of the plan, from the I-th (what --workers runs)")
    p.add_argument("--cells", choices=["random", "calibration"], default="random",
                   help="random: the seed's sampled cells (default); calibration: the shipped calibration set's first "
                        "--samples cells (what lpm adapt measures; lets lpm transfer compare it with random cells)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_profile(args: argparse.Namespace) -> int:
    from backends.profiler import run_profile
    from lpm_zoo.store import MeasurementStore

    shard = _shard(args.shard)
    protocol = _protocol(args, args.interleave)
    if not args.ray:
        args.device_name = _store_name(args)  # a store measured here under another name resumes under it
    if args.workers is not None and not args.ray:
        from backends.workers import run_local_workers

        added = run_local_workers(args, protocol, _log_for("profile"))
    else:
        added = run_profile(args.backend, args.device, args.profile, args.samples, args.db, seed=args.seed,
                            protocol=protocol, name=args.device_name, ray_address=args.ray,
                            workers=args.workers, progress=not args.no_progress, log=_log_for("profile"),
                            shard=shard, cells=args.cells)
    with MeasurementStore(args.db, readonly=True) as store:
        # Ray workers name their own hardware: without --device-name, every device of the store is shown
        dev = None if args.ray and not args.device_name else args.device_name
        rows = [r for r in store.summary() if r["backend"] == args.backend and r["profile"] == args.profile
                and dev in (None, r["device"])]
    for r in rows:
        print(f"{args.db}: {r['backend']}/{r['device']}/{r['profile']}: {r['n_unique']} unique architectures "
              f"({r['n']} measurements; {added} added now)")
    return 0


def _store_name(args: argparse.Namespace, reading: bool = False) -> str:
    """The device name `args` files under (or, `reading`, reads) in the store at `args.db` (see
    `backends.device.store_device_name`); the detected one when the store does not exist yet."""
    from backends.device import device_name, store_device_name
    from lpm_zoo.errors import LpmError
    from lpm_zoo.store import MeasurementStore, resolve_db

    if args.device_name or not resolve_db(args.db).is_file():
        return device_name(args.device, args.device_name)
    try:
        with MeasurementStore(args.db, readonly=True) as store:
            return store_device_name(store, args.backend, args.device, args.profile, reading=reading)
    except LpmError as e:
        if "is an empty database" in str(e):  # another profiler created it and has not written its schema yet
            return device_name(args.device, args.device_name)
        raise


def _shard(spec: str | None) -> tuple[int, int] | None:
    """(I, N) from "I/N" with 0 <= I < N <= 256, or None."""
    import re

    from lpm_zoo.errors import LpmError, clip

    if spec is None:
        return None
    m = re.fullmatch(r"(\d{1,3})/(\d{1,3})", spec.strip())
    if not m or not int(m.group(1)) < int(m.group(2)) <= 256:
        raise LpmError(f"--shard {clip(spec)}: use I/N with 0 <= I < N <= 256, e.g. 0/2")
    return int(m.group(1)), int(m.group(2))


profile_command = Command(help="time sampled cells on a backend/device into a resumable measurement store",
                          configure=_configure_profile, run=_run_profile)


# --- lpm recheck -------------------------------------------------------------------------
def _configure_recheck(p: argparse.ArgumentParser) -> None:
    _add_target(p)
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
    import json
    from pathlib import Path

    from backends.profiler import run_recheck
    from lpm_zoo.errors import LpmError, clip
    from lpm_zoo.store import MeasurementStore, json_safe

    if args.db.startswith("bundled:"):
        raise LpmError(f"{args.db} is data shipped with the package (its repeatability: `lpm data info --db "
                       f"{args.db}`); recheck a store of your own")
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}; fill one with `lpm profile ... --db {args.db}`")
    if not 0 <= args.split_seed < 2**32:  # the range of lpm fit / compare --seed, whose split it follows
        raise LpmError(f"--split-seed must be in [0, 2^32) like lpm fit's --seed, got {clip(args.split_seed)}")
    dev = args.device_name = _store_name(args)
    added = run_recheck(args.backend, args.device, args.profile, args.samples or 0, args.db, seed=args.seed,
                        name=dev, progress=not args.no_progress, log=_log_for("recheck"), again=args.again,
                        held_out=args.held_out, split_seed=args.split_seed)
    with MeasurementStore(args.db, readonly=True) as store:
        reports = [r for k in range(1, args.again + 1)
                   if (r := store.pass_report(args.backend, dev, args.profile, k)) is not None]
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


recheck_command = Command(help="measure stored architectures again to find the store's repeatability "
                               "(the noise floor a predictor is judged against)",
                          configure=_configure_recheck, run=_run_recheck)


# --- lpm measure -------------------------------------------------------------------------
MAX_MEASURE = 16  # genotypes timed together by one `lpm measure`


def _configure_measure(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--genotype", required=True, action="append",
                   help="a published name (DARTS_V2, ...), a DARTS string, JSON or a .json file (the normal cell is "
                        "timed with DARTS_V2's reduction cell, or, on a -both profile, the genotype as given); "
                        f"repeatable, up to {MAX_MEASURE}: the genotypes are timed together, in turns, so a passing "
                        "load hits them alike")
    p.add_argument("--db", metavar="PATH",
                   help="express the latency in this store's milliseconds (its reference baseline), so it compares "
                        "with the store's data and the predictors fitted on it; nothing is written to the store")
    p.add_argument("--json", action="store_true", help="one JSON object per genotype, in the order given")


def _run_measure(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from backends.profiler import DEFAULT_STATISTIC, Measurer, normalize
    from backends.protocol import AUTO
    from lpm_zoo.errors import LpmError, clip
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.published import DARTS_V2
    from lpm_zoo.space import parse_genotype
    from lpm_zoo.store import json_safe

    if len(args.genotype) > MAX_MEASURE:
        raise LpmError(f"--genotype given {len(args.genotype)} times; at most {MAX_MEASURE} are timed together")
    both = get_profile(args.profile).cells == 2  # a -both profile times the genotype as given: it needs both cells
    genotypes = []
    for spec in args.genotype:
        try:
            genotypes.append(parse_genotype(spec, None if both else DARTS_V2.reduce))
        except LpmError as e:
            raise LpmError(f"--genotype {clip(spec, 60)}: {e}") if len(args.genotype) > 1 else e from None
    protocol = _protocol(args)
    base = None
    if args.db:  # checked before minutes of timing
        protocol, base = _store_protocol(args, protocol)
    elif protocol.statistic == AUTO:
        protocol = replace(protocol, statistic=DEFAULT_STATISTIC)
    protocol = replace(protocol, interleave=max(protocol.interleave, len(genotypes)))  # one group: timed in turns
    m = Measurer(args.backend, args.device, args.profile, protocol, args.device_name, args.seed)
    try:
        rows = m.measure([g if m.profile.cells == 2 else g.normal for g in genotypes])
    finally:
        m.close()
    if base is not None:
        normalize(rows, base)
    for g, r in zip(genotypes, rows):
        p = r.protocol
        if args.json:
            print(json.dumps(json_safe({"backend": r.backend, "device": r.device, "profile": r.profile,
                                        "key": m.profile.key(g), "latency_ms": r.latency_ms, "spread_ms": r.spread_ms,
                                        "statistic": p["statistic"], "runs_ms": r.runs_ms, "protocol": p}),
                             allow_nan=False))
        else:
            threads = f", {p['threads']} thread(s)" if p.get("threads") else ""
            label = f"  {g.to_darts()[:60]}…" if len(genotypes) > 1 else ""
            print(f"{r.latency_ms:.3f} ms  (IQR {r.spread_ms:.3f} ms; {p['statistic']} of {p['rounds']}x{p['reps']} "
                  f"runs{threads})  {r.backend}-{r.device}  {r.profile}{label}")
    if any(g.reduce != DARTS_V2.reduce for g in genotypes) and not both:
        note(f"{args.profile} fixes the reduction cell to DARTS_V2's; only the normal cell was measured "
             f"(--profile {args.profile}-both times the genotype as given)")
    return 0


def _store_protocol(args: argparse.Namespace, protocol):
    """`protocol` with the statistic of the store at `args.db`, and the store's reference baseline (ms)."""
    from dataclasses import replace

    from backends.profiler import baseline_of
    from backends.protocol import AUTO
    from lpm_zoo.errors import LpmError
    from lpm_zoo.statistics import is_ratio
    from lpm_zoo.store import MeasurementStore, resolve_db, statistic_key

    if not resolve_db(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}")
    dev = _store_name(args, reading=True)  # the store's scale, whichever machine it came from; not this run's name
    with MeasurementStore(args.db, readonly=True) as store:  # nothing is written to it
        base = baseline_of(store, args.backend, dev, args.profile)
        kept = store.meta(statistic_key(args.backend, dev, args.profile))
        if kept is None:
            first = next(iter(store.measurements(args.backend, dev, args.profile)), None)
            kept = first["protocol"].get("statistic") if first else None
    if base is None or kept is None:
        raise LpmError(f"{args.db} holds no {args.backend}/{dev}/{args.profile} measurements to take a baseline from")
    if protocol.statistic not in (AUTO, kept):
        raise LpmError(f"{args.db} keeps {kept}; drop --statistic (or give --statistic {kept}) to measure in its terms")
    if not is_ratio(kept):
        raise LpmError(f"--db needs a store kept with a ratio statistic (it keeps {kept}); measure without --db")
    return replace(protocol, statistic=kept), base


measure_command = Command(help="time one architecture on a backend/device and print its latency (ms) and spread",
                          configure=_configure_measure, run=_run_measure)
