"""Every wait has a bound: a plugin's `available()`, a Ray join. Each bound is a default that an environment
variable may change (tests shorten it), clamped to a sane range; a value that is not a number keeps the default."""

from __future__ import annotations

import math
import os


def seconds_from_env(var: str, default: float, lo: float, hi: float) -> float:
    """`$var` as seconds, clamped to [lo, hi]; `default` when it is unset, empty or not a finite number."""
    try:
        value = float(os.environ.get(var, "") or default)
    except ValueError:
        return default
    return min(max(value, lo), hi) if math.isfinite(value) else default
