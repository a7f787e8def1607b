"""Where lpm keeps what it can rebuild: one cache folder for the user zoo, unpacked stores, engine caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$LPM_ZOO_CACHE`, else `$XDG_CACHE_HOME/lpm_zoo`, else `~/.cache/lpm_zoo`."""
    env = os.environ.get("LPM_ZOO_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lpm_zoo"
