"""Additive baselines: `lut` (a per-operation latency table, FBNet / ProxylessNAS style, fitted by
least squares), `ridge` (scikit-learn's ridge regression on the 112 bits) and `flops` (latency as
a linear function of the network's multiply-adds, the proxy the paper's Figure 2 argues against).
All are linear in the encoding, so differentiable, and stored as two arrays (safetensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lpm_zoo.encoding import N_EDGES, N_OPS, encode_arrays, op_counts
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors.base import Predictor
from lpm_zoo.predictors.registry import register_predictor
from lpm_zoo.profiles import get_profile
from lpm_zoo.space import EDGES, PRIMITIVES

if TYPE_CHECKING:
    import torch


class _LinearFeatures(Predictor):
    """latency = features(cell) @ coef + intercept, fitted by least squares."""

    state_spec = {"coef": ("float64", (None,)), "intercept": ("float64", (1,))}

    def __init__(self) -> None:
        super().__init__()
        self._coef: np.ndarray | None = None
        self._intercept = 0.0

    def _features(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _features_torch(self, enc: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        F = self._features(ops, inputs).astype(np.float64)
        A = np.hstack([F, np.ones((len(F), 1))])
        sol, *_ = np.linalg.lstsq(A, y, rcond=None)  # minimum-norm solution where features are collinear
        self._coef, self._intercept = sol[:-1], float(sol[-1])

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self._features(ops, inputs).astype(np.float64) @ self._coef + self._intercept

    def predict_torch(self, enc: torch.Tensor) -> torch.Tensor:
        """Latency (ms) of (M, 112) encodings, relaxed ones included; linear, so exact gradients."""
        import torch

        self._check_fitted()
        coef = torch.as_tensor(self._coef, dtype=enc.dtype, device=enc.device)
        return self._features_torch(enc) @ coef + self._intercept

    def _state(self) -> dict[str, np.ndarray]:
        return {"coef": self._coef, "intercept": np.array([self._intercept])}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        coef, intercept = np.asarray(state["coef"], np.float64), np.asarray(state["intercept"], np.float64)
        if coef.ndim != 1 or intercept.shape != (1,):
            raise ValueError(f"coef must be a vector and intercept one number; got {coef.shape}, {intercept.shape}")
        self._coef, self._intercept = coef, float(intercept[0])

    @property
    def fitted(self) -> bool:
        return self._coef is not None


@register_predictor("lut")
class LUTPredictor(_LinearFeatures):
    """Additive lookup table: a latency per operation (`per="op"`) or per (edge, op) (`per="edge"`)."""

    differentiable = True

    def __init__(self, per: str = "op"):
        super().__init__()
        if per not in ("op", "edge"):
            raise LpmError(f"lut: per must be 'op' or 'edge', got {per!r}")
        self.per = per

    def _features(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        if self.per == "edge":
            return encode_arrays(ops, inputs, np.float32)
        # a table per cell type: normal cells' operation counts, then (both cells) the reduction cell's
        return np.hstack([op_counts(ops[:, c:c + 8], np.float32) for c in range(0, ops.shape[1], 8)])

    def _features_torch(self, enc: torch.Tensor) -> torch.Tensor:
        if self.per == "edge":
            return enc
        return enc.reshape(len(enc), -1, N_EDGES, N_OPS).sum(2).reshape(len(enc), -1)

    def table(self) -> dict[str, float]:
        """The fitted per-operation latency (ms), plus the constant as 'base' (per='op' only)."""

        if self.per != "op":
            raise LpmError("table() is the per-operation table; this lut is per (edge, op)")
        self._check_fitted()
        return {"base": self._intercept, **{op: float(c) for op, c in zip(PRIMITIVES, self._coef)}}


@register_predictor("ridge")
class RidgePredictor(_LinearFeatures):
    """Ridge regression (scikit-learn's): an additive per-(edge, operation) model with L2 shrinkage."""

    differentiable = True

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def _features(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return encode_arrays(ops, inputs, np.float32)

    def _features_torch(self, enc: torch.Tensor) -> torch.Tensor:
        return enc

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=self.alpha).fit(self._features(ops, inputs), y)
        self._coef, self._intercept = np.asarray(est.coef_, np.float64), float(est.intercept_)


@register_predictor("flops")
class FlopsPredictor(_LinearFeatures):
    """Latency as a linear function of the evaluation network's multiply-adds for `profile`."""

    differentiable = True

    def __init__(self, profile: str = "cifar-b1"):
        super().__init__()
        self.profile = profile

    def _madds_table(self) -> tuple[int, np.ndarray]:
        """(constant, (E, 8) multiply-adds per kept edge and op): E = 8 slots of a normal cell, or 16 for
        both cells, the reduction slots split by stride (from an input, or from a node) in `madds`."""
        from lpm_zoo.complexity import both_op_madds, normal_op_madds

        prof = get_profile(self.profile)
        if prof.cells == 2:
            const, normal, red_in, red_mid = both_op_madds(prof.setting)
            return const, np.asarray([normal, red_in, red_mid], np.float64)
        const, table = normal_op_madds(prof.setting, prof.reduce)
        return const, np.asarray([table], np.float64)

    def madds(self, ops: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        """Multiply-adds (millions, per image) of each row's evaluation network under the profile
        (normal cells, or whole genotypes with their `inputs` on a -both profile)."""
        const, table = self._madds_table()
        ops = np.asarray(ops, np.int64)
        want = 8 if len(table) == 1 else 16
        if ops.shape[-1] != want:
            what = "normal cells (112 bits)" if want == 8 else "whole genotypes (224 bits)"
            raise LpmError(f"flops for profile {self.profile} counts multiply-adds of {what}; got {ops.shape[-1]} "
                           "slots: fit it with --param flops.profile=<the data's profile>")
        if len(table) == 1:
            return (const + table[0][ops].sum(1)) / 1e6
        if inputs is None:
            raise LpmError("flops on whole genotypes needs the reduction cell's inputs (its strides)")
        red = np.where(np.asarray(inputs)[:, 8:] < 2, table[1][ops[:, 8:]], table[2][ops[:, 8:]])
        return (const + table[0][ops[:, :8]].sum(1) + red.sum(1)) / 1e6

    def _features(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.madds(ops, inputs)[:, None]

    def _features_torch(self, enc: torch.Tensor) -> torch.Tensor:
        import torch


        const, table = self._madds_table()
        t = torch.as_tensor(table / 1e6, dtype=enc.dtype, device=enc.device)
        cells = enc.reshape(len(enc), -1, N_EDGES, N_OPS)
        out = cells[:, 0].sum(1) @ t[0] + const / 1e6
        if len(table) > 1:  # per reduction edge: the stride-2 cost from an input, the stride-1 one from a node
            per_edge = torch.stack([t[1] if i < 2 else t[2] for i, _ in EDGES])  # (14, 8)
            out = out + (cells[:, 1] * per_edge).sum((1, 2))
        return out.unsqueeze(-1)

