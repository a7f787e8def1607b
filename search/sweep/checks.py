"""Checks of the values a sweep reads back from a folder (grid.json, a trial's state.json, a step's JSON output):
a folder is data, not trusted state, so every value is checked for its type and range before it is used, and a
wrong one is one LpmError line naming the file and the key (never a traceback, never the value unclipped)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import MAX_JSON_BYTES, read_own_json

AFTER = "; lpm did not write that: delete the file (or use another --out) and rerun"


def bad(where: str | Path, what: str) -> LpmError:
    """The one-line refusal of a value read from `where`."""
    return LpmError(f"{clip(str(where))}: {what}{AFTER}")


def obj(v: Any, where: str | Path, key: str = "the file") -> dict[str, Any]:
    """`v` when it is a JSON object."""
    if not isinstance(v, dict):
        raise bad(where, f"{key} is not a JSON object")
    return v


def text(v: Any, where: str | Path, key: str, limit: int = 200, choices: tuple[str, ...] | None = None) -> str:
    """`v` when it is a string of at most `limit` characters (one of `choices` when given)."""
    if not isinstance(v, str) or len(v) > limit or not v.isprintable():
        raise bad(where, f"{key} is not a printable string of at most {limit} characters ({clip(v, 40)})")
    if choices is not None and v not in choices:
        raise bad(where, f"{key} {clip(v, 40)} is not one of {', '.join(choices)}")
    return v


def strings(v: Any, where: str | Path, key: str, most: int = 200, limit: int = 400) -> list[str]:
    """`v` when it is a list of at most `most` strings."""
    if not isinstance(v, list) or len(v) > most:
        raise bad(where, f"{key} is not a list of at most {most} strings")
    return [text(s, where, f"{key}[{i}]", limit) for i, s in enumerate(v)]


def integer(v: Any, where: str | Path, key: str, lo: int, hi: int) -> int:
    """`v` when it is an integer (not a bool) in [lo, hi]."""
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad(where, f"{key} {clip(v, 40)} is not an integer in [{lo}, {hi}]")
    return v


def number(v: Any, where: str | Path, key: str, lo: float = -math.inf, hi: float = math.inf,
           above: bool = False, optional: bool = True) -> float | None:
    """`v` when it is a finite number in [lo, hi] (above `lo` when `above`); None passes when `optional`."""
    if v is None and optional:
        return None
    if (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi
            or (above and v == lo)):
        raise bad(where, f"{key} {clip(v, 40)} is not a finite number {'>' if above else '>='} {lo:g}"
                  + (f" and <= {hi:g}" if hi != math.inf else ""))
    return v


def read_checked(path: Path, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in `path` (no link, at most `limit` bytes, checked with os.fstat before it is read)."""
    return obj(read_own_json(path, limit), path)
