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

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from lpm_zoo.errors import LpmError

STATISTICS = ("ref_ratio", "min_round_median", "median", "p10", "min")


@dataclass(frozen=True)
class Protocol:
    """How one architecture is timed: warm-up runs, `rounds` x `reps` timed runs, threads, statistic."""

    warmup: int = 10
    rounds: int = 10
    reps: int = 10
    threads: int = 1
    statistic: str = "ref_ratio"
    interleave: int = 4  # models timed in turns
    clock: str = "auto"  # "thread" (CPU time of the timing thread), "wall", or auto: thread when threads == 1
    reference: bool = True  # time a fixed reference network in every group, to correct for drift

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise LpmError(f"unknown statistic {self.statistic!r}; known: {', '.join(STATISTICS)}")
        for field in ("rounds", "reps", "threads", "interleave"):
            if getattr(self, field) < 1:
                raise LpmError(f"protocol {field} must be at least 1, got {getattr(self, field)}")
        if self.statistic == "ref_ratio" and not self.reference:
            raise LpmError("the ref_ratio statistic needs the reference network; choose another statistic without it")
        if self.clock not in ("auto", "wall", "thread"):
            raise LpmError(f"unknown clock {self.clock!r}; known: auto, wall, thread")
        if self.clock == "thread" and self.threads > 1:
            raise LpmError("the thread clock only times single-threaded runs; use --clock wall with --threads > 1")
        if self.warmup < 0:
            raise LpmError(f"protocol warmup must be >= 0, got {self.warmup}")

    def host_clock(self) -> str:
        """The host clock used on CPUs: the timing thread's CPU time for one thread, else wall time."""
        if self.clock == "auto":
            return "thread" if self.threads == 1 else "wall"
        return self.clock

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clock"] = self.host_clock()
        d["spread"] = "iqr"  # spread_ms is the interquartile range of all timed runs
        return d


def statistic_of(runs_ms: Sequence[float], rounds: int, statistic: str,
                 reference_runs_ms: Sequence[float] | None = None) -> float:
    """The statistic of raw runs stored round-major (`rounds` rounds of equal length).

    `ref_ratio` is dimensionless: the median over rounds of (round median / the reference's
    median in the same round); the profiler multiplies it by the store's reference baseline.
    """
    x = np.asarray(runs_ms, dtype=np.float64)
    if x.size == 0:
        raise LpmError("no timed runs to summarise")
    if statistic == "ref_ratio":
        if reference_runs_ms is None:
            raise LpmError("the ref_ratio statistic needs the reference network's runs")
        q = np.asarray(reference_runs_ms, dtype=np.float64)
        if x.size % rounds or q.size % rounds:
            raise LpmError(f"runs do not split into {rounds} equal rounds")
        return float(np.median(np.median(x.reshape(rounds, -1), axis=1) / np.median(q.reshape(rounds, -1), axis=1)))
    if statistic == "min_round_median":
        if x.size % rounds:
            raise LpmError(f"{x.size} runs do not split into {rounds} equal rounds")
        return float(np.median(x.reshape(rounds, -1), axis=1).min())
    if statistic == "median":
        return float(np.median(x))
    if statistic == "p10":
        return float(np.percentile(x, 10))
    if statistic == "min":
        return float(x.min())
    raise LpmError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")


def spread_of(runs_ms: Sequence[float]) -> float:
    """Interquartile range of the runs (ms)."""
    q1, q3 = np.percentile(np.asarray(runs_ms, dtype=np.float64), [25, 75])
    return float(q3 - q1)


def time_interleaved(backend: Any, prepared: Sequence[Any], protocol: Protocol) -> list[list[float]]:
    """Raw times (ms, round-major) of each prepared model, timed in turns as the protocol says."""
    clock = protocol.host_clock()
    for p in prepared:
        if protocol.warmup:
            backend.run_timed(p, protocol.warmup, clock)
    runs: list[list[float]] = [[] for _ in prepared]
    for _ in range(protocol.rounds):
        for k, p in enumerate(prepared):
            runs[k].extend(backend.run_timed(p, protocol.reps, clock))
    return runs
