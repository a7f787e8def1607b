"""Device names: a slug of the hardware (`xeon`, `epyc`, `p100`); specs are parsed by `lpm_zoo.device`."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from lpm_zoo.device import cuda_missing, parse_device, plain_name  # noqa: F401 - re-exported for the backends
from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.hardware import HOST_IDENTITY_VAR, cpu_fingerprint, cpu_model, describe, host_slug, is_stated, same_hardware

if TYPE_CHECKING:
    from lpm_zoo.store import MeasurementStore

_VENDOR_WORDS = {"nvidia", "tesla", "geforce", "quadro", "amd", "radeon", "instinct", "intel"}
_FAMILY_WORDS = {"rtx", "gtx", "titan", "jetson"}


def short_gpu_name(full: str) -> str:
    """A GPU's short name: 'Tesla P100-PCIE-16GB' -> 'p100', 'NVIDIA GeForce RTX 3090' -> 'rtx3090'."""
    words = [w for w in re.split(r"[\s_]+", full.strip()) if w and w.lower() not in _VENDOR_WORDS]
    if not words:
        return re.sub(r"[^a-z0-9]+", "", full.lower()) or "gpu"
    first = words[0].split("-")[0].lower()
    if first in _FAMILY_WORDS and len(words) > 1:
        first += words[1].split("-")[0].lower()
    return re.sub(r"[^a-z0-9]+", "", first) or "gpu"


def _usable_cuda(device: str) -> int | None:
    """The CUDA index of `device` (None for a CPU); an LpmError with the reason when it is not usable here."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return None
    why = cuda_missing(index)
    if why:
        raise LpmError(f"{device}: {why} here; use --device cpu")
    return index


def device_model(device: str) -> str:
    """The full model name of `device` (CPU model, or torch's CUDA device name)."""
    index = _usable_cuda(device)
    if index is None:
        return cpu_model()
    import torch

    return torch.cuda.get_device_name(index)


def device_name(device: str, override: str | None = None) -> str:
    """The name measurements are filed under: `override`, else a slug of the hardware: the CPU's
    (`xeon`, `epyc`, `ryzen`, ...) or the GPU's short model name (`p100`)."""
    if override:
        if not plain_name(override):
            raise LpmError(f"--device-name {clip(override)}: use up to 64 letters, digits, '.', '_' or '-'")
        return override
    kind, _ = parse_device(device)
    return host_slug() if kind == "cpu" else short_gpu_name(device_model(device))


def store_device_name(store: MeasurementStore, backend: str, device: str, profile: str,
                      override: str | None = None, *, reading: bool = False) -> str:
    """The name to file under, or read from, in `store`: `override`; else the detected name
    (`device_name`) when the store has it or nothing; else the name the store already uses for this
    very hardware (stores written before names were slugs say `cpu`), so they resume where they
    stopped; and, when `reading` (a store's scale, not new rows), the store's only name.
    """
    if override:
        return device_name(device, override)
    default = device_name(device)
    names = store.devices(backend, profile)
    if not names or default in names:
        return default
    names = {n: hw for n, hw in names.items() if plain_name(n)}  # a store's odd text is never adopted
    if not names:
        return default
    if reading and len(names) == 1:
        return next(iter(names))
    here = device_fingerprint(device)
    same = [n for n, hw in names.items() if same_hardware(hw, here)]
    return same[0] if len(same) == 1 else default


def device_fingerprint(device: str) -> dict:
    """The hardware `device` is: the host CPU's fingerprint, or the GPU's (name, compute capability,
    memory, driver-facing CUDA and cuDNN versions) with the host CPU beside it."""
    index = _usable_cuda(device)
    if index is None:
        return cpu_fingerprint()
    import torch

    props = torch.cuda.get_device_properties(index)
    return {"kind": "cuda", "model": torch.cuda.get_device_name(index),
            "capability": f"{props.major}.{props.minor}", "memory_gb": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "host": cpu_fingerprint()}


def store_hardware(store: MeasurementStore, backend: str, name: str, profile: str) -> list[dict | None]:
    """What `store` says measured backend/name/profile: its recorded fingerprint (None when unreadable) and
    its first row's hardware (rows of older stores have only a CPU or GPU model string; rows that record
    none are left out); [] when it says nothing."""

    known: list[dict | None] = []
    recorded = store.meta(f"hardware/{backend}/{name}/{profile}")
    if recorded is not None:
        try:
            value = json.loads(recorded[:100_000])
        except ValueError:
            value = None
        known.append(value if isinstance(value, dict) and value.get("model") else None)
    row = store.devices(backend, profile).get(name)
    if row is not None:
        known.append(row)
    return known


def check_same_machine(store: MeasurementStore, backend: str, name: str, profile: str, here: dict,
                       db: str = "the store") -> None:
    """Refuse, in one line, to add this machine's timings to a store whose backend/name/profile were measured
    on other hardware (CPU model, ISA and any ISA cap, or GPU): name and fingerprint are checked, never the name
    alone, so `--device-name` cannot file one machine's timings under another's. A stated identity
    (`LPM_HOST_IDENTITY`, for tests) and a real one never share a store, whichever series they are in."""
    for theirs in store_hardware(store, backend, name, profile):
        if same_hardware(theirs, here):
            continue
        what = describe(theirs) if isinstance(theirs, dict) else "hardware it does not record readably"
        raise LpmError(f"{clip(db)} holds {backend}/{clip(name, 64)}/{profile} measured on {what}; this machine is "
                       f"{describe(here)}: its timings would mix two machines. Use a new --db, or --device-name "
                       f"{device_name('cpu') if here.get('kind') == 'cpu' else 'NAME'} (this machine's own)")
    check_stated_apart(store, here, db)


def check_stated_apart(store: MeasurementStore, here: dict, db: str = "the store") -> None:
    """Refuse, in one line, rows of a stated host identity into a store a real machine recorded, and the reverse:
    a stated identity times this machine under another's name, so its rows are kept out of real data."""
    stated_here = is_stated(here)
    if any(isinstance(hw, dict) and is_stated(hw) != stated_here for hw in store.recorded_hardware()):
        if stated_here:
            raise LpmError(f"{clip(db)} holds rows of a real machine and this run states its identity "
                           f"({HOST_IDENTITY_VAR}, for tests only): its timings would enter real data under another "
                           f"machine's name. Unset {HOST_IDENTITY_VAR}, or use a new --db")
        raise LpmError(f"{clip(db)} holds rows measured under a stated identity ({HOST_IDENTITY_VAR}, for tests "
                       "only): this machine's real timings never mix with them. Use a new --db")


def check_same_options(store: MeasurementStore, backend: str, name: str, profile: str, options: dict[str, Any],
                       db: str = "the store") -> None:
    """Refuse, in one line, rows measured with other backend options (`--backend-option`) than the series' rows:
    the options change what is timed, so they are part of a series' identity (bf16, f32 and default never mix)."""
    from lpm_zoo.store import Target

    theirs = store.series_options(Target(backend, name, profile))
    if theirs is None or theirs == options:
        return

    def said(opts: dict[str, Any]) -> str:
        return printable(",".join(f"{k}={v}" for k, v in sorted(opts.items())), 80) if opts else "the default options"

    raise LpmError(f"{clip(db)} holds {backend}/{clip(name, 64)}/{profile} measured with {said(theirs)}; these "
                   f"measurements use {said(options)}: one series never mixes backend options. File them under "
                   "another --device-name (e.g. one naming the options), or use a new --db")
