"""The registry of predictor types: `@register_predictor("mlp")`, `create_predictor`, `list_predictor_types`.

Types come from the `lpm_zoo.predictors` entry-point group (the built-ins and any installed plugin),
discovered on first use; `create_predictor` checks parameter names and values before building one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.predictors.base import Predictor, Rule
from lpm_zoo.profiles import PROFILES
from lpm_zoo.registry import Registry

GROUP = "lpm_zoo.predictors"
# the built-in types are also entry points; importing their modules keeps them there without pip install
_TYPES: Registry[type[Predictor]] = Registry(
    "predictor type", group=GROUP, accepts=Predictor, attr="type_name",
    builtins=("lpm_zoo.predictors.mlp", "lpm_zoo.predictors.mlp_split", "lpm_zoo.predictors.sk", "lpm_zoo.predictors.linear",
              "lpm_zoo.adaptation.predictor"))


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
