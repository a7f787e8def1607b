"""The measurement protocol: warm-up, short interleaved rounds, a noise-robust statistic, all recorded.

Noise on a shared machine only ever adds time, and it drifts. So a small group of models is
timed in turns (round 1 of R, A, B, C, D, then round 2 of each, ...), where R is a fixed reference
network timed in every group. A slow spell then hits a model and the reference alike, and the
kept statistic (`ref_ratio`) is the median over rounds of (the model's round median / the
reference's median in the same round), times one constant per store (the reference's time in
the store's first group), so it reads in milliseconds. Measured on this shared machine, this
brings re-measurements of the same architecture from ~6% apart (min or median of the runs) to
~1% (BENCHMARKS.md). On a CPU with one thread the clock is the timing thread's CPU time, so
time spent descheduled while other processes run is not counted (wall time otherwise; CUDA
events on GPUs). Raw per-run times are kept, round by round, so another statistic can be
computed later without measuring again (`statistic_of`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError
from lpm_zoo.statistics import STATISTICS, check_statistic, is_ratio, relative_uncertainty, statistic_of

__all__ = ["STATISTICS", "Protocol", "spread_of", "statistic_of", "time_interleaved"]

#: `--statistic auto`: the profiler measures a pilot and keeps the statistic that repeats best here
AUTO = "auto"
#: `--warmup-s` by default on a GPU: untimed turns until this many seconds have passed, so its clocks have
#: ramped up from idle (a few runs of a small network can end before they have); 0 on CPUs
GPU_WARMUP_S = 2.0
#: the smallest relative uncertainty a target may ask for: below it the clock's resolution and
#: the bootstrap's own noise decide, not the measurement
MIN_TARGET_PCT = 0.05
#: at most this many backend options; a name is a short identifier
MAX_BACKEND_OPTIONS = 16
OPTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Protocol:
    """How one architecture is timed: warm-up runs, rounds x `reps` timed runs, threads, statistic.

    With `target_pct`, timing is adaptive: after `min_rounds` rounds, a group stops as soon as
    every model's statistic has a relative uncertainty (bootstrap over rounds) at or below
    `target_pct`, and at `rounds` rounds at the latest; the rounds used are recorded per row.
    """

    warmup: int = 10
    warmup_s: float = 0.0  # then untimed turns of the group until this many seconds have passed since warm-up began
    rounds: int = 10
    reps: int = 10
    threads: int = 1
    statistic: str = "ref_ratio"
    interleave: int = 4  # models timed in turns
    clock: str = "auto"  # "thread" (CPU time of the timing thread), "wall", or auto: thread when threads == 1
    reference: bool = True  # time a fixed reference network in every group, to correct for drift
    target_pct: float | None = None  # adaptive stopping: the statistic's relative uncertainty to reach (%)
    min_rounds: int = 3
    #: (name, value) pairs passed to the backend's `prepare` (`--backend-option`), sorted by name; recorded in
    #: every row, so `lpm recheck` measures again with the same ones
    backend_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend_options", check_backend_options(self.backend_options))
        if self.statistic != AUTO:
            check_statistic(self.statistic)
        for field in ("rounds", "reps", "threads", "interleave", "min_rounds"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
                raise LpmError(f"protocol {field} must be an integer from 1 to 100000, got {str(value)[:40]}")
        if not isinstance(self.warmup, int) or not 0 <= self.warmup <= 100_000:
            raise LpmError(f"protocol warmup must be an integer from 0 to 100000, got {str(self.warmup)[:40]}")
        if (not isinstance(self.warmup_s, (int, float)) or isinstance(self.warmup_s, bool)
                or not math.isfinite(self.warmup_s) or not 0 <= self.warmup_s <= 600):
            raise LpmError(f"--warmup-s must be a number of seconds from 0 to 600, got {str(self.warmup_s)[:40]}")
        if is_ratio(self.statistic) and not self.reference:
            raise LpmError(f"the {self.statistic} statistic needs the reference network; choose another statistic "
                           "without it")
        if self.clock not in ("auto", "wall", "thread"):
            raise LpmError(f"unknown clock {str(self.clock)[:40]!r}; known: auto, wall, thread")
        if self.clock == "thread" and self.threads > 1:
            raise LpmError("the thread clock only times single-threaded runs; use --clock wall with --threads > 1")
        if self.target_pct is not None:
            if not (isinstance(self.target_pct, (int, float)) and MIN_TARGET_PCT <= self.target_pct <= 50):
                raise LpmError(f"--target-pct must be from {MIN_TARGET_PCT} to 50 (%), got "
                               f"{str(self.target_pct)[:40]}: below {MIN_TARGET_PCT}% the clock's resolution "
                               "decides, not the number of rounds")
            if self.min_rounds < 2 or self.min_rounds > self.rounds:
                raise LpmError(f"adaptive timing needs 2 <= min_rounds <= rounds; got min_rounds {self.min_rounds}, "
                               f"rounds {self.rounds}")

    def host_clock(self) -> str:
        """The host clock used on CPUs: the timing thread's CPU time for one thread, else wall time."""
        if self.clock == "auto":
            return "thread" if self.threads == 1 else "wall"
        return self.clock

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("backend_options")
        if self.backend_options:  # rows of the default settings are as before
            d["backend_options"] = dict(self.backend_options)
        d["clock"] = self.host_clock()
        d["spread"] = "iqr"  # spread_ms is the interquartile range of all timed runs
        if self.target_pct is not None:
            d["max_rounds"] = self.rounds  # `rounds` of a row is the number it used
        return d


