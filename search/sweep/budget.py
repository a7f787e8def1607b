"""The budget curve (`lpm sweep --anytime`): the test accuracy of the cell each λ = 0 search held after epoch N (argmax
α then, trained and measured like the final cell), against N, with the random cells' median and 80th percentile
as lines: where does the search start to pay? The last point is the search's own cell.

It is the anytime curve of one search schedule (Zela et al. 2020 plot the same for DARTS): a search stopped after
N epochs of a longer cosine schedule, not a search planned for N epochs."""

from __future__ import annotations

import io
import math
import statistics
from pathlib import Path
from typing import Any

from lpm_zoo.search.options import METHODS
from lpm_zoo.search.sweep.claims import random_band

#: a point says the search pays only when its mean over at least this many seeds reaches the line
MIN_SEEDS = 2


def search_flag(settings: dict[str, Any], flag: str) -> int | None:
    """The integer the sweep passes to every `lpm search` as `flag` (None when its flags do not give it, or give
    no epoch count: grid.json is read back as data)."""
    flags = settings["search"]
    try:
        v = flags[flags.index(flag) + 1]
        n = int(v) if isinstance(v, str) and len(v) <= 7 else None
    except (ValueError, IndexError):
        return None
    return n if n is not None and 0 <= n <= 10**6 else None


def warmup(settings: dict[str, Any], method: str) -> int | None:
    """The epochs with α frozen in the sweep's searches of `method`: --warmup-epochs, else the method's default."""
    given, epochs = search_flag(settings, "--warmup-epochs"), search_flag(settings, "--epochs")
    if given is not None:
        return given
    return METHODS[method].warmup_for(epochs) if method in METHODS and epochs is not None else None


def curve(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per method, one point per epoch (the --anytime epochs, then the last): epoch, the seeds' accuracies (%)
    and their mean and standard deviation. Only the λ = 0 trials with every anytime cell trained count, so each
    point averages the same seeds. `rows` are one dataset's."""
    final = search_flag(settings, "--epochs")
    keys = [*((e, f"test_acc_e{e}") for e in settings.get("anytime", [])), *([(final, "test_acc")] if final else [])]
    out: dict[str, list[dict[str, Any]]] = {}
    zero = [r for r in rows if r.get("kind") == "search" and r.get("lambda") == "0"
            and all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for _, k in keys)]
    for method in sorted({str(r.get("method")) for r in zero}):
        mine = [r for r in zero if str(r.get("method")) == method]
        points = []
        for epoch, key in keys:
            accs = [100.0 * r[key] for r in mine]
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
                line += (f"; first reaches {name} ({bar:.2f}%) at epoch {first}" if first is not None
                         else f"; never reaches {name} ({bar:.2f}%)")
        out.append(line)
    return out


def plot_budget(curves: dict[str, list[dict[str, Any]]], crows: list[dict[str, Any]], path: Path | io.BytesIO,
                warmups: dict[str, int | None], title: str) -> None:
    """Accuracy against search epoch per method (each seed a dot, the mean a line), random median and 80th
    percentile as horizontal lines, each method's warm-up (α frozen) marked."""
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
    for i, method in enumerate(sorted(curves)):
        w = warmups.get(method)
        if w:
            ax.axvline(w + 0.5, color=plt.cm.tab10(i), ls="-.", lw=1, label=f"{method}: α frozen up to epoch {w}")
    ax.set_xlabel("search epoch after which the cell is taken (argmax α)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
