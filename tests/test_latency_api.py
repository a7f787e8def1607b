"""LAT(α) as a library (issue 35): the guide's example runs as written, from a folder outside the clone, and
the package's public names load lazily (importing it pulls in no torch)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "latency-term.md"


def guide_example() -> str:
    """The first ```python block of docs/latency-term.md, exactly as a reader copies it."""
    found = re.search(r"^```python\n(.*?)^```$", GUIDE.read_text(), re.S | re.M)
    assert found, f"{GUIDE} has no python block"
    return found.group(1)


def test_the_guides_example_runs_as_written_and_lowers_lat(tmp_path):
    code = guide_example()
    assert len(code.strip().splitlines()) <= 16  # a short example, as the guide promises
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "LPM_ZOO_HOME": str(tmp_path / "zoo")})
    assert r.returncode == 0, r.stderr
    start, end = map(float, re.fullmatch(r"LAT\(alpha\): ([\d.]+) -> ([\d.]+) ms\n", r.stdout).groups())
    assert 0 < end < 0.9 * start  # 30 steps of λ·LAT alone move α towards faster cells


def test_the_public_names_are_listed_and_load_lazily():
    code = """
import sys
import lpm_zoo.search as package
assert 'torch' not in sys.modules
print(sorted(package.__all__))
print(package.LatencyTerm.__module__, package.LatencyEstimate.__name__)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    names, origin = r.stdout.splitlines()
    assert "'LatencyTerm'" in names and "'ESTIMATORS'" in names
    assert origin.endswith("lpm_zoo.search.latency LatencyEstimate")
