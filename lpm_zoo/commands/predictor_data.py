"""What `lpm fit` and `lpm compare` share: the store and target flags, predictor parameters (`--param`),
the device name a store files its data under, and loading the dataset."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lpm_zoo.cli import check_seed
from lpm_zoo.device import plain_name
from lpm_zoo.errors import LpmError, clip


def data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, metavar="PATH", help="measurement database (written by lpm profile)")
    p.add_argument("--backend", required=True, help="backend the latencies were measured on (e.g. ort, torch, trt)")
    p.add_argument("--device", dest="run_device", default=None, help=argparse.SUPPRESS)  # refused: see resolve_device
    p.add_argument("--device-name", dest="device", default=None,
                   help="the device name the data is filed under, as `lpm data info` shows it (e.g. xeon, p100; "
                        "default: the store's only one for this backend and profile)")
    p.add_argument("--profile", required=True, help="measurement profile (e.g. cifar-b1)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="held-out architectures (fixed seeded split; default: a fifth of the data, at most 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--epochs", type=int, default=None, metavar="E", help="training epochs of the mlp types")
    p.add_argument("--param", action="append", default=[], metavar="[TYPE.]KEY=VALUE",
                   help="a predictor parameter (JSON value), e.g. --param rf.n_estimators=100; repeatable")


def _parse_params(specs: list[str]) -> list[tuple[str | None, str, Any]]:
    """(type or None, key, value) of each --param; a value is JSON, or else the bare word itself."""

    out = []
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not key:
            raise LpmError(f"--param {clip(spec)}: expected [TYPE.]KEY=VALUE, e.g. --param mlp.epochs=200")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except (ValueError, RecursionError):  # a number over 4300 digits, nesting too deep
            raise LpmError(f"--param {clip(key)}: the value is too large or nested too deeply") from None
        typ, _, name = key.rpartition(".")
        out.append((typ or None, name, value))
    return out


def params_for(args: argparse.Namespace):
    """A function giving the constructor parameters of a predictor type from the command line (checked)."""

    from lpm_zoo.predictors import predictor_class
    from lpm_zoo.predictors.registry import check_params
    from lpm_zoo.profiles import get_profile


    specs = _parse_params(args.param)
    get_profile(args.profile)
    if args.epochs is not None and args.epochs < 1:
        raise LpmError(f"--epochs must be at least 1, got {args.epochs}")
    check_seed(args.seed)
    if args.test_size is not None and args.test_size < 0:
        raise LpmError(f"--test-size must be >= 0, got {clip(args.test_size)}")

    def params(t: str) -> dict[str, Any]:
        names = predictor_class(t)._param_names()
        out: dict[str, Any] = {}
        if "profile" in names:
            out["profile"] = args.profile
        if args.epochs is not None and "epochs" in names:
            out["epochs"] = args.epochs
        for typ, key, value in specs:
            if typ is not None:
                predictor_class(typ)  # a misspelled type prefix is an error, not silently ignored
            if typ is None or typ == t:
                if key not in names:
                    if typ is None:
                        continue
                    raise LpmError(f"--param {clip(typ)}.{clip(key)}: {t} has no parameter {clip(key)}; "
                                   f"it has {', '.join(names)}")
                out[key] = value
        check_params(t, out)
        return out

    return params


def resolve_device(args: argparse.Namespace) -> str:
    """`args.device`, or the one device name the store files this backend/profile under (set on `args`)."""
    if args.run_device is not None:
        raise LpmError(f"--device {clip(args.run_device)}: the data's device is named with --device-name (--device is "
                       "where a command runs, and fitting needs no device)")

    from lpm_zoo.store import MeasurementStore, resolve_db


    if args.device is None:
        names: list[str] = []
        if resolve_db(args.db).is_file():
            with MeasurementStore(args.db, readonly=True) as store:
                names = list(store.devices(args.backend, args.profile))
        if len(names) > 1:
            raise LpmError(f"{clip(args.db)} holds {args.backend}/{args.profile} measurements of several devices "
                           f"({', '.join(clip(n, 40) for n in names[:8])}); choose one with --device-name")
        args.device = names[0] if names else "cpu"  # none: load_dataset says what the store holds
        if not plain_name(args.device):  # a store's text names no directory
            raise LpmError(f"{clip(args.db)} files its data under the device name {clip(args.device, 40)}, which is not "
                           "a plain word; give --device-name and --name")
    return args.device


def load_data(args: argparse.Namespace):
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.store import Target, load_dataset, skipped_note

    get_profile(args.profile)
    data = load_dataset(args.db, Target(args.backend, resolve_device(args), args.profile))  # read-only; bad rows left out
    if data.skipped:
        print(f"lpm {getattr(args, 'command', 'fit')}: warning: {skipped_note(data.skipped)}", file=sys.stderr)
    return data


# --- lpm fit ---------------------------------------------------------------------------------------
