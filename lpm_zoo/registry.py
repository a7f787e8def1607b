"""One name -> class table, shared by every registry of the project (predictor types, device backends)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from lpm_zoo.errors import LpmError, clip

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by name: a `register(name)` decorator, look-up with an error listing the known names."""

    def __init__(self, kind: str, base: type, attr: str):
        self.kind, self.base, self.attr = kind, base, attr
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator adding `cls` under `name` (and setting `cls.<attr> = name`)."""

        def deco(cls: T) -> T:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"registering {self.kind} {name!r} needs a {self.base.__name__} subclass, got {cls!r}")
            old = self._classes.get(name)
            if old is not None and old is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {old.__module__}.{old.__qualname__}")
            setattr(cls, self.attr, name)
            self._classes[name] = cls
            return cls

        return deco

    def unregister(self, name: str) -> None:
        """Remove `name` if present (plugins under test, reloads)."""
        self._classes.pop(name, None)

    def copy(self) -> "Registry[T]":
        """An independent registry with the same entries."""
        new: Registry[T] = Registry(self.kind, self.base, self.attr)
        new._classes = dict(self._classes)
        return new

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> T:
        """The class registered as `name`; an unknown name is an LpmError listing the known ones."""
        try:
            return self._classes[name]
        except KeyError:
            raise LpmError(f"unknown {self.kind} {clip(name)}; known: {', '.join(self.names()) or 'none'}") from None
