"""What `lpm profile`, `recheck`, `measure` and `adapt` share: the target and protocol flags, the protocol built
from them, progress lines, and the device name a store files measurements under."""

from __future__ import annotations

import argparse
import json
import math
import sys

from lpm_zoo.backends.device import device_name, store_device_name
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.cli import check_threads
from lpm_zoo.errors import LpmError, clip


def add_target(p: argparse.ArgumentParser) -> None:
    """Which backend, device and profile a command times, and the name its measurements are filed under."""
    p.add_argument("--backend", required=True, help="a backend name (see `lpm backends`): torch, ort, trt, ...")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--profile", default="cifar-b1", help="cifar-b1 (default), small-b1, cifar-b8, cifar-b32 or imagenet-b32")
    p.add_argument("--device-name", default=None,
                   help="name to file the measurements under (default: a slug of the hardware, e.g. xeon, epyc or "
                        "p100; a store filed under another name on this same hardware, such as 'cpu', keeps it)")


def add_common(p: argparse.ArgumentParser) -> None:
    add_target(p)
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
                        "repeats best on this machine; an existing store keeps its own), or one of " + STATISTICS_HELP)
    g.add_argument("--no-reference", action="store_true",
                   help="do not time the reference network (then only statistics without _ratio)")
    g.add_argument("--clock", default="auto", choices=["auto", "thread", "wall"],
                   help="CPU clock: thread CPU time (auto with 1 thread: ignores time descheduled) or wall")
    p.add_argument("--backend-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of the backend that changes what is measured (see `lpm backends --options`), "
                        "e.g. precision=bf16 (openvino) or fp16=true (trt); recorded in every row; repeatable")


STATISTICS_HELP = ("ref_ratio, round_min_ratio, min_ratio, p10_ratio, p25_ratio (against the reference network timed in "
          "turns, in the store's ms), min_round_median, median, p10, min")


def protocol_from_args(args: argparse.Namespace, interleave: int = 1):


    from lpm_zoo.backends.protocol import Protocol, default_warmup_s

    check_threads(args.threads)
    if not math.isfinite(args.target_pct) or args.target_pct < 0:
        raise LpmError(f"--target-pct must be a finite number >= 0 (0: fixed rounds), got {args.target_pct}")
    if args.warmup_s is None:
        args.warmup_s = default_warmup_s(args.device)
    return Protocol(warmup=args.warmup, warmup_s=args.warmup_s, rounds=args.rounds, reps=args.reps, threads=args.threads,
                    statistic=args.statistic, interleave=interleave, clock=args.clock,
                    reference=not args.no_reference, target_pct=args.target_pct or None,
                    min_rounds=min(args.min_rounds, args.rounds) if args.target_pct else args.min_rounds,
                    backend_options=backend_options(args.backend, args.backend_option, args.device))


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def backend_options(backend: str, items: list[str], device: str = "cpu") -> tuple[tuple[str, object], ...]:
    """`--backend-option NAME=VALUE` items as (name, value) pairs, each a NAME the backend declares (its `options`)
    with VALUE of its type, one of its choices, for an option that applies to `device`'s kind; anything else is one
    LpmError line naming what the backend takes (before any store is opened or anything measured)."""
    if not items:
        return ()
    from lpm_zoo.backends.protocol import check_backend_options

    b = get_backend(backend)
    declared = b.option_specs()
    known = ", ".join(f"{k} ({o.type.__name__})" for k, o in declared.items()) or "none"
    out = []
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in declared:
            raise LpmError(f"--backend-option {clip(item, 60)}: the {backend} backend's options are: {known}")
        out.append((name, _option_value(item, name, declared[name].type, text.strip())))
    b.check_options(dict(out), device)  # its choices, the devices it applies to
    return check_backend_options(out)


def _option_value(item: str, name: str, typ: type, text: str) -> object:
    """VALUE of `--backend-option NAME=VALUE` as `typ` (bool: true/false, 1/0, yes/no, on/off), or an LpmError."""
    try:
        if typ is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if typ is str:
            value = json.loads(text) if text.startswith('"') else text
            if not isinstance(value, str) or not value:
                raise ValueError
            return value
        return typ(text)
    except ValueError:
        raise LpmError(f"--backend-option {clip(item, 60)}: {name} takes a {typ.__name__}") from None


def require_own_name(args: argparse.Namespace, options: tuple[tuple[str, object], ...]) -> None:
    """Backend options change what is measured: a store files such measurements under a name of their own."""
    if options and not args.device_name:
        opts = ",".join(f"{k}={v}" for k, v in options)
        raise LpmError(f"--backend-option {clip(opts, 60)} changes what is measured: file it under a name of its "
                       "own with --device-name (e.g. epyc-bf16), so it never mixes with the default settings' rows")


def log_for(command: str):
    """Progress lines to stderr; a `warning: ...` line is prefixed with the command, like the CLI's errors."""

    def log(line: str) -> None:
        print(f"lpm {command}: {line}" if line.startswith("warning: ") else line, file=sys.stderr)

    return log


# --- lpm profile -------------------------------------------------------------------------


def store_name(args: argparse.Namespace, reading: bool = False) -> str:
    """The device name `args` files under (or, `reading`, reads) in the store at `args.db` (see
    `lpm_zoo.backends.device.store_device_name`); the detected one when the store does not exist yet."""

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
