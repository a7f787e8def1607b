"""The budget curve (`lpm sweep --anytime`): the test accuracy of the cell each λ = 0 search held after epoch N (argmax
α then, trained and measured like the final cell), against N, with the random cells' median and 80th percentile
as lines: where does the search start to pay? The last point is the search's own cell.

It is the anytime curve of one search schedule (Zela et al. 2020 plot the same for DARTS): a search stopped after
N epochs of a longer cosine schedule, not a search planned for N epochs."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from lpm_zoo.search.sweep.claims import random_band

#: a point says the search pays only when its mean over at least this many seeds reaches the line
MIN_SEEDS = 2


def search_flag(settings: dict[str, Any], flag: str) -> int | None:
    """The integer the sweep passes to every `lpm search` as `flag` (None when its flags do not give it)."""
    flags = settings["search"]
    try:
        return int(flags[flags.index(flag) + 1])
    except (ValueError, IndexError):
        return None


def curve(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per method, one point per epoch (the --anytime epochs, then the last): epoch, the seeds' accuracies (%)
    and their mean and standard deviation."""
    final = search_flag(settings, "--epochs")
    epochs = list(settings.get("anytime", []))
    out: dict[str, list[dict[str, Any]]] = {}
    zero = [r for r in rows if r.get("kind") == "search" and r.get("lambda") == "0"]
    for method in sorted({str(r.get("method")) for r in zero}):
        mine = [r for r in zero if str(r.get("method")) == method]
        points = []
        for epoch, key in [*((e, f"test_acc_e{e}") for e in epochs), (final, "test_acc")]:
            accs = [100.0 * r[key] for r in mine if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
            if accs and epoch is not None:
                points.append({"epoch": epoch, "accs": accs, "mean": statistics.mean(accs),
                               "sd": statistics.stdev(accs) if len(accs) >= 2 else float("nan")})
        if len(points) >= 2:
            out[method] = points
    return out


def verdicts(curves: dict[str, list[dict[str, Any]]], crows: list[dict[str, Any]]) -> list[str]:
    """Per method, the curve in words and the first epoch whose mean reaches the random median (and the 80th
    percentile), over at least MIN_SEEDS seeds."""
    band = random_band(crows)
    out = []
    for method, points in curves.items():
        shown = ", ".join(f"epoch {p['epoch']}: {p['mean']:.2f}%" + (f" ± {p['sd']:.2f}" if p["sd"] == p["sd"] else "")
                          + f" ({len(p['accs'])} seeds)" for p in points)
        line = f"{method}, λ = 0, test accuracy of the cell held after each search epoch: {shown}"
        if band["cells"]:
            for name, bar in (("the random median", band["median"]), ("the random 80th percentile", band["p80"])):
                first = next((p["epoch"] for p in points if len(p["accs"]) >= MIN_SEEDS and p["mean"] >= bar), None)
                line += (f"; reaches {name} ({bar:.2f}%) from epoch {first}" if first is not None
                         else f"; never reaches {name} ({bar:.2f}%)")
        out.append(line)
    return out


def plot_budget(curves: dict[str, list[dict[str, Any]]], crows: list[dict[str, Any]], path: Path,
                warmup: int | None) -> None:
    """Accuracy against search epoch per method (each seed a dot, the mean a line), random median and 80th
    percentile as horizontal lines, the warm-up (α frozen) shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    band = random_band(crows)
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    for i, (method, points) in enumerate(sorted(curves.items())):
        color = plt.cm.tab10(i)
        ax.plot([p["epoch"] for p in points], [p["mean"] for p in points], "-o", color=color,
                label=f"{method}, λ = 0: mean over seeds")
        for p in points:
            ax.scatter([p["epoch"]] * len(p["accs"]), p["accs"], s=12, color=color, alpha=0.5)
    if band["cells"]:
        ax.axhline(band["median"], color="0.4", ls=":", label=f"random cells' median ({band['cells']} cells)")
        ax.axhline(band["p80"], color="0.4", ls="--", label="random cells' 80th percentile")
    if warmup:
        ax.axvspan(0.5, warmup + 0.5, color="0.9", label="warm-up: α frozen")
    ax.set_xlabel("search epoch after which the cell is taken (argmax α)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title("the budget curve: where does the search start to pay?", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
