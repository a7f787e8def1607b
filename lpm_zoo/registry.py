"""One registry mechanism for everything pluggable: predictor types, device backends, `lpm` commands.

A `Registry` maps names to objects. Objects arrive two ways, with one name each:

- in code, with the `register(name)` decorator (built-ins and scripts);
- from installed packages, through an entry-point group (`lpm_zoo.predictors`,
  `lpm_zoo.backends`, `lpm_zoo.commands`): the entry point's name is the object's name.

Discovery is lazy: nothing is imported until a name is asked for or the names are listed, and
then only once. A broken or duplicate plugin is reported in one line on stderr, once per process,
with its text escaped, and skipped (it must not break the others; a plugin cannot take a built-in's
name: the built-in is kept); a duplicate name registered in code is an error. An unknown name is
an `LpmError` that lists the known ones. timm's `_registry.py` and torchvision's `_api.py` are
the models: one decorator, one lookup, one listing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, Generic, TypeVar

from lpm_zoo.errors import LpmError, clip, printable

T = TypeVar("T")


def entry_points(group: str) -> Iterable[metadata.EntryPoint]:
    """The installed entry points of `group` (a seam: tests replace it with fakes)."""
    return metadata.entry_points(group=group)


class Registry(Generic[T]):
    """Objects by name, from a `register(name)` decorator and an entry-point group.

    `accepts(obj)` says whether an object may be registered; `attr`, when given, is the attribute
    of a registered class that holds its name (set once, on registration). `builtins` are modules
    imported on discovery, so the project's own entries exist even when it is not pip-installed.
    """

    def __init__(self, kind: str, *, group: str | None = None, accepts: Callable[[Any], bool] | type = object,
                 attr: str | None = None, builtins: tuple[str, ...] = ()):
        self.kind, self.group, self.attr, self.builtins = kind, group, attr, builtins
        if isinstance(accepts, type):
            base = accepts
            self._what = f"a {base.__name__} subclass" if attr else f"a {base.__name__}"
            self._accepts: Callable[[Any], bool] = (
                (lambda o: isinstance(o, type) and issubclass(o, base)) if attr else (lambda o: isinstance(o, base)))
        else:
            self._what, self._accepts = f"an accepted {kind}", accepts
        self._items: dict[str, T] = {}
        self._discovered = group is None and not builtins

    # --- registering ---------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding `obj` under `name`; a name already taken by another object is a ValueError."""

        def deco(obj: T) -> T:
            if (not self._discovered and self.group and name not in self._items
                    and getattr(obj, "__module__", "") not in self.builtins):  # a built-in keeps its name
                # before discovery, a name an installed entry point gives to another object is taken too
                owner = next((ep.value for ep in entry_points(self.group) if ep.name == name), None)
                here = f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
                if owner is not None and owner != here:
                    raise ValueError(f"{self.kind} {name!r} is already provided by {owner}")
            self._add(name, obj)
            return obj

        return deco

    def _add(self, name: str, obj: T) -> None:
        if not self._accepts(obj):
            raise TypeError(f"registering {self.kind} {name!r} needs {self._what}, got {obj!r}")
        old = self._items.get(name)
        if old is not None and old is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered by {_where(old)}")
        if self.attr:
            current = getattr(obj, self.attr, "")
            if current and current != name and self._items.get(current) is obj:
                raise ValueError(f"{_where(obj)} is already registered as {self.kind} {current!r}; one name each")
            setattr(obj, self.attr, name)
        self._items[name] = obj

    def unregister(self, name: str) -> None:
        """Remove `name` if present (plugins under test, reloads)."""
        self._items.pop(name, None)

    # --- discovery -----------------------------------------------------------------------------
    def discover(self) -> None:
        """Import the built-in modules and load every entry point of the group (once)."""
        if self._discovered:
            return
        self._discovered = True
        for module in self.builtins:
            importlib.import_module(module)
        if self.group is None:
            return
        origin: dict[str, str] = {}
        for ep in sorted(entry_points(self.group), key=lambda e: (e.name, e.value)):
            own = self._items.get(ep.name)
            if own is not None and getattr(own, "__module__", "") in self.builtins:
                if ep.value != f"{own.__module__}:{getattr(own, '__qualname__', '')}":  # not the project's own entry
                    warn_once(f"{self.kind} plugin {ep.name!r} ({ep.value}) rejected: {ep.name!r} is the built-in "
                              f"{_where(own)}, which is kept; the plugin needs another name")
                continue
            if ep.name in origin:
                if ep.value != origin[ep.name]:
                    warn_once(f"{self.kind} {ep.name!r} ({ep.value}) ignored: the name is taken by {origin[ep.name]}")
                continue
            origin[ep.name] = ep.value
            try:
                obj = ep.load()
            except (Exception, SystemExit) as e:  # a broken third-party plugin must not break the others
                warn_once(f"{self.kind} {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}")
                continue
            try:
                self._add(ep.name, obj)
            except (TypeError, ValueError) as e:
                warn_once(f"{self.kind} {ep.name!r} ({ep.value}) ignored: {e}")

    # --- looking up ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered name, sorted (discovers first)."""
        self.discover()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs, sorted by name (discovers first)."""
        self.discover()
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name is an LpmError listing the known ones."""
        self.discover()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "none"
            raise LpmError(f"unknown {self.kind} {clip(name)}; known: {known}") from None

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries and discovery state (for tests)."""
        new: Registry[T] = Registry.__new__(Registry)
        new.__dict__.update(self.__dict__)
        new._items = dict(self._items)
        return new


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


#: the longest plugin warning printed (a plugin's exception text is its own: capped, escaped)
WARNING_CHARS = 300
_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """One `lpm: warning:` line on stderr about a plugin, its control characters escaped and its length capped;
    the same line is printed once per process, however many commands or registries meet the plugin."""
    line = printable(message)
    line = line if len(line) <= WARNING_CHARS else f"{line[:WARNING_CHARS]}…"
    if line in _WARNED:
        return
    _WARNED.add(line)
    print(f"lpm: warning: {line}", file=sys.stderr)
