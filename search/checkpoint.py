"""Checkpoints of long runs: `torch.save` written atomically, read back only with `weights_only=True`;
and the Ctrl-C handling that lets a run finish its current step and save before it exits."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from lpm_zoo.device import canonical_device, cuda_missing, parse_device
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import new_temp, refuse_link


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` (tensors, state dicts, plain values) to `path` via a temporary file and a rename.

    If writing fails, the previous checkpoint stays as it was and the error is one LpmError line.
    """
    tmp = _tmp(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with new_temp(tmp) as f:  # never through a link planted in --out
            torch.save(payload, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports some file errors as RuntimeError
        with contextlib.suppress(OSError):
            if not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise LpmError(f"cannot write the checkpoint {clip(str(path))} ({why}); "
                       "the previous checkpoint, if any, is unchanged") from None


def check_checkpoint_path(path: Path) -> None:
    """Before any work: `path` (and its temporary twin) must be a regular file or absent, in a writable folder."""
    for p in (path, _tmp(path)):
        if refuse_link(p) and not p.is_file():
            raise LpmError(f"{clip(str(p))} is not a regular file (a folder or a device?); "
                           "remove it or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LpmError(f"cannot create the output folder {clip(str(path.parent))} ({e.strerror}); "
                       "choose another --out") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise LpmError(f"the output folder {clip(str(path.parent))} is not writable; choose another --out")


def check_number(flag: str, value: float | None, lo: float = 0.0, above: bool = False) -> None:
    """Refuse NaN, infinities and values below `lo` (or, if `above`, not above it) for option `flag`."""
    if value is None:
        return
    if not math.isfinite(value) or value < lo or (above and value == lo):
        raise LpmError(f"{flag} must be a finite number {'>' if above else '>='} {lo:g}, got {clip(value)}")


AFRESH = "remove it (or pass --restart, which deletes it) or use another --out to start afresh"


def _plain(value: Any) -> str | None:
    """`value` as JSON for comparing settings; None when it is not plain data (a tensor planted in a checkpoint)."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return None


def load_checkpoint(path: Path, device: torch.device | str, config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint (no code executed) and check it was made with the same `config`; refusals are one line."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file is a user-facing condition
        why = ("it holds objects other than tensors and plain data, which lpm never unpickles"
               if "weights only" in str(e).lower() else f"not a torch checkpoint, or a damaged one: {type(e).__name__}")
        raise LpmError(f"cannot read the checkpoint {clip(str(path))} ({why}); {AFRESH}") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("config"), dict):
        raise LpmError(f"{clip(str(path))} is not a checkpoint of this command (no settings in it); {AFRESH}")
    theirs = ck["config"]
    diff = sorted(k for k in config if _plain(config[k]) != _plain(theirs.get(k)))
    if diff:
        raise LpmError(f"the checkpoint {clip(str(path))} was made with other settings ({', '.join(diff)}); "
                       "use the same flags, or another --out, or --restart")
    return ck


@contextlib.contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Turn any failure to restore a checkpoint that was read (wrong shapes, missing entries) into one line."""
    try:
        yield
    except LpmError:
        raise
    except Exception as e:  # noqa: BLE001 - a checkpoint is data from disk; its content is never echoed
        text = str(e)
        why = ("its tensors have other shapes than this run's network" if "size mismatch" in text else
               "its tensors are not this run's network" if "key(s) in state_dict" in text else
               f"an entry is missing or of the wrong kind: {type(e).__name__}")
        raise LpmError(f"the checkpoint {clip(str(path))} does not fit this run ({why}); {AFRESH}") from None


@contextlib.contextmanager
def sigint_flag(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Route Ctrl-C (SIGINT) to `handler` for the duration, restoring the previous handler after.

    Signals can only be handled in the main thread; elsewhere Ctrl-C keeps its default behaviour.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_device(device: str) -> str:
    """`device` as torch takes it (cpu, cuda or cuda:N), or a one-line error why it cannot be used here."""
    try:
        spec = canonical_device(device)
    except LpmError:
        raise LpmError(f"--device {clip(device)} is not a device; use cpu, cuda or cuda:N") from None
    kind, index = parse_device(spec)
    why = cuda_missing(index) if kind == "cuda" else ""
    if why:
        raise LpmError(f"--device {clip(device)}: {why} here; use --device cpu")
    return spec
