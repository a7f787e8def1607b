"""Named measurement profiles: which evaluation network, batch and input size a latency belongs to.

In the paper's profiles (`cifar-b1`, ...) the reduction cell is fixed to DARTS_V2's and only the
normal cell is encoded (112 bits). The "-both" profiles (`cifar-b1-both`, ...) measure a genotype
as given, both cells its own, encoded in 224 bits (normal, then reduction): the latency of the
network a user deploys. Weights are random (seeded), the network is in eval mode, fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lpm_zoo.encoding import (
    arrays_to_cell,
    arrays_to_genotype,
    cell_key,
    cells_to_arrays,
    encoding_name,
    genotype_key,
    genotypes_to_arrays,
)
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import Cell, Genotype

if TYPE_CHECKING:  # torch is imported only when a network is built
    import torch
    from torch import nn

CellOrGenotype = Genotype | Cell


@dataclass(frozen=True)
class Profile:
    """A measurement setting: evaluation network (`setting`), batch size and input resolution."""

    name: str
    setting: str
    batch: int
    resolution: int
    description: str = ""
    reduce: Cell = DARTS_V2.reduce
    cells: int = 1  # 1: the normal cell is encoded, the reduction cell fixed; 2: both cells as given

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)

    @property
    def encoding(self) -> str:
        """The encoding name predictors of this profile record: lpm-112 (normal cell) or lpm-224 (both)."""

        return encoding_name(self.cells)

    def genotype(self, cell: CellOrGenotype) -> Genotype:
        """The genotype measured for `cell`: its normal cell with the profile's fixed reduction cell,
        or, on a both-cell profile, the genotype as given (a bare cell is refused)."""
        if self.cells == 2:
            if not isinstance(cell, Genotype):
                raise LpmError(f"profile {self.name} measures whole genotypes (both cells); give a genotype with "
                               "its reduction cell, not a single cell")
            return cell
        normal = cell.normal if isinstance(cell, Genotype) else cell
        return Genotype(normal=normal, reduce=self.reduce)

    def arrays(self, items: list[CellOrGenotype]) -> tuple[np.ndarray, np.ndarray]:
        """(ops, inputs) of what this profile encodes: (N, 8) normal cells, or (N, 16) both cells."""

        if self.cells == 1:
            return cells_to_arrays(items)
        return genotypes_to_arrays([self.genotype(g) for g in items])

    def from_arrays(self, ops: np.ndarray, inputs: np.ndarray) -> Genotype:
        """The genotype measured for one row of this profile's arrays."""

        if len(ops) != 8 * self.cells:
            raise LpmError(f"profile {self.name} encodes {self.cells} cell(s) ({8 * self.cells} columns), got {len(ops)}")
        return arrays_to_genotype(ops, inputs) if self.cells == 2 else self.genotype(arrays_to_cell(ops, inputs))

    def key(self, genotype: CellOrGenotype) -> str:
        """The canonical key of what this profile measures for `genotype` (a cell key, or "normal:reduce")."""

        return genotype_key(self.genotype(genotype)) if self.cells == 2 else cell_key(genotype)

    def build(self, cell: CellOrGenotype, seed: int = 0) -> nn.Module:
        """The evaluation network for `cell`, eval mode, fp32, weights drawn from `seed`."""
        import torch

        from lpm_zoo.networks import build_network

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_network(self.genotype(cell), self.setting)
        return model.eval()

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """A random input batch of the profile's shape."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        return torch.randn(self.input_shape, generator=gen)


_SINGLE = (
    Profile("cifar-b1", "cifar", 1, 32, "NetworkCIFAR C=36, 20 cells, batch 1, 32x32 (CPU default)"),
    Profile("small-b1", "cifar-small", 1, 32,
            "NetworkCIFAR C=16, 8 cells (the search network's size), batch 1, 32x32 (overhead-bound)"),
    Profile("cifar-b8", "cifar", 8, 32, "NetworkCIFAR C=36, 20 cells, batch 8, 32x32 (a small-batch CPU regime)"),
    Profile("cifar-b32", "cifar", 32, 32, "NetworkCIFAR C=36, 20 cells, batch 32, 32x32 (the paper's Table 2)"),
    Profile("imagenet-b32", "imagenet", 32, 224,
            "NetworkImageNet C=48, 14 cells, batch 32, 224x224 (the paper's LPM data)"),
)
_BOTH = tuple(Profile(f"{p.name}-both", p.setting, p.batch, p.resolution, f"{p.description}; both cells as given",
                      cells=2) for p in _SINGLE if p.name in ("cifar-b1", "small-b1", "cifar-b32", "imagenet-b32"))
PROFILES: dict[str, Profile] = {p.name: p for p in (*_SINGLE, *_BOTH)}


def list_profiles() -> list[str]:
    """Names of the measurement profiles."""
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile `name`; an unknown name gets an error listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise LpmError(f"unknown profile {clip(name)}; known: {', '.join(PROFILES)}") from None


def cells_of(profile: str) -> int:
    """Cells a profile encodes (2 for the "-both" profiles); 1 for names this version does not know (old stores)."""
    p = PROFILES.get(profile)
    return p.cells if p is not None else 1
