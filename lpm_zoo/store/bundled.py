"""The measurement stores shipped with the package (`bundled:NAME`), unpacked once into the cache and
only ever opened read-only, and `resolve_db`: a store spec to a path."""

from __future__ import annotations

import gzip
import os
import shutil
from importlib import resources
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import read_regular
from lpm_zoo.paths import cache_dir

BUNDLED_PREFIX = "bundled:"


def list_bundled() -> list[str]:
    """Names of the measurement stores shipped inside the package (`bundled:NAME` opens one)."""

    folder = resources.files("lpm_zoo").joinpath("data/measurements")
    if not folder.is_dir():  # an install without the stores (a trimmed wheel): none shipped, nothing to fail on
        return []
    return sorted(f.name[: -len(".db.gz")] for f in folder.iterdir() if f.name.endswith(".db.gz"))


def bundled_name(spec: str | Path) -> str | None:
    """The name of the shipped store `spec` means (`bundled:NAME`, or the path of its unpacked copy), else None.

    A user's own file is told apart by where it lies, before anything of the package is looked at: only a
    `.db` in the cache folder that `bundled:NAME` unpacks into is compared with the shipped names.
    """
    text = str(spec)
    if text.startswith(BUNDLED_PREFIX):
        return text[len(BUNDLED_PREFIX):]
    path = Path(text).expanduser()
    if path.suffix != ".db":
        return None
    try:
        in_cache = path.resolve().parent == (cache_dir() / "data").resolve()
    except OSError:  # a link loop: not the cache's file
        return None
    return path.stem if in_cache and path.stem in list_bundled() else None


def bundled_target(name: str) -> Path:
    """Where the shipped store `name` is unpacked (without unpacking it); an unknown name is an LpmError."""
    if name not in list_bundled():
        raise LpmError(f"no bundled measurements {clip(name)}; bundled: {', '.join(list_bundled()) or 'none'}")
    return cache_dir() / "data" / f"{name}.db"


def resolve_db(spec: str | Path) -> Path:
    """A store path; `bundled:NAME` is a shipped store, unpacked once into the user's cache."""
    text = str(spec)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(spec)

    name = text[len(BUNDLED_PREFIX):]
    target = bundled_target(name)
    source = resources.files("lpm_zoo").joinpath(f"data/measurements/{name}.db.gz")
    stamp = target.with_suffix(".size")
    size = str(source.stat().st_size) if hasattr(source, "stat") else ""
    try:
        fresh = target.is_file() and read_regular(stamp, 64).decode(errors="replace") == size
    except (OSError, LpmError):  # no stamp, or something else in its place: unpack again
        fresh = False
    if not fresh:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with source.open("rb") as raw, gzip.open(raw) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)  # atomic: an interrupted unpack never leaves a torn store
        tmp.write_text(size)
        os.replace(tmp, stamp)  # replaces whatever was there (never writes into a FIFO)
    return target
