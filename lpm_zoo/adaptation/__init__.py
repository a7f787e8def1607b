"""Adapting predictors to a new device from a few measurements there: linear maps over zoo predictors
(`methods`, the `adapted` type in `predictor`), fine-tuning an MLP (`finetune`), the public `adapt`, and the
leave-one-device-out benchmark behind `lpm transfer` (`transfer`)."""

from lpm_zoo.adaptation.adapt import Adaptation, adapt
from lpm_zoo.adaptation.methods import MAX_SOURCES, METHODS, MIN_CELLS
from lpm_zoo.adaptation.predictor import AdaptedPredictor

__all__ = ["MAX_SOURCES", "METHODS", "MIN_CELLS", "Adaptation", "AdaptedPredictor", "adapt"]
