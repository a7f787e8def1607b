"""The backend registry: `@register_backend("name")`, `get_backend`, `list_backends`, plus entry-point plugins.

Third-party packages add a backend without touching this repo by naming a `Backend` subclass
(`lpm_zoo.backends.base`) in the entry-point group `lpm_zoo.backends`; torch, ort and trt register the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lpm_zoo.backends.base import Backend
from lpm_zoo.errors import LpmError, printable
from lpm_zoo.registry import Registry

GROUP = "lpm_zoo.backends"

B = TypeVar("B", bound=type)

# the built-ins are also entry points; importing them directly keeps them there without pip install
_REGISTRY: Registry[type[Backend]] = Registry(
    "backend", group=GROUP, accepts=Backend, attr="name",
    builtins=("lpm_zoo.backends.ort_backend", "lpm_zoo.backends.torch_backend", "lpm_zoo.backends.trt_backend",
              "lpm_zoo.backends.executorch_backend"))


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator: register a `Backend` subclass under `name`."""
    return _REGISTRY.register(name)


def list_backends() -> list[str]:
    """Names of every registered backend (built-in and plugins)."""
    return _REGISTRY.names()


def get_backend(name: str) -> Backend:
    """A fresh instance of backend `name`; an unknown name gets an error listing the known ones, and a backend
    (a plugin) whose constructor fails an LpmError line naming it (its text escaped and capped)."""
    cls = _REGISTRY.get(name)
    try:
        return cls()
    except Exception as e:  # noqa: BLE001 - a plugin's constructor may raise anything: one line, not a traceback
        raise LpmError(f"backend {name!r} ({cls.__module__}) failed to start: {type(e).__name__}: "
                       f"{printable(e, 160)}") from None
