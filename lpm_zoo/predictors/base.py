"""The predictor interface and the registry of predictor types (`@register_predictor("mlp")`).

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
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from lpm_zoo.encoding import (
    N_BITS,
    cells_to_arrays,
    decode_arrays,
    encode_arrays,
    encoding_name,
    genotypes_to_arrays,
    keys_from_arrays,
)
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.profiles import PROFILES
from lpm_zoo.registry import Registry
from lpm_zoo.space import Genotype

if TYPE_CHECKING:
    import torch

ENCODING = encoding_name(1)  # the paper's 112-bit normal-cell encoding, bit = 8 * edge + op
ENCODING_BOTH = encoding_name(2)  # both cells: the normal cell's 112 bits, then the reduction cell's

P = TypeVar("P", bound=type["Predictor"])


def register_predictor(name: str) -> Callable[[P], P]:
    """Class decorator adding a predictor type to the registry under `name`."""
    return _TYPES.register(name)


def list_predictor_types() -> list[str]:
    """Names of the registered predictor types."""
    return _TYPES.names()


def predictor_class(name: str) -> type[Predictor]:
    """The class registered as `name`; an unknown name gets an error listing the known ones."""
    return _TYPES.get(name)


def create_predictor(name: str, **params: Any) -> Predictor:
    """A new, unfitted predictor of type `name` with `params` (its `__init__` arguments)."""
    cls = predictor_class(name)
    check_params(name, params)
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise LpmError(f"predictor type {name!r}: bad parameter value ({e})") from None


Rule = tuple[str, Callable[[Any], bool]]
"""A parameter's allowed values: (description for the error message, test)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_in(lo: int, hi: int) -> Rule:
    return f"an integer in [{lo}, {hi}]", lambda v: _is_int(v) and lo <= v <= hi


def _real_in(lo: float, hi: float, open_lo: bool = False) -> Rule:
    def ok(v: Any) -> bool:
        number = (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
        return number and (lo < v if open_lo else lo <= v) and v <= hi

    return f"a finite number in {'(' if open_lo else '['}{lo:g}, {hi:g}]", ok


def _one_of(*choices: str) -> Rule:
    return f"one of {', '.join(choices)}", lambda v: v in choices


def _n_jobs_ok(v: Any) -> bool:
    return v is None or (_is_int(v) and (v == -1 or 1 <= v <= (os.cpu_count() or 1)))


PARAM_RULES: dict[str, Rule] = {
    "hidden": ("1 to 8 layer widths, each an integer in [1, 4096], e.g. [256, 64]",
               lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= 8
               and all(_is_int(h) and 1 <= h <= 4096 for h in v)),
    "epochs": _int_in(0, 1_000_000),
    "batch_size": _int_in(1, 1_000_000),
    "lr": _real_in(0, 10, open_lo=True),
    "momentum": _real_in(0, 1),
    "weight_decay": _real_in(0, 10),
    "seed": _int_in(0, 2**32 - 1),
    "progress": ("true or false", lambda v: isinstance(v, bool)),
    "alpha": _real_in(0, 1e12),
    "n_estimators": _int_in(1, 10_000),
    "min_samples_leaf": _int_in(1, 1_000_000),
    "max_features": _real_in(0, 1, open_lo=True),
    "n_jobs": (f"null, -1 (all cores) or an integer in [1, {os.cpu_count() or 1}] (the CPUs here)", _n_jobs_ok),
    "max_iter": _int_in(1, 100_000),
    "learning_rate": _real_in(0, 10, open_lo=True),
    "max_leaf_nodes": _int_in(2, 65_536),
    "n_neighbors": _int_in(1, 1_000_000),
    "weights": _one_of("uniform", "distance"),
    "per": _one_of("op", "edge"),
    "profile": (f"a measurement profile: {', '.join(PROFILES)}", lambda v: isinstance(v, str) and v in PROFILES),
}
"""Allowed values of the predictor parameters by name; a type may refine them in `Predictor.param_rules`."""


def check_params(name: str, params: dict[str, Any]) -> None:
    """Refuse unknown parameters of type `name` and values outside their rule, naming TYPE.KEY and what is allowed."""
    cls = predictor_class(name)
    allowed = set(cls._param_names())
    bad = sorted(set(params) - allowed)
    if bad:
        raise LpmError(
            f"predictor type {name!r} has no parameter(s) {clip(', '.join(bad))}; "
            f"its parameters: {', '.join(sorted(allowed))}"
        )
    rules = {**PARAM_RULES, **cls.param_rules}
    for key, value in params.items():
        rule = rules.get(key)
        if rule is not None and not rule[1](value):
            raise LpmError(f"bad parameter value {name}.{key}={clip(value)}: it must be {rule[0]}")


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


class Predictor:
    """Base class: subclasses implement `_fit(ops, inputs, y)` and `_predict(ops, inputs)`."""

    type_name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = False
    #: how the fitted state is stored: "safetensors" (arrays from `_state`) or "skops" (`_estimator`)
    persistence: ClassVar[str] = "safetensors"
    #: allowed values of this type's parameters where they differ from `PARAM_RULES`
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

    # --- persistence (lpm_zoo.predictors.zoo does the work) -------------------------------
    def save(self, path: str) -> None:
        """Write this fitted predictor to directory `path` (safetensors or skops, JSON metadata)."""
        from lpm_zoo.predictors.zoo import save_predictor

        save_predictor(self, path)

    @staticmethod
    def _dense(ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return encode_arrays(ops, inputs, np.float32)


GROUP = "lpm_zoo.predictors"
# the built-in types are also entry points; importing their modules keeps them there without pip install
_TYPES: Registry[type[Predictor]] = Registry(
    "predictor type", group=GROUP, accepts=Predictor, attr="type_name",
    builtins=("lpm_zoo.predictors.mlp", "lpm_zoo.predictors.sk", "lpm_zoo.predictors.linear",
              "lpm_zoo.predictors.adapt"))
