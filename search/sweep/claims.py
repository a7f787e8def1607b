"""The search claim against the random-search baseline (the NAS field's sanity check, Li & Talwalkar 2019; Yang et
al. 2020): from a sweep's rows, the random cells' accuracy band (spread between cells against spread between
training seeds of one cell), its median, 80th percentile and Pareto front, and each claim with pass or fail:

- the λ = 0 search is as good as the published cell (mean accuracy ≥ DARTS_V2's − 1 point) and no worse than
  picking a cell at random (≥ the random cells' median);
- some λ > 0 gives ≥ 30% lower measured whole-network latency than λ = 0 at a mean accuracy within 1 point of it,
  over ≥ 3 seeds, and is not dominated by the random cells (at most 10% of them both faster and as accurate).

Plus the picture (accuracy against measured ms: the random cloud and its front, the published cells, the found
cells) and one plain row per trained network and training seed (`claim_rows`, committed as
benchmarks/results/search-claim.json)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from lpm_zoo.published import list_genotypes
from lpm_zoo.space import Genotype

#: λ = 0's mean test accuracy may be at most this many points under DARTS_V2's
POINTS_UNDER_PUBLISHED = 1.0
#: a latency-aware point must be at least this much faster than λ = 0, measured on the whole network ...
CUT_PCT = 30.0
#: ... at a mean accuracy at most this many points under λ = 0's ...
ACC_POINTS = 1.0
#: ... over at least this many search seeds ...
MIN_SEEDS = 3
#: ... and at most this share of the random cells may be both faster and at least as accurate as its mean point
MAX_DOMINATING = 0.10


def _acc(row: dict[str, Any]) -> float | None:
    a = row.get("test_acc")
    return 100.0 * a if isinstance(a, (int, float)) and math.isfinite(a) else None


def _ms(row: dict[str, Any], column: str) -> float | None:
    v = row.get(column)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else None


def _skips(genotype: str) -> int:
    try:
        return sum(1 for op, _ in json.loads(genotype)["normal"] if op == "skip_connect")
    except (ValueError, KeyError, TypeError):
        return -1


def claim_rows(rows: list[dict[str, Any]], whole_column: str) -> list[dict[str, Any]]:
    """One plain row per trained network and training seed: kind, method, λ, search seed, training seed, genotype
    (a published name or the DARTS string), test accuracy (0–1), whole-network ms and normal-cell skips."""
    out = []
    for r in rows:
        if r.get("kind") not in ("search", "random", "reference") or _acc(r) is None:
            continue
        search = r["kind"] == "search"
        if r["kind"] == "reference" and r.get("reference") in list_genotypes():
            name = str(r["reference"])
        else:
            name = Genotype.from_json(r["genotype"]).to_darts()
        out.append({"kind": r["kind"], "method": r.get("method"), "lambda": r.get("lambda"),
                    "seed": r.get("seed") if search else None, "train_seed": r.get("seed"), "genotype": name,
                    "test_acc": round(_acc(r) / 100, 6), "whole_ms": _ms(r, whole_column), "skips": _skips(r["genotype"])})
    return out


def _by_network(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["genotype"], []).append(r)
    return out


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if v is not None]
    return statistics.mean(vals) if vals else float("nan")


def _quantile(vals: list[float], q: float) -> float:
    vals = sorted(vals)
    if not vals:
        return float("nan")
    pos = q * (len(vals) - 1)
    lo = math.floor(pos)
    return vals[lo] + (vals[min(lo + 1, len(vals) - 1)] - vals[lo]) * (pos - lo)


def random_band(crows: list[dict[str, Any]]) -> dict[str, Any]:
    """The random cells' band: per-cell mean accuracy and ms; the spread between cells (standard deviation of the
    cell means) against the spread between training seeds of one cell (pooled within-cell standard deviation)."""
    cells = _by_network([r for r in crows if r["kind"] == "random"])
    means = [(_mean([r["test_acc"] * 100 for r in rs]), _mean([r["whole_ms"] for r in rs])) for rs in cells.values()]
    within = [statistics.variance([r["test_acc"] * 100 for r in rs]) for rs in cells.values() if len(rs) >= 2]
    accs = [a for a, _ in means]
    return {"cells": len(cells), "points": means,
            "between_cells_sd": statistics.stdev(accs) if len(accs) >= 2 else float("nan"),
            "between_seeds_sd": math.sqrt(statistics.mean(within)) if within else float("nan"),
            "median": _quantile(accs, 0.5), "p80": _quantile(accs, 0.8)}


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front of (accuracy, ms) points: no other point is both faster and at least as accurate."""
    pts = sorted((p for p in points if not math.isnan(p[1])), key=lambda p: (p[1], -p[0]))
    out, best = [], -math.inf
    for acc, ms in pts:
        if acc > best:
            out.append((acc, ms))
            best = acc
    return out


