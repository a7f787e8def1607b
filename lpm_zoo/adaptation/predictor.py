"""The `adapted` predictor type: source predictors' latencies re-mapped to a new device by a method of
`lpm_zoo.adaptation.methods`, saved with copies of its sources so it loads anywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lpm_zoo.adaptation.methods import MAX_SOURCES, METHODS, Design, solve
from lpm_zoo.encoding import N_OPS, op_counts
from lpm_zoo.errors import LpmError
from lpm_zoo.files import open_regular
from lpm_zoo.notes import note
from lpm_zoo.predictors.base import Predictor
from lpm_zoo.predictors.files import META, MODEL_FILES, TRAIN, content_hash, read_meta
from lpm_zoo.predictors.linear import FlopsPredictor
from lpm_zoo.predictors.registry import register_predictor
from lpm_zoo.predictors.zoo import load_predictor

if TYPE_CHECKING:
    import torch

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    def columns(self, ops: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(sources' predictions S, multiply-adds or None, per-operation counts) of cells: the design's inputs."""
        if not self.sources:
            raise LpmError("this adapted predictor has no source predictors attached")
        S = np.stack([s.predict((ops, inputs)) for s in self.sources], 1)
        madds = self._madds(ops, inputs) if self.method == "stack" and self.madds_profile else None
        return S, madds, op_counts(ops)

    def _madds(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return FlopsPredictor(self.madds_profile).madds(ops, inputs)

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        S, madds, counts = self.columns(ops, inputs)
        X, pen = Design(self.method, self.lam).columns(S, madds, counts)
        self._beta = solve(X, y, pen)

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        S, madds, counts = self.columns(ops, inputs)
        X, _ = Design(self.method, self.lam).columns(S, madds, counts)
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
