"""Where measurements are filed: a `Target` (backend, device name, profile), and the per-target meta keys
(the baseline ratio latencies are scaled to, the statistic in force)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from lpm_zoo.errors import LpmError


class Target(NamedTuple):
    """Where measurements are filed in a store: the backend, the device's name, the measurement profile."""

    backend: str
    device: str
    profile: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.device}/{self.profile}"


def baseline_key(target: Target) -> str:
    """The `meta` key of the reference baseline (ms) a store's ratio latencies are expressed in."""
    return f"baseline_ms/{target}"


def checked_baseline(value: Any, where: str) -> float:
    """A baseline as a float; a non-finite or non-positive one (a damaged store) is an LpmError."""
    try:
        base = float(value)
    except (TypeError, ValueError):
        base = math.nan
    if not (math.isfinite(base) and base > 0):
        raise LpmError(f"the reference baseline of {where} is {str(value)[:40]!r}, not a positive number of ms; "
                       f"the store is damaged: fill a new one with `lpm profile`")
    return base


def statistic_key(target: Target) -> str:
    """The `meta` key of the statistic a store's backend/device/profile is summarised with."""
    return f"statistic/{target}"
