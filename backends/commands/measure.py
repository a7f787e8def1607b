"""`lpm measure`: time one or more architectures on a backend/device and print their latency (ms) and spread."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from lpm_zoo.backends.commands.options import add_common, protocol_from_args, store_name
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.cli import Command
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.notes import note
from lpm_zoo.published import DARTS_V2

MAX_MEASURE = 16  # genotypes timed together by one `lpm measure`


def _configure_measure(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--genotype", required=True, action="append",
                   help="a published name (DARTS_V2, ...), a DARTS string, JSON or a .json file (the normal cell is "
                        "timed with DARTS_V2's reduction cell, or, on a -both profile, the genotype as given); "
                        f"repeatable, up to {MAX_MEASURE}: the genotypes are timed together, in turns, so a passing "
                        "load hits them alike")
    p.add_argument("--db", metavar="PATH",
                   help="express the latency in this store's milliseconds (its reference baseline), so it compares "
                        "with the store's data and the predictors fitted on it; nothing is written to the store")
    p.add_argument("--json", action="store_true", help="one JSON object per genotype, in the order given")


def _checked(args: argparse.Namespace):
    """(genotypes, protocol, the store's baseline or None): every value `lpm measure` uses, checked before any
    timing; nothing is created."""
    from lpm_zoo.backends.profiling import DEFAULT_STATISTIC
    from lpm_zoo.backends.protocol import AUTO
    from lpm_zoo.profiles import get_profile

    if len(args.genotype) > MAX_MEASURE:
        raise LpmError(f"--genotype given {len(args.genotype)} times; at most {MAX_MEASURE} are timed together")
    both = get_profile(args.profile).cells == 2  # a -both profile times the genotype as given: it needs both cells
    genotypes = []
    for spec in args.genotype:
        try:
            genotypes.append(parse_genotype(spec, None if both else DARTS_V2.reduce))
        except LpmError as e:
            raise LpmError(f"--genotype {clip(spec, 60)}: {e}") if len(args.genotype) > 1 else e from None
    protocol = protocol_from_args(args)
    base = None
    if args.db:  # checked before minutes of timing
        protocol, base = _store_protocol(args, protocol)
    elif protocol.statistic == AUTO:
        protocol = replace(protocol, statistic=DEFAULT_STATISTIC)
    protocol = replace(protocol, interleave=max(protocol.interleave, len(genotypes)))  # one group: timed in turns
    get_backend(args.backend).check(args.device)
    return genotypes, protocol, base


def _check_measure(args: argparse.Namespace) -> None:
    """Every value `lpm measure` would use, checked; nothing timed or created."""
    _checked(args)


def _run_measure(args: argparse.Namespace) -> int:
    from lpm_zoo.backends.profiling import Measurer, normalize
    from lpm_zoo.store import json_safe

    genotypes, protocol, base = _checked(args)
    m = Measurer(args.backend, args.device, args.profile, protocol, args.device_name, args.seed)
    both = m.profile.cells == 2
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

    from lpm_zoo.backends.profiling import baseline_of
    from lpm_zoo.backends.protocol import AUTO
    from lpm_zoo.statistics import is_ratio
    from lpm_zoo.store import MeasurementStore, Target, resolve_db, statistic_key



    if not resolve_db(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}")
    dev = store_name(args, reading=True)  # the store's scale, whichever machine it came from; not this run's name
    with MeasurementStore(args.db, readonly=True) as store:  # nothing is written to it
        base = baseline_of(store, args.backend, dev, args.profile)
        kept = store.meta(statistic_key(Target(args.backend, dev, args.profile)))
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


command = Command(help="time one architecture on a backend/device and print its latency (ms) and spread",
                          configure=_configure_measure, run=_run_measure, check=_check_measure)
