"""`adapt`: a predictor for a new device from zoo predictors and N cells measured there (what `lpm adapt` runs).

The method is chosen on the N cells by `lpm_zoo.adaptation.methods.choose_adaptation` (a linear map
by leave-one-out, or fine-tuning the first source when clearly better); nothing here measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.adaptation.finetune import finetune
from lpm_zoo.adaptation.methods import MAX_SOURCES, choose_adaptation
from lpm_zoo.adaptation.predictor import AdaptedPredictor
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors.base import Predictor


@dataclass
class Adaptation:
    """The adapted predictor and how it was chosen: method, its shrinkage, its own cross-validated error, and
    every candidate's row (the chosen one marked)."""

    predictor: Predictor
    method: str
    lam: float
    loo_mre_pct: float
    candidates: list[dict[str, Any]] = field(default_factory=list)


def adapt(sources: Sequence[Predictor], source_dirs: Sequence[str | Path], ops: np.ndarray, inputs: np.ndarray,
          latency_ms: np.ndarray, profile: str, try_finetune: bool = True) -> Adaptation:
    """Adapt `sources` (the first is the main one; their folders are copied on save) to the cells (ops, inputs)
    measured at `latency_ms` on the target, for measurement profile `profile` (its multiply-adds feed `stack`)."""
    if not 1 <= len(sources) <= MAX_SOURCES or len(sources) != len(source_dirs):
        raise LpmError(f"adapt: 1 to {MAX_SOURCES} sources, each with its folder")
    adapted = AdaptedPredictor(n_sources=len(sources), madds_profile=profile).with_sources(list(sources),
                                                                                         list(source_dirs))
    S, madds, counts = adapted.columns(ops, inputs)
    y = np.asarray(latency_ms, np.float64)
    design, pick, table = choose_adaptation(sources[0], S, madds, counts, (ops, inputs), y, try_finetune)
    method, lam = pick["method"], pick["lambda"]
    if design is None:
        predictor: Predictor = finetune(sources[0], ops, inputs, y, method.split("-", 1)[1], lam)
    else:
        adapted.method, adapted.lam = method, lam
        predictor = adapted.fit((ops, inputs), y)
    return Adaptation(predictor, method, lam, pick["loo_mre_pct"], table)
