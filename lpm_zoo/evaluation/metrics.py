"""Held-out evaluation of predictors: a fixed split, the accuracy metrics, and the comparison table.

The split is a seeded permutation of the dataset: the first `test_size` architectures are the
held-out set, the rest the training pool; a training set of size k is the first k of the pool,
so larger training sets contain the smaller ones (the paper's Table 1 protocol).
"""

from __future__ import annotations

import numpy as np

from lpm_zoo.errors import LpmError


def default_test_size(n: int) -> int:
    """Held-out size used when none is given: a fifth of the data, at most 2,000 architectures."""
    return max(1, min(2000, n // 5))


def split_indices(n: int, test_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, held-out) index arrays of a fixed seeded split of `n` architectures."""
    if not 0 <= test_size < n:
        raise LpmError(f"a held-out set of {test_size} leaves no training data out of {n} architectures")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[test_size:], perm[:test_size]


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE (ms), mean relative error (%), shares within ±5% and ±10% (%), Kendall τ, Spearman ρ."""
    from scipy.stats import kendalltau, spearmanr

    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    rel = np.abs(y_pred - y_true) / np.abs(y_true)
    const = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "n": int(len(y_true)),
        "mae_ms": float(np.mean(np.abs(y_pred - y_true))),
        "mre_pct": float(100 * rel.mean()),
        "within5_pct": float(100 * np.mean(rel <= 0.05)),
        "within10_pct": float(100 * np.mean(rel <= 0.10)),
        "kendall_tau": float("nan") if const else float(kendalltau(y_true, y_pred)[0]),
        "spearman_rho": float("nan") if const else float(spearmanr(y_true, y_pred)[0]),
    }


def relative_spread_pct(latency_ms: np.ndarray, spread_ms: np.ndarray) -> float:
    """Mean IQR of the raw runs over the latency (%): the spread within a measurement, not the agreement
    of two measurements of one architecture (that repeatability is measured in BENCHMARKS.md)."""
    ok = np.isfinite(spread_ms) & (latency_ms > 0)
    return float(100 * np.mean(spread_ms[ok] / latency_ms[ok])) if ok.any() else float("nan")