def _groups(crows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in crows:
        if r["kind"] == "search":
            out.setdefault((r["method"], r["lambda"]), []).append(r)
    return out


def _point(rs: list[dict[str, Any]]) -> tuple[float, float]:
    return _mean([r["test_acc"] * 100 for r in rs]), _mean([r["whole_ms"] for r in rs])


def verdicts(crows: list[dict[str, Any]]) -> list[str]:
    """Each claim of the module docstring, with pass or fail and the numbers behind it."""
    band = random_band(crows)
    refs = _by_network([r for r in crows if r["kind"] == "reference"])
    out = []
    if band["cells"]:
        seeds = band["between_seeds_sd"]
        out.append(f"random cells: {band['cells']}, accuracy median {band['median']:.2f}%, 80th percentile "
                   f"{band['p80']:.2f}%; spread between cells (sd of cell means) {band['between_cells_sd']:.2f} points "
                   + (f"against {seeds:.2f} between training seeds of one cell" if not math.isnan(seeds)
                      else "(one training seed per cell so far: the spread between seeds is not known)"))
    groups = _groups(crows)
    darts = refs.get("DARTS_V2")
    for method in sorted({m for m, _ in groups}):
        zero = groups.get((method, "0"))
        if not zero:
            continue
        acc0, ms0 = _point(zero)
        seeds = len({r["seed"] for r in zero})
        if darts:
            bar = _mean([r["test_acc"] * 100 for r in darts]) - POINTS_UNDER_PUBLISHED
            ok = acc0 >= bar and (not band["cells"] or acc0 >= band["median"])
            out.append(f"{method}, λ = 0 ({seeds} seeds): mean {acc0:.2f}% against DARTS_V2 − {POINTS_UNDER_PUBLISHED:g} "
                       f"= {bar:.2f}% and the random median {band['median']:.2f}%: {'PASS' if ok else 'FAIL'}")
        for (m, lam), rs in sorted(groups.items()):
            if m != method or lam == "0":
                continue
            acc, ms = _point(rs)
            cut = 100 * (1 - ms / ms0) if ms0 == ms0 and ms == ms else float("nan")
            n = len({r["seed"] for r in rs})
            dom = sum(1 for a, t in band["points"] if t < ms and a >= acc) / band["cells"] if band["cells"] else 0.0
            ok = cut >= CUT_PCT and acc >= acc0 - ACC_POINTS and n >= MIN_SEEDS and dom <= MAX_DOMINATING
            skips = sorted(r["skips"] for r in rs)
            out.append(f"{method}, λ {lam} ({n} seeds): {abs(cut):.1f}% {'faster' if cut >= 0 else 'slower'} than λ = 0 "
                       f"(whole network, measured), accuracy {acc - acc0:+.2f} points, {100 * dom:.0f}% of random cells "
                       f"faster and as accurate, skip_connects per normal cell {skips}: "
                       f"{'PASS' if ok else 'FAIL'} (≥ {CUT_PCT:g}% faster within {ACC_POINTS:g} point over ≥ {MIN_SEEDS} "
                       f"seeds, ≤ {100 * MAX_DOMINATING:g}% dominating)")
    return out


def plot_claim(crows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against measured whole-network ms: the random cloud (cell means) and its front, the published cells,
    the found cells (one point per seed, a ring for each λ's mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    band = random_band(crows)
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    if band["points"]:
        ax.scatter([t for _, t in band["points"]], [a for a, _ in band["points"]], s=22, color="0.65",
                   label=f"random cells ({band['cells']}, mean over training seeds)", zorder=1)
        f = front(band["points"])
        ax.step([t for _, t in f], [a for a, _ in f], where="post", color="0.4", lw=1, label="random front", zorder=1)
        ax.axhline(band["median"], color="0.5", ls=":", lw=1, label="random median")
    for (name, rs), marker in zip(sorted(_by_network([r for r in crows if r["kind"] == "reference"]).items()), "*DPX^v"):
        acc, ms = _point(rs)
        label = name if len(name) <= 24 else f"given genotype ({rs[0]['skips']} skip_connect in the normal cell)"
        ax.scatter([ms], [acc], s=90, marker=marker, color="black", label=label, zorder=3)
    groups = _groups(crows)
    for i, ((method, lam), rs) in enumerate(sorted(groups.items())):
        color = plt.cm.viridis(i / max(1, len(groups) - 1))
        ax.scatter([r["whole_ms"] for r in rs], [r["test_acc"] * 100 for r in rs], s=30, color=color,
                   label=f"{method}, λ {lam}", zorder=2)
        acc, ms = _point(rs)
        ax.scatter([ms], [acc], s=120, facecolors="none", edgecolors=color, linewidths=1.5, zorder=2)
    ax.set_xlabel("measured latency of the whole network, ms (cifar-b1-both)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend stands outside the axes
    plt.close(fig)
