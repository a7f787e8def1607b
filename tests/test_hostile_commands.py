"""Hostile arguments to the long-running commands (search, train, transfer, adapt): one line, exit 2, nothing written.

Each refusal runs `python -m lpm_zoo ...` in a subprocess: exit code 2, exactly one line on stderr starting with
`lpm`, no traceback, nothing on stdout, and nothing created or changed where the command was refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SEARCH = ["search", "--epochs", "1", "--max-steps", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
          "--threads", "1", "--no-progress"]
TRAIN = ["train", "--genotype", "DARTS_V2", "--epochs", "1", "--max-steps", "1", "--no-progress"]


def lpm(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m lpm_zoo ARGS` in `cwd` with a private user zoo; stdout and stderr as text."""
    env = {**os.environ, "LPM_ZOO_HOME": str(cwd / "zoo")}
    return subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def refused(r: subprocess.CompletedProcess, says: str) -> str:
    """Assert `r` is a one-line refusal (exit 2, one `lpm ...` line on stderr, no traceback) saying `says`."""
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n") and r.stderr.startswith("lpm "), r.stderr[-3000:]
    assert "Traceback" not in r.stderr and len(r.stderr) < 1000, r.stderr[-3000:]
    assert says in r.stderr, r.stderr
    assert r.stdout == ""
    return r.stderr


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for folders): to show a refusal changed nothing."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


# --- 17. --resolution 0 is refused like -16, 7 and 33 ------------------------------------------------------------
@pytest.mark.parametrize("command, dataset, px, says", [
    ("search", "textures", "0", "--resolution 0 is not one of 32, 16, 8"),
    ("search", "textures", "-16", "--resolution -16 is not one of 32, 16, 8"),
    ("train", "textures", "0", "--resolution 0 is not one of 32, 16, 8"),
    ("search", "digits", "0", "multiple of 8 from 8 to 64"),
    ("search", "digits", "80000", "multiple of 8 from 8 to 64"),  # was a 46 TB allocation and a traceback
])
def test_a_resolution_the_dataset_cannot_have_is_refused_before_any_work(tmp_path, command, dataset, px, says):
    args = [*(SEARCH if command == "search" else TRAIN), "--dataset", dataset, "--resolution", px]
    r = lpm(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, says)
    assert not (tmp_path / "out").exists()  # refused before the output folder is made
