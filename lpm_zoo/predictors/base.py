"""The predictor interface: `Predictor` (scikit-learn style), how inputs become cell arrays, saved-state checks.

A predictor maps normal cells to a latency in milliseconds, scikit-learn style: parameters in
`__init__`, `fit(X, y_ms)`, `predict(X) -> ms`. `X` is any of: an (N, 112) 0/1 encoding array,
an `(ops, inputs)` tuple of (N, 8) arrays, or a list of Genotypes / normal cells. A
differentiable predictor also offers `predict_torch(enc)` on (relaxed) encodings, for search.
"""

from __future__ import annotations

import fnmatch
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lpm_zoo.encoding import (
    ENCODING,
    ENCODING_BOTH,
    N_BITS,
    cells_to_arrays,
    decode_arrays,
    encode_arrays,
    encoding_name,
    genotypes_to_arrays,
    keys_from_arrays,
)
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.predictors.files import save_predictor
from lpm_zoo.space import Genotype

if TYPE_CHECKING:
    import torch


def encoding_of(width: int) -> str:
    """The encoding name of (N, width) cell arrays: lpm-112 (normal cell) or lpm-224 (both cells)."""
    return encoding_name(width // 8)


def as_arrays(X: Any, cells: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) int8 arrays of shape (N, 8), or (N, 16) for both cells, from any accepted form of a
    batch: such arrays, 112- or 224-bit encodings, or Genotypes / cells (`cells=2`: both cells of each
    Genotype)."""
    if isinstance(X, tuple) and len(X) == 2 and all(isinstance(a, np.ndarray) for a in X):
        ops, inputs = (np.atleast_2d(np.asarray(a, dtype=np.int8)) for a in X)
        if ops.shape != inputs.shape or ops.shape[1:] not in ((8,), (16,)):
            raise LpmError(f"(ops, inputs) arrays must both have shape (N, 8) or (N, 16); got {ops.shape} and "
                           f"{inputs.shape}")
        return ops, inputs
    if isinstance(X, np.ndarray) or type(X).__module__.startswith("torch"):
        bits = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X)
        if bits.ndim != 2 or bits.shape[1] not in (N_BITS, 2 * N_BITS):
            raise LpmError(f"encodings must have shape (N, {N_BITS}) or (N, {2 * N_BITS}); got {bits.shape}")
        return decode_arrays(bits)
    if isinstance(X, Genotype):
        X = [X]
    X = list(X)
    if cells == 2:
        if not all(isinstance(g, Genotype) for g in X):
            raise LpmError("a both-cell (lpm-224) predictor needs whole genotypes, not single cells")
        return genotypes_to_arrays(X)
    return cells_to_arrays(X)


def training_hash(keys: Sequence[str], y: np.ndarray) -> str:
    """SHA-256 of a training set (canonical keys and latencies, in order): which data a predictor saw."""
    h = hashlib.sha256()
    h.update(json.dumps([list(keys), [float(v) for v in y]]).encode())
    return h.hexdigest()


StateSpec = tuple[str, tuple[int | None, ...]]
"""What one saved array must be: its dtype name and its shape (None: any length along that axis)."""


def check_state(cls: type[Predictor], state: dict[str, np.ndarray]) -> str | None:
    """Why a loaded state does not fit type `cls` (an array it never saves, another dtype or shape), or None.

    Checked before anything is built from the arrays: weights cast to int8 or float16 are refused,
    not silently converted back.
    """
    spec = cls.state_spec
    if not spec:
        return None
    for name, arr in state.items():
        want = next((v for pattern, v in spec.items() if fnmatch.fnmatchcase(name, pattern)), None)
        if want is None:
            return f"it holds an array {clip(name, 60)} that a {cls.type_name} model never has"
        dtype, shape = want
        if arr.dtype != np.dtype(dtype):
            return f"array {clip(name, 60)} is {arr.dtype}, where a {cls.type_name} model stores {dtype}"
        if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape)):
            return (f"array {clip(name, 60)} has shape {arr.shape}, where a {cls.type_name} model has "
                    f"({', '.join('N' if n is None else str(n) for n in shape)}{',' if len(shape) == 1 else ''})")
    return None


Rule = tuple[str, Callable[[Any], bool]]
"""A parameter's allowed values: (description for the error message, test)."""


class Predictor:
    """Base class: subclasses implement `_fit(ops, inputs, y)` and `_predict(ops, inputs)`."""

    type_name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = False
    #: how the fitted state is stored: "safetensors" (arrays from `_state`) or "skops" (`_estimator`)
    persistence: ClassVar[str] = "safetensors"
    #: allowed values of this type's parameters where they differ from `lpm_zoo.predictors.registry.PARAM_RULES`
    param_rules: ClassVar[dict[str, Rule]] = {}
    #: the arrays a saved state may hold: name pattern (fnmatch) -> (dtype, shape; None: any length), see
    #: `check_state`; a type that leaves it empty (a plugin) checks its arrays in its own `_load_state`
    state_spec: ClassVar[dict[str, StateSpec]] = {}

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self._train_keys: list[str] | None = None
        self._train_y: np.ndarray | None = None

    # --- parameters, scikit-learn style ------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The `__init__` parameters of this predictor."""
        return {k: getattr(self, k) for k in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- the interface ---------------------------------------------------------------------
    def fit(self, X: Any, y: Iterable[float]) -> Predictor:
        """Fit on cells `X` and their latencies `y` (ms); returns self."""
        self.check_implemented()
        ops, inputs = as_arrays(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(ops):
            raise LpmError(f"{len(ops)} cells but {len(y)} latencies")
        if len(y) < 2:
            raise LpmError("fitting a predictor needs at least 2 measured architectures")
        if not np.isfinite(y).all():
            raise LpmError("latencies must be finite numbers")
        self._fit(ops, inputs, y)
        self._train_keys = keys_from_arrays(ops, inputs)
        self._train_y = y.copy()
        self.meta.update(
            type=self.type_name,
            params=self.get_params(),
            encoding=encoding_of(ops.shape[1]),
            train_size=int(len(y)),
            train_hash=training_hash(self._train_keys, y),
        )
        return self

    @classmethod
    def check_implemented(cls, saving: bool = False) -> None:
        """Refuse, in one LpmError line, a type (a plugin's) that lacks a method fitting needs (`_fit`, `_predict`;
        `saving`: also `_state` where its state is saved as safetensors), before any work."""
        need = ["_fit", "_predict"] + (["_state"] if saving and cls.persistence == "safetensors" else [])
        missing = [m for m in need if getattr(cls, m) is getattr(Predictor, m)]
        if missing:
            raise LpmError(f"predictor type {cls.type_name!r} ({cls.__module__}) does not implement "
                           f"{', '.join(missing)}: it cannot be fitted; fix or uninstall the plugin")

    def predict(self, X: Any) -> np.ndarray:
        """Predicted latency (ms) of each cell in `X`, shape (N,)."""
        self._check_fitted()
        want = self.meta.get("encoding", ENCODING)
        ops, inputs = as_arrays(X, cells=2 if want == ENCODING_BOTH else 1)
        got = encoding_of(ops.shape[1])
        if got != want:
            what = {ENCODING: "normal cells (112 bits)", ENCODING_BOTH: "whole genotypes (224 bits)"}
            raise LpmError(f"this predictor reads {what.get(want, want)} but was given {what[got]}: use a predictor "
                           f"fitted on a {'-both ' if got == ENCODING_BOTH else 'normal-cell '}profile")
        return np.asarray(self._predict(ops, inputs), dtype=np.float64).reshape(-1)

    def predict_torch(self, enc: torch.Tensor) -> torch.Tensor:
        """Latency (ms) from (M, 112) float encodings, differentiable w.r.t. `enc` (relaxed cells too)."""
        raise NotImplementedError(f"predictor type {self.type_name!r} is not differentiable")

    @property
    def fitted(self) -> bool:
        return self._train_y is not None or bool(self.meta.get("train_size"))

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise LpmError(f"this {self.type_name} predictor is not fitted yet; call fit(X, y_ms) first")

    # --- for subclasses -------------------------------------------------------------------
    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (safetensors persistence)."""
        raise NotImplementedError

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # --- persistence (lpm_zoo.predictors.files does the work) -----------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write this fitted predictor to directory `path` (safetensors or skops, JSON metadata)."""
        save_predictor(self, path)

    @staticmethod
    def _dense(ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return encode_arrays(ops, inputs, np.float32)
