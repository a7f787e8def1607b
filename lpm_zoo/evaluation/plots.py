"""PNG figures of a predictor comparison: the paper's Table 1 as a plot, predicted vs measured,
and latency vs multiply-adds (the paper's Figure 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def error_vs_train_size(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Mean relative error against training-set size, one line per predictor type."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in dict.fromkeys(r["predictor"] for r in rows):
        rs = [r for r in rows if r["predictor"] == t]
        ax.plot([r["train_size"] for r in rs], [r["mre_pct"] for r in rs], marker="o", label=t)
    ax.set_xscale("log")
    ax.set_xlabel("training architectures")
    ax.set_ylabel("mean relative error on held-out set (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predicted_vs_measured(preds: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """One scatter per predictor type (its largest training size) with the y = x and ±10% lines."""
    plt = pyplot()
    n = len(preds)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (t, (y, p)) in zip(axes.flat, preds.items()):
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.scatter(y, p, s=3, alpha=0.4)
        xs = np.array([lo, hi])
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.plot(xs, 1.1 * xs, "k:", lw=0.6)
        ax.plot(xs, 0.9 * xs, "k:", lw=0.6)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("measured (ms)", fontsize=8)
        ax.set_ylabel("predicted (ms)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_vs_madds(madds_m: np.ndarray, latency_ms: np.ndarray, path: Path, title: str) -> dict[str, float]:
    """Measured latency against multiply-adds (the paper's Figure 2); returns the correlations drawn."""
    from scipy.stats import kendalltau, pearsonr

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(madds_m, latency_ms, s=3, alpha=0.4)
    a, b = np.polyfit(madds_m, latency_ms, 1)
    xs = np.linspace(madds_m.min(), madds_m.max(), 2)
    ax.plot(xs, a * xs + b, "r-", lw=1, label="least-squares line")
    stats = {"pearson_r": float(pearsonr(madds_m, latency_ms)[0]),
             "kendall_tau": float(kendalltau(madds_m, latency_ms)[0])}
    ax.set_xlabel("multiply-adds (M)")
    ax.set_ylabel("measured latency (ms)")
    ax.set_title(f"{title}\nPearson r={stats['pearson_r']:.3f}, Kendall tau={stats['kendall_tau']:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return stats
