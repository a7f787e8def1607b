"""Named measurement profiles: which evaluation network, batch and input size a latency belongs to.

In every profile the reduction cell is fixed to DARTS_V2's (the paper encodes the normal cell
only), weights are random (seeded), the network is in eval mode, fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)

    def genotype(self, cell: CellOrGenotype) -> Genotype:
        """The genotype measured for `cell`: its normal cell with the profile's fixed reduction cell."""
        normal = cell.normal if isinstance(cell, Genotype) else cell
        return Genotype(normal=normal, reduce=self.reduce)

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


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("cifar-b1", "cifar", 1, 32, "NetworkCIFAR C=36, 20 cells, batch 1, 32x32 (CPU default)"),
        Profile("small-b1", "cifar-small", 1, 32,
                "NetworkCIFAR C=16, 8 cells (the search network's size), batch 1, 32x32 (overhead-bound)"),
        Profile("cifar-b8", "cifar", 8, 32, "NetworkCIFAR C=36, 20 cells, batch 8, 32x32 (a small-batch CPU regime)"),
        Profile("cifar-b32", "cifar", 32, 32, "NetworkCIFAR C=36, 20 cells, batch 32, 32x32 (the paper's Table 2)"),
        Profile("imagenet-b32", "imagenet", 32, 224,
                "NetworkImageNet C=48, 14 cells, batch 32, 224x224 (the paper's LPM data)"),
    )
}


def list_profiles() -> list[str]:
    """Names of the measurement profiles."""
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile `name`; an unknown name gets an error listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise LpmError(f"unknown profile {clip(name)}; known: {', '.join(PROFILES)}") from None
