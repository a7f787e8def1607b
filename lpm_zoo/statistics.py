"""Summary statistics of raw timing runs, their uncertainty, and how repeatable each one is.

Everything here works on the raw runs a store keeps (`runs_ms`, round-major, and the reference
network's `reference_runs_ms` from the same rounds), so any statistic can be computed, compared
and chosen after the fact, without measuring again. It is device-independent: the profiler
(`backends/`) and `lpm data restat` / `lpm recheck` share it.

Ratio statistics are dimensionless (the architecture against the reference network timed in
turns with it, so a slow spell that hits both cancels); a store multiplies them by its one
reference baseline so they read in milliseconds. The others are absolute milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lpm_zoo.errors import LpmError

#: name -> what it is; ratio statistics end in "_ratio"
STATISTICS: dict[str, str] = {
    "ref_ratio": "median over rounds of (round median / the reference's round median)",
    "round_min_ratio": "median over rounds of (round min / the reference's round min)",
    "min_ratio": "min of all runs / the reference's min",
    "p10_ratio": "10th percentile of the runs / the reference's 10th percentile",
    "p25_ratio": "25th percentile of the runs / the reference's 25th percentile",
    "min_round_median": "the smallest round median (ms)",
    "median": "median of all runs (ms)",
    "p10": "10th percentile of all runs (ms)",
    "min": "min of all runs (ms)",
}


def is_ratio(statistic: str) -> bool:
    """Whether `statistic` is relative to the reference network (needs its runs and a baseline)."""
    return statistic.endswith("_ratio")


def check_statistic(statistic: str) -> str:
    """`statistic` if known, else an LpmError listing the known ones."""
    if statistic not in STATISTICS:
        raise LpmError(f"unknown statistic {str(statistic)[:40]!r}; known: {', '.join(STATISTICS)}")
    return statistic


def _rounds(x: np.ndarray, rounds: int, what: str) -> np.ndarray:
    if rounds < 1 or x.size % rounds:
        raise LpmError(f"{x.size} {what} do not split into {rounds} equal rounds")
    return x.reshape(rounds, -1)


def statistic_of(runs_ms: Sequence[float], rounds: int, statistic: str,
                 reference_runs_ms: Sequence[float] | None = None) -> float:
    """The statistic of raw runs stored round-major (`rounds` rounds of equal length)."""
    check_statistic(statistic)
    x = np.asarray(runs_ms, dtype=np.float64)
    if x.size == 0:
        raise LpmError("no timed runs to summarise")
    if is_ratio(statistic):
        if reference_runs_ms is None or len(reference_runs_ms) == 0:
            raise LpmError(f"the {statistic} statistic needs the reference network's runs")
        q = np.asarray(reference_runs_ms, dtype=np.float64)
        if statistic in ("ref_ratio", "round_min_ratio"):
            f = np.median if statistic == "ref_ratio" else np.min
            per_round = f(_rounds(x, rounds, "runs"), axis=1) / f(_rounds(q, rounds, "reference runs"), axis=1)
            return float(np.median(per_round))
        if statistic == "min_ratio":
            return float(x.min() / q.min())
        pct = 10 if statistic == "p10_ratio" else 25
        return float(np.percentile(x, pct) / np.percentile(q, pct))
    if statistic == "min_round_median":
        return float(np.median(_rounds(x, rounds, "runs"), axis=1).min())
    if statistic == "median":
        return float(np.median(x))
    if statistic == "p10":
        return float(np.percentile(x, 10))
    return float(x.min())


def relative_uncertainty(runs_ms: Sequence[float], rounds: int, statistic: str,
                         reference_runs_ms: Sequence[float] | None = None, n_boot: int = 64, seed: int = 0) -> float:
    """Relative half-width of the statistic's 68% interval, by a bootstrap over whole rounds.

    Rounds are resampled with replacement (a slow spell affects a whole round, so rounds, not
    runs, are the independent units). With one round there is nothing to resample: infinity.
    """
    if rounds < 2:
        return float("inf")
    x = _rounds(np.asarray(runs_ms, dtype=np.float64), rounds, "runs")
    q = None if reference_runs_ms is None else _rounds(np.asarray(reference_runs_ms, dtype=np.float64), rounds,
                                                       "reference runs")
    value = statistic_of(x.ravel(), rounds, statistic, None if q is None else q.ravel())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, rounds, size=(n_boot, rounds))
    boot = np.array([statistic_of(x[i].ravel(), rounds, statistic, None if q is None else q[i].ravel()) for i in picks])
    lo, hi = np.percentile(boot, [16, 84])
    return float((hi - lo) / 2 / value) if value > 0 else float("inf")


def repeatability(a: Iterable[float], b: Iterable[float]) -> dict[str, Any] | None:
    """How far two measurements of the same architectures fall apart: |a−b|/mean(a, b) in %, and Kendall τ.

    Its mean is the mean relative error of predicting one measurement by the other, so a
    predictor's MRE compares with it directly; τ between the two (3 pairs or more) is the ceiling
    of a predictor's τ. Pairs that are not finite and positive are left out; None with none left.
    """
    a, b = np.asarray(list(a), np.float64), np.asarray(list(b), np.float64)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    a, b = a[ok], b[ok]
    if not len(a):
        return None
    rel = np.abs(a - b) / ((a + b) / 2) * 100
    out: dict[str, Any] = {"n": int(len(a)), "mean_pct": float(rel.mean()), "median_pct": float(np.median(rel)),
                           "p90_pct": float(np.percentile(rel, 90)), "within10_pct": float(np.mean(rel <= 10) * 100)}
    if len(a) >= 3:
        from scipy.stats import kendalltau

        tau = kendalltau(a, b).statistic
        out["kendall_tau"] = float(tau) if np.isfinite(tau) else None
    return out


def latency_of(runs_ms: Sequence[float], protocol: dict[str, Any], statistic: str,
               baseline_ms: float | None) -> tuple[float, float | None]:
    """(latency in ms, ratio or None) of one stored measurement under `statistic`.

    A ratio statistic reads in the store's milliseconds through `baseline_ms` (the store's one
    reference time); the rounds and the reference's runs come from the row's `protocol`.
    """
    rounds = int(protocol.get("rounds", 1))
    if is_ratio(statistic):
        if baseline_ms is None:
            raise LpmError(f"the {statistic} statistic needs the store's reference baseline")
        ratio = statistic_of(runs_ms, rounds, statistic, protocol.get("reference_runs_ms"))
        return ratio * baseline_ms, ratio
    return statistic_of(runs_ms, rounds, statistic), None


def compare_statistics(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                       statistics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The repeatability of every statistic over the same pairs of raw measurements, best first.

    Each side of a pair is `{"runs_ms", "rounds", "reference_runs_ms"}` (the latter may be None,
    which leaves out the ratio statistics for that pair). Ranked by mean |a−b|/mean.
    """
    rows = []
    for stat in statistics or list(STATISTICS):
        a, b = [], []
        for x, y in pairs:
            if is_ratio(stat) and (not x.get("reference_runs_ms") or not y.get("reference_runs_ms")):
                continue
            try:
                va = statistic_of(x["runs_ms"], x["rounds"], stat, x.get("reference_runs_ms"))
                vb = statistic_of(y["runs_ms"], y["rounds"], stat, y.get("reference_runs_ms"))
            except LpmError:
                continue
            a.append(va)
            b.append(vb)
        rep = repeatability(a, b)
        if rep is not None:
            rows.append({"statistic": stat, **rep})
    return sorted(rows, key=lambda r: r["mean_pct"])
