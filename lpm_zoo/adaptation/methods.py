"""A predictor for a new device from zoo predictors and a handful of measurements there (`lpm adapt`).

A latency predictor fitted on one machine usually ranks cells well on another one of the same
runtime and misses by a machine-wide factor. With N measured cells on the target, the adapted
predictor is a small penalised linear model on top of the sources' predictions:

- `scale`: y = a·s₁ (one number: the machine is uniformly faster or slower);
- `affine`: y = a·s₁ + b;
- `stack`: y = Σⱼ aⱼ·sⱼ + c·MAdds + b over every source and the multiply-add count, ridge-shrunk
  ("one proxy device is enough"-style stacking, useful across runtimes);
- `residual`: affine on s₁ plus a per-operation table, strongly shrunk (what changes per op).

Rows are weighted by 1/y², so the fit minimises relative error. The method (and its shrinkage)
is chosen by leave-one-out mean relative error on the N cells: the simplest one within 5% of the
best (scale < affine < stack < residual; more shrinkage first); every candidate's LOO error is
recorded. The adapted predictor is an ordinary zoo entry: its sources are copied into its own
directory (`sources/0`, ...), so it loads anywhere, and it is differentiable when its sources are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpm_zoo.adaptation.finetune import MIN_CELLS as FT_MIN_CELLS
from lpm_zoo.adaptation.finetune import can_finetune, choose_recipe
from lpm_zoo.encoding import N_OPS
from lpm_zoo.errors import LpmError

METHODS = ("scale", "affine", "stack", "residual")
MIN_CELLS = {"scale": 3, "affine": 3, "stack": 5, "residual": 8}  # fewer: the LOO choice means nothing
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # shrinkage tried (on standardised columns) by LOO
MAX_SOURCES = 8
FINETUNE_MARGIN = 0.95  # fine-tuning (slower, more freedom) is chosen only when clearly better than the linear maps


def solve(X: np.ndarray, y: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """argmin Σ ((Xβ − y)/y)² + Σ penaltyₖ βₖ² on columns scaled to unit RMS (relative-error ridge)."""
    w = 1.0 / y
    Xw, yw = X * w[:, None], y * w
    scale = np.sqrt((Xw ** 2).mean(0)) + 1e-12
    Z = Xw / scale
    A = Z.T @ Z + np.diag(penalty * len(y))
    beta = np.linalg.lstsq(A, Z.T @ yw, rcond=None)[0]
    return beta / scale


class Design:
    """The columns and penalty of one method (`lam` is its shrinkage) over source predictions S and cells."""

    def __init__(self, method: str, lam: float):
        self.method, self.lam = method, lam

    def columns(self, S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(S)
        one = np.ones((n, 1))
        if self.method == "scale":
            return S[:, :1], np.zeros(1)
        if self.method == "affine":
            return np.hstack([S[:, :1], one]), np.zeros(2)
        if self.method == "stack":
            cols = [S] + ([madds[:, None]] if madds is not None else []) + [one]
            X = np.hstack(cols)
            pen = np.full(X.shape[1], self.lam)
            pen[0] = pen[-1] = 0.0  # the first source and the intercept are not shrunk
            return X, pen
        X = np.hstack([S[:, :1], one, counts])  # residual
        pen = np.r_[0.0, 0.0, np.full(N_OPS, self.lam)]
        return X, pen


def loo_mre(design: Design, S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray) -> float:
    X, pen = design.columns(S, madds, counts)
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        beta = solve(X[keep], y[keep], pen)
        errs.append(abs(X[i] @ beta - y[i]) / y[i])
    return float(np.mean(errs) * 100)


def choose_method(S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray,
                  methods: tuple[str, ...] = METHODS) -> tuple[Design, list[dict[str, Any]]]:
    """The design with the lowest leave-one-out MRE among `methods` valid at N = len(y), and every score."""
    n = len(y)
    rows = []
    for m in methods:
        if n < MIN_CELLS[m] or (m == "stack" and S.shape[1] + (madds is not None) < 2):
            continue
        for lam in (RIDGE_GRID if m in ("stack", "residual") else (0.0,)):
            d = Design(m, lam)
            rows.append({"method": m, "lambda": lam, "loo_mre_pct": loo_mre(d, S, madds, counts, y), "design": d})
    if not rows:
        raise LpmError(f"adaptation needs at least {min(MIN_CELLS.values())} measured cells; got {n}")
    # the simplest within 5% of the best: a wider margin (one standard error of the LOO mean) was
    # tried on the AVX2 target and shrank the per-operation residual too far at N = 10 (BENCHMARKS.md)
    floor = min(r["loo_mre_pct"] for r in rows)
    best = min((r for r in rows if r["loo_mre_pct"] <= floor * 1.05 + 1e-9),
               key=lambda r: (METHODS.index(r["method"]), -r["lambda"]))
    return best["design"], [{**{k: v for k, v in r.items() if k != "design"}, "chosen": r is best} for r in rows]


def adapt_fit(S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray,
              methods: tuple[str, ...] = METHODS, design: Design | None = None,
              ) -> tuple[Design, np.ndarray, list[dict[str, Any]]]:
    """The linear fit on precomputed columns: (the design, chosen by LOO unless given, its coefficients,
    every candidate's LOO score)."""
    table: list[dict[str, Any]] = []
    if design is None:
        design, table = choose_method(S, madds, counts, y, methods)
    X, pen = design.columns(S, madds, counts)
    return design, solve(X, y, pen), table


def choose_adaptation(first_source: Any, S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray,
                      X: tuple[np.ndarray, np.ndarray], y: np.ndarray, try_finetune: bool = True,
                      ) -> tuple[Design | None, dict[str, Any], list[dict[str, Any]]]:
    """`lpm adapt`'s whole choice on the N cells: the linear design by leave-one-out, then fine-tuning
    the first source (an MLP, N ≥ 5) only when its cross-validated error is `FINETUNE_MARGIN` of the
    linear one's or lower. Returns (the linear design, or None when fine-tuning won; the chosen
    candidate's row; every candidate's row, the chosen one marked)."""
    design, table = choose_method(S, madds, counts, y)
    chosen = next(r for r in table if r["chosen"])
    if try_finetune and can_finetune(first_source) and len(y) >= FT_MIN_CELLS:
        recipe, ft_rows = choose_recipe(first_source, *X, y)
        won = recipe["loo_mre_pct"] < FINETUNE_MARGIN * chosen["loo_mre_pct"]
        for r in ft_rows:
            r["chosen"] = won and r is recipe
        if won:
            chosen["chosen"], chosen, design = False, recipe, None
        table = table + ft_rows
    return design, chosen, table


def adapt_predict(fit: tuple[Design, np.ndarray, Any], S: np.ndarray, madds: np.ndarray | None,
                  counts: np.ndarray) -> np.ndarray:
    """Latencies of new cells from their columns under an `adapt_fit` result."""
    design, beta = fit[0], fit[1]
    X, _ = design.columns(S, madds, counts)
    return X @ beta