def check_backend_options(options: Any) -> tuple[tuple[str, Any], ...]:
    """Backend options as sorted (name, value) pairs from pairs or a dict: names are short identifiers, values
    booleans, numbers or short strings, at most MAX_BACKEND_OPTIONS; anything else is an LpmError line."""
    items = list(options.items()) if isinstance(options, dict) else list(options) if isinstance(
        options, (list, tuple)) else None
    if items is None or len(items) > MAX_BACKEND_OPTIONS:
        raise LpmError(f"backend options must be at most {MAX_BACKEND_OPTIONS} name=value pairs")
    out: dict[str, Any] = {}
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and OPTION_NAME.fullmatch(item[0])):
            raise LpmError(f"a backend option is NAME=VALUE with NAME a short identifier, got {str(item)[:60]}")
        name, value = item
        ok = (isinstance(value, bool) or (isinstance(value, int) and abs(value) <= 2**53)
              or (isinstance(value, float) and math.isfinite(value))
              or (isinstance(value, str) and len(value) <= 64))
        if not ok:
            raise LpmError(f"backend option {name}: a boolean, a number or a string of at most 64 characters, "
                           f"got {str(value)[:40]}")
        if name in out:
            raise LpmError(f"backend option {name} given twice")
        out[name] = value
    return tuple(sorted(out.items()))


def default_warmup_s(device: str) -> float:
    """The time-based warm-up a device gets unless told: GPU_WARMUP_S on CUDA, none on CPUs."""

    return GPU_WARMUP_S if parse_device(device)[0] == "cuda" else 0.0


def spread_of(runs_ms: Sequence[float]) -> float:
    """Interquartile range of the runs (ms)."""
    q1, q3 = np.percentile(np.asarray(runs_ms, dtype=np.float64), [25, 75])
    return float(q3 - q1)


def time_interleaved(backend: Any, prepared: Sequence[Any], protocol: Protocol) -> list[list[float]]:
    """Raw times (ms, round-major) of each prepared model, timed in turns as the protocol says, after
    `protocol.warmup` untimed runs of each and untimed turns until `protocol.warmup_s` have passed.

    With `protocol.reference` the first prepared model is the reference network, timed in every
    round. With `protocol.target_pct`, a model leaves the turns once its statistic is known to the
    target (after `min_rounds`), so quiet models cost few rounds and noisy ones get up to
    `rounds`; a model's rounds are `len(runs[k]) // protocol.reps`, and the reference's runs of
    those same rounds are the first as many of its runs.
    """
    clock = protocol.host_clock()
    warm_until = time.perf_counter() + protocol.warmup_s
    for p in prepared:
        if protocol.warmup:
            backend.run_timed(p, protocol.warmup, clock)
    while time.perf_counter() < warm_until:  # a time-based warm-up: runs in turns until the clocks have settled
        for p in prepared:
            backend.run_timed(p, 1, clock)
    runs: list[list[float]] = [[] for _ in prepared]
    active = list(range(len(prepared)))
    first = 1 if protocol.reference else 0  # models from here on may settle; the reference never does
    for done in range(1, protocol.rounds + 1):
        for k in active:
            runs[k].extend(backend.run_timed(prepared[k], protocol.reps, clock))
        if protocol.target_pct is not None and done >= protocol.min_rounds:
            active = [k for k in active if k < first or not _settled(runs, k, done, protocol)]
            if len(active) == first:
                break
    return runs


def _settled(runs: list[list[float]], k: int, rounds: int, protocol: Protocol) -> bool:
    """Whether model k's statistic is known to the protocol's target after `rounds` rounds."""
    ref = runs[0][: len(runs[k])] if protocol.reference else None
    return relative_uncertainty(runs[k], rounds, protocol.statistic, ref) <= protocol.target_pct / 100


def protocol_flags(protocol: Protocol) -> list[str]:
    """The `lpm profile` flags from which `_protocol` builds `protocol` again: every field, so none is left behind.

    A field is `--field-name VALUE`, except `reference` (`--no-reference` when off) and an unset
    `target_pct` (0: fixed rounds); a field the CLI has no flag for fails to parse, not silently.
    """
    argv: list[str] = []
    for f in fields(protocol):
        value = getattr(protocol, f.name)
        if f.name == "reference":
            argv += [] if value else ["--no-reference"]
        elif f.name == "target_pct":
            argv += ["--target-pct", repr(float(value or 0))]
        elif f.name == "backend_options":
            for name, v in value:
                argv += ["--backend-option", f"{name}={json.dumps(v)}"]
        else:
            argv += [f"--{f.name.replace('_', '-')}", str(value)]
    return argv
