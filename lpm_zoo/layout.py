"""How DARTS networks are laid out, without torch: the evaluation settings and the per-cell channel plan.

`lpm_zoo.networks` (PyTorch), `lpm_zoo.search.model_search` (the search network) and
`lpm_zoo.backends.onnx_builder` (ONNX written directly) all stack their cells from `cell_plan`, so the
three agree on every cell's channels and reductions by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lpm_zoo.errors import LpmError
from lpm_zoo.space import CONCAT


@dataclass(frozen=True)
class Setting:
    """An evaluation setting: network family, width, depth, classes and input resolution."""

    name: str
    C: int
    layers: int
    num_classes: int
    resolution: int
    family: str = ""  # "cifar" or "imagenet" (the network class); empty: the name

    @property
    def network(self) -> str:
        return self.family or self.name


SETTINGS: dict[str, Setting] = {
    "cifar": Setting("cifar", C=36, layers=20, num_classes=10, resolution=32),
    "imagenet": Setting("imagenet", C=48, layers=14, num_classes=1000, resolution=224),
    "cifar-small": Setting("cifar-small", C=16, layers=8, num_classes=10, resolution=32, family="cifar"),
}
"""The paper's evaluation settings, CIFAR (C=36, 20 cells) and ImageNet mobile (C=48, 14 cells), and the
search network's size (C=16, 8 cells), where per-operation overheads weigh more than arithmetic."""


def get_setting(name: str) -> Setting:
    """The evaluation setting called `name`, or a one-line error naming the known ones."""
    if name not in SETTINGS:
        raise LpmError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    return SETTINGS[name]


@dataclass(frozen=True)
class CellPlan:
    """One cell of a stack: its index, input channels, node width C, whether it and the cell before reduce."""

    index: int
    c_prev_prev: int
    c_prev: int
    c: int
    reduction: bool
    reduction_prev: bool
    c_out: int  # channels of the cell's output (its concatenated nodes)


def is_reduction(index: int, layers: int) -> bool:
    """Whether cell `index` of `layers` is a reduction cell (DARTS: at layers//3 and 2*layers//3)."""
    return index in (layers // 3, 2 * layers // 3)


def cell_plan(C: int, layers: int, c_stem: int, reduction_prev: bool = False,
              multiplier: int = len(CONCAT)) -> Iterator[CellPlan]:
    """The cells of a DARTS stack after a stem of `c_stem` channels: C doubles at each reduction.

    `reduction_prev` says whether the stem itself halved the resolution last (ImageNet's stem1),
    so that the first cell's s0 needs a factorized reduce; `multiplier` is the number of nodes
    a cell concatenates.
    """
    c_prev_prev = c_prev = c_stem
    c = C
    for i in range(layers):
        reduction = is_reduction(i, layers)
        if reduction:
            c *= 2
        yield CellPlan(i, c_prev_prev, c_prev, c, reduction, reduction_prev, multiplier * c)
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, multiplier * c
