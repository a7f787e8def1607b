"""Remake lpm_zoo/data/calibration.json from the bundled predictors: `python scripts/make_calibration.py`."""

import json
from pathlib import Path

from lpm_zoo.calibration import FILE, coverage, make_calibration
from lpm_zoo.predictors import get_predictor

SOURCES = ("ort-cpu", "torch-cpu")
keys = make_calibration([get_predictor(n) for n in SOURCES], n=100, pool=20000, seed=0)
out = Path(__file__).resolve().parents[1] / "lpm_zoo" / FILE
out.write_text(json.dumps({"encoding": "lpm-112", "sources": list(SOURCES), "pool": 20000, "seed": 0,
                           "keys": keys}, indent=0) + "\n")
print(f"wrote {len(keys)} cells to {out}; the first 10 cover {100 * coverage(keys[:10]):.0f}% and the first 20 "
      f"{100 * coverage(keys[:20]):.0f}% of (edge, op) pairs")
