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

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lpm_zoo.encoding import N_OPS
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors.base import Predictor, register_predictor

if TYPE_CHECKING:
    import torch

METHODS = ("scale", "affine", "stack", "residual")
MIN_CELLS = {"scale": 3, "affine": 3, "stack": 5, "residual": 8}  # fewer: the LOO choice means nothing
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # shrinkage tried (on standardised columns) by LOO
MAX_SOURCES = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")
FINETUNE_MARGIN = 0.95  # fine-tuning (slower, more freedom) is chosen only when clearly better than the linear maps


def _op_counts(ops: np.ndarray) -> np.ndarray:
    """(N, 8) how many kept edges carry each operation."""
    flat = (np.arange(len(ops))[:, None] * N_OPS + np.asarray(ops, np.int64)).ravel()
    return np.bincount(flat, minlength=len(ops) * N_OPS).reshape(len(ops), N_OPS).astype(np.float64)


def _solve(X: np.ndarray, y: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """argmin Σ ((Xβ − y)/y)² + Σ penaltyₖ βₖ² on columns scaled to unit RMS (relative-error ridge)."""
    w = 1.0 / y
    Xw, yw = X * w[:, None], y * w
    scale = np.sqrt((Xw ** 2).mean(0)) + 1e-12
    Z = Xw / scale
    A = Z.T @ Z + np.diag(penalty * len(y))
    beta = np.linalg.lstsq(A, Z.T @ yw, rcond=None)[0]
    return beta / scale


class _Design:
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


def _loo_mre(design: _Design, S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray) -> float:
    X, pen = design.columns(S, madds, counts)
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        beta = _solve(X[keep], y[keep], pen)
        errs.append(abs(X[i] @ beta - y[i]) / y[i])
    return float(np.mean(errs) * 100)


def choose_method(S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray,
                  methods: tuple[str, ...] = METHODS) -> tuple[_Design, list[dict[str, Any]]]:
    """The design with the lowest leave-one-out MRE among `methods` valid at N = len(y), and every score."""
    n = len(y)
    rows = []
    for m in methods:
        if n < MIN_CELLS[m] or (m == "stack" and S.shape[1] + (madds is not None) < 2):
            continue
        for lam in (RIDGE_GRID if m in ("stack", "residual") else (0.0,)):
            d = _Design(m, lam)
            rows.append({"method": m, "lambda": lam, "loo_mre_pct": _loo_mre(d, S, madds, counts, y), "design": d})
    if not rows:
        raise LpmError(f"adaptation needs at least {min(MIN_CELLS.values())} measured cells; got {n}")
    # the simplest within 5% of the best: a wider margin (one standard error of the LOO mean) was
    # tried on the AVX2 target and shrank the per-operation residual too far at N = 10 (BENCHMARKS.md)
    floor = min(r["loo_mre_pct"] for r in rows)
    best = min((r for r in rows if r["loo_mre_pct"] <= floor * 1.05 + 1e-9),
               key=lambda r: (METHODS.index(r["method"]), -r["lambda"]))
    return best["design"], [{**{k: v for k, v in r.items() if k != "design"}, "chosen": r is best} for r in rows]


def adapt_fit(S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray, y: np.ndarray,
              methods: tuple[str, ...] = METHODS, design: _Design | None = None,
              ) -> tuple[_Design, np.ndarray, list[dict[str, Any]]]:
    """The linear fit on precomputed columns: (the design, chosen by LOO unless given, its coefficients,
    every candidate's LOO score)."""
    table: list[dict[str, Any]] = []
    if design is None:
        design, table = choose_method(S, madds, counts, y, methods)
    X, pen = design.columns(S, madds, counts)
    return design, _solve(X, y, pen), table


def choose_adaptation(first_source: Any, S: np.ndarray, madds: np.ndarray | None, counts: np.ndarray,
                      X: tuple[np.ndarray, np.ndarray], y: np.ndarray, try_finetune: bool = True,
                      ) -> tuple[_Design | None, dict[str, Any], list[dict[str, Any]]]:
    """`lpm adapt`'s whole choice on the N cells: the linear design by leave-one-out, then fine-tuning
    the first source (an MLP, N ≥ 5) only when its cross-validated error is `FINETUNE_MARGIN` of the
    linear one's or lower. Returns (the linear design, or None when fine-tuning won; the chosen
    candidate's row; every candidate's row, the chosen one marked)."""
    from lpm_zoo.predictors.finetune import MIN_CELLS as FT_MIN_CELLS
    from lpm_zoo.predictors.finetune import can_finetune, choose_recipe

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


def adapt_predict(fit: tuple[_Design, np.ndarray, Any], S: np.ndarray, madds: np.ndarray | None,
                  counts: np.ndarray) -> np.ndarray:
    """Latencies of new cells from their columns under an `adapt_fit` result."""
    design, beta = fit[0], fit[1]
    X, _ = design.columns(S, madds, counts)
    return X @ beta


@register_predictor("adapted")
class AdaptedPredictor(Predictor):
    """Source predictors' latencies, re-mapped to this device by a method chosen on a few measurements."""

    state_spec = {"beta": ("float64", (None,))}

    def __init__(self, method: str = "affine", lam: float = 0.0, madds_profile: str | None = None,
                 n_sources: int = 1):
        super().__init__()
        if method not in METHODS:
            raise LpmError(f"adapted: method must be one of {', '.join(METHODS)}; got {str(method)[:40]!r}")
        if not 1 <= int(n_sources) <= MAX_SOURCES:
            raise LpmError(f"adapted: n_sources must be from 1 to {MAX_SOURCES}")
        self.method, self.lam, self.madds_profile, self.n_sources = method, float(lam), madds_profile, int(n_sources)
        self.sources: list[Predictor] = []
        self.source_dirs: list[Path] = []
        self._beta: np.ndarray | None = None

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return bool(self.sources) and all(s.differentiable for s in self.sources)

    def with_sources(self, sources: list[Predictor], dirs: list[Path]) -> AdaptedPredictor:
        """Attach the fitted source predictors (and where they live, to copy them on save)."""
        if len(sources) != self.n_sources:
            raise LpmError(f"adapted: {self.n_sources} sources expected, got {len(sources)}")
        self.sources, self.source_dirs = list(sources), [Path(d) for d in dirs]
        return self

    # --- features -------------------------------------------------------------------------------
    def _columns(self, ops: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if not self.sources:
            raise LpmError("this adapted predictor has no source predictors attached")
        S = np.stack([s.predict((ops, inputs)) for s in self.sources], 1)
        madds = self._madds(ops, inputs) if self.method == "stack" and self.madds_profile else None
        return S, madds, _op_counts(ops)

    def _madds(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        from lpm_zoo.predictors.linear import FlopsPredictor

        return FlopsPredictor(self.madds_profile).madds(ops, inputs)

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        S, madds, counts = self._columns(ops, inputs)
        X, pen = _Design(self.method, self.lam).columns(S, madds, counts)
        self._beta = _solve(X, y, pen)

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        S, madds, counts = self._columns(ops, inputs)
        X, _ = _Design(self.method, self.lam).columns(S, madds, counts)
        return X @ self._beta

    def predict_torch(self, enc: torch.Tensor) -> torch.Tensor:
        """Latency (ms) of (M, 112) encodings: the same linear map over the sources' differentiable predictions."""
        import torch

        self._check_fitted()
        if not self.differentiable:
            raise NotImplementedError("an adapted predictor is differentiable only when all its sources are")
        b = torch.as_tensor(self._beta, dtype=enc.dtype, device=enc.device)
        S = torch.stack([s.predict_torch(enc) for s in self.sources], 1)
        counts = enc.reshape(len(enc), -1, N_OPS).sum(1)  # per operation, over every edge of every cell
        if self.method == "scale":
            return S[:, 0] * b[0]
        if self.method == "affine":
            return S[:, 0] * b[0] + b[1]
        if self.method == "residual":
            return S[:, 0] * b[0] + b[1] + counts @ b[2:]
        out = S @ b[: S.shape[1]] + b[-1]
        if self.madds_profile:
            from lpm_zoo.predictors.linear import FlopsPredictor

            out = out + FlopsPredictor(self.madds_profile)._features_torch(enc)[:, 0] * b[S.shape[1]]
        return out

    # --- persistence ----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"beta": np.asarray(self._beta, np.float64)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        beta = np.asarray(state["beta"], np.float64)
        if beta.ndim != 1 or not 1 <= len(beta) <= MAX_SOURCES + N_OPS + 2 or not np.isfinite(beta).all():
            raise ValueError(f"beta of shape {beta.shape} does not fit an adapted predictor")
        self._beta = beta

    def _save_parts(self, folder: Path) -> None:
        """Copy the sources' own files into `folder/sources/k`, so the adapted predictor stands on its own,
        and record each copy's `content_hash` in `meta["source_sha256"]` (checked on load).

        Only the files a predictor consists of are copied (never links or other files in its folder).
        """
        from lpm_zoo.files import open_regular
        from lpm_zoo.predictors.zoo import META, MODEL_FILES, TRAIN, content_hash

        hashes = []
        for k, (src, d) in enumerate(zip(self.sources, self.source_dirs)):
            out = folder / "sources" / str(k)
            out.mkdir(parents=True)
            for name in (META, MODEL_FILES[src.persistence], TRAIN):
                if (d / name).is_file() and not (d / name).is_symlink():
                    with open_regular(d / name) as f, open(out / name, "wb") as g:
                        while chunk := f.read(1 << 20):
                            g.write(chunk)
            hashes.append(content_hash(out))
        self.meta["source_sha256"] = hashes

    def _load_parts(self, folder: Path) -> None:
        """Load the sources copied beside the model, each checked against the hash recorded at save time
        (never another adapted predictor: no nesting)."""
        from lpm_zoo.notes import note
        from lpm_zoo.predictors.zoo import content_hash, load_predictor, read_meta

        hashes = self.meta.get("source_sha256")
        if hashes is None:  # saved before the hashes were recorded: loaded, and said so
            note(f"{folder.name} records no hash of its source predictors (saved by an older lpm-zoo), so a "
                 "replaced source cannot be told apart; run lpm adapt again to record them")
        elif (not isinstance(hashes, list) or len(hashes) != self.n_sources
              or not all(isinstance(h, str) and _SHA256.fullmatch(h) for h in hashes)):
            raise LpmError(f"{folder}/meta.json: source_sha256 must be {self.n_sources} SHA-256 hex digests, one per "
                           "source; adapt it again with lpm adapt")
        sources, dirs = [], []
        for k in range(self.n_sources):
            d = folder / "sources" / str(k)
            if hashes is not None and content_hash(d) != hashes[k]:
                raise LpmError(f"{d} is not the source predictor {folder.name} was adapted from (its files' SHA-256 "
                               "differs from the one recorded when it was saved); adapt it again with lpm adapt")
            if read_meta(d).get("type") == "adapted":
                raise LpmError(f"{d} is itself an adapted predictor; sources are never nested")
            sources.append(load_predictor(d))
            dirs.append(d)
        self.with_sources(sources, dirs)

    @property
    def fitted(self) -> bool:
        return self._beta is not None
