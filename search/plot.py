"""Pictures of a genotype's normal and reduction cells, drawn with matplotlib (no graphviz binary).

The layout follows the DARTS / LA-DARTS figures: inputs c_{k-2}, c_{k-1} on the left, the four
intermediate nodes 0..3 in the middle, c_{k} on the right, each kept edge labelled with its operation.
"""

from __future__ import annotations

from pathlib import Path

from lpm_zoo.space import Cell, Genotype

_COLORS = {
    "max_pool_3x3": "#4c72b0", "avg_pool_3x3": "#55a868", "skip_connect": "#8c8c8c", "sep_conv_3x3": "#c44e52",
    "sep_conv_5x5": "#8172b2", "dil_conv_3x3": "#ccb974", "dil_conv_5x5": "#64b5cd",
}
# node positions: inputs 0, 1; intermediate 2..5; output 6
_POS = {0: (0.0, 3.0), 1: (0.0, 0.0), 2: (2.4, 2.2), 3: (4.2, 0.5), 4: (6.0, 2.8), 5: (7.8, 0.9), 6: (9.8, 1.6)}
_LABEL = {0: "c_{k-2}", 1: "c_{k-1}", 2: "0", 3: "1", 4: "2", 5: "3", 6: "c_{k}"}


def _label_width(text: str) -> float:
    return 0.1 * len(text) + 0.25  # in data units at fontsize 7 on the (15, 4.2) figure


def _label_spot(p0: tuple[float, float], p1: tuple[float, float], bend: float, text: str,
                placed: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Where on its curved edge a label overlaps no label or node placed so far (the middle if it can).

    Points of matplotlib's arc3 quadratic Bezier, control point = mid + rad * (dy, -dx), tried from
    the middle outwards; the least crowded one if every spot collides.
    """
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2 + bend * (y1 - y0), (y0 + y1) / 2 - bend * (x1 - x0)
    w = _label_width(text)
    best, best_cost = (0.0, 0.0), float("inf")
    for t in (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8):
        x = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1
        y = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1
        cost = sum(max(0.0, (w + pw) / 2 - abs(x - px)) * max(0.0, 0.32 - abs(y - py)) for px, py, pw in placed)
        if cost == 0:
            return x, y
        if cost < best_cost:
            best, best_cost = (x, y), cost
    return best


def draw_cell(ax, cell: Cell, title: str) -> None:
    """Draw one cell on a matplotlib axis."""
    ax.set_axis_off()
    ax.set_title(title, fontsize=11)
    placed: list[tuple[float, float, float]] = [(x, y, 0.9) for x, y in _POS.values()]  # nodes are obstacles too
    for k, (op, src) in enumerate(cell):
        dst = 2 + k // 2
        (x0, y0), (x1, y1) = _POS[src], _POS[dst]
        bend = 0.25 if (k % 2) else -0.25
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color=_COLORS[op], lw=1.6, shrinkA=14, shrinkB=14,
                                    connectionstyle=f"arc3,rad={bend}"))
        x, y = _label_spot((x0, y0), (x1, y1), bend, op, placed)
        placed.append((x, y, _label_width(op)))
        ax.text(x, y, op, fontsize=7, color=_COLORS[op], ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85), zorder=4)
    for node in range(2, 6):
        (x0, y0), (x1, y1) = _POS[node], _POS[6]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color="#bbbbbb", lw=1.0, shrinkA=14, shrinkB=16,
                                    linestyle="--"))
    for node, (x, y) in _POS.items():
        face = "#a6d96a" if node in (0, 1) else "#fdae61" if node == 6 else "#abd9e9"
        ax.text(x, y, f"${_LABEL[node]}$" if node in (0, 1, 6) else _LABEL[node], ha="center", va="center",
                fontsize=10, bbox=dict(boxstyle="round,pad=0.45", fc=face, ec="black", lw=0.8), zorder=5)
    ax.set_xlim(-0.8, 10.6)
    ax.set_ylim(-0.8, 3.8)


def plot_genotype(genotype: Genotype, path_stem: str | Path, title: str = "",
                  formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save the normal and reduction cells side by side as `<stem>.png` and `<stem>.svg`; returns the paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 2)
    draw_cell(axes[0], genotype.normal, "normal cell")
    draw_cell(axes[1], genotype.reduce, "reduction cell")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out = []
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=120, format=fmt)
        out.append(p)
    return out
