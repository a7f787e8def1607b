"""The choices `lpm search` and `lpm train` offer, as plain data: the search methods with the paper's §4.1
hyperparameters, and the dataset names. Imports nothing heavy, so the CLI reads them for `--help`."""

from __future__ import annotations

from dataclasses import dataclass

DATASETS = ("digits", "textures", "cifar10")
#: classes of each dataset (chance accuracy is 1 / classes): what a report needs without loading the data
DATASET_CLASSES = {"digits": 10, "textures": 4, "cifar10": 10}
SELECTIONS = ("argmax", "perturbation")
#: the search's arithmetic (lpm_zoo.search.precision): fp32 is the original code's
PRECISIONS = ("fp32", "bf16", "fp16")
"""How the genotype is read from the trained supernet: DARTS' argmax α, or DARTS-PT's perturbation (`lpm_zoo.search.selection`)."""
SELECT_IMAGES = 512
"""Validation images per DARTS-PT measurement by default (one image is 0.2 points of accuracy)."""


@dataclass(frozen=True)
class Method:
    """One search method's settings and the paper's §4.1 hyperparameters for it."""

    name: str
    unrolled: bool
    partial_k: int
    edge_norm: bool
    batch_size: int
    lr: float
    arch_lr: float
    warmup_epochs: int
    epochs: int = 50
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3

    def warmup_for(self, epochs: int) -> int:
        """The epochs with α frozen by default in a search of `epochs`: the paper's share, scaled to its length."""
        return round(self.warmup_epochs * epochs / self.epochs)


METHODS: dict[str, Method] = {
    "darts": Method("darts", unrolled=False, partial_k=1, edge_norm=False, batch_size=64, lr=0.025, arch_lr=3e-4,
                    warmup_epochs=0),
    "darts-2nd": Method("darts-2nd", unrolled=True, partial_k=1, edge_norm=False, batch_size=64, lr=0.025,
                        arch_lr=3e-4, warmup_epochs=0),
    "pc-darts": Method("pc-darts", unrolled=False, partial_k=4, edge_norm=True, batch_size=256, lr=0.1, arch_lr=6e-4,
                       warmup_epochs=15),
}
"""The paper's §4.1: SGD momentum 0.9, wd 3e-4, cosine to 0 over 50 epochs; α by Adam, betas (0.5, 0.999), wd 1e-3."""
