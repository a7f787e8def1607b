"""The DARTS evaluation networks (CIFAR and ImageNet mobile setting) built from any `Genotype`.

`forward` returns the logits; while training with the auxiliary head it returns
`(logits, logits_aux)` as DARTS does, so inference code and exporters see a single tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from lpm_zoo.layout import SETTINGS, Setting, cell_plan, get_setting  # noqa: F401 - re-exported: they live in the torch-free layout module
from lpm_zoo.ops import OPS, FactorizedReduce, Identity, ReLUConvBN
from lpm_zoo.space import Cell as CellPairs
from lpm_zoo.space import Genotype


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability `drop_prob`, rescaling the rest (DARTS drop path)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep).mul(mask)


class EvalCell(nn.Module):
    """One evaluation cell: preprocess both inputs, 4 nodes of 2 ops each, concatenate the nodes."""

    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        pairs: CellPairs = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.reduction = reduction
        self._steps = len(pairs) // 2
        self._concat = list(concat)
        self.multiplier = len(concat)
        self._indices = [i for _, i in pairs]
        self._ops = nn.ModuleList(
            OPS[name](c, 2 if reduction and index < 2 else 1, True) for name, index in pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self._steps):
            op1, op2 = self._ops[2 * i], self._ops[2 * i + 1]
            h1 = op1(states[self._indices[2 * i]])
            h2 = op2(states[self._indices[2 * i + 1]])
            if self.training and drop_prob > 0.0:
                if not isinstance(op1, Identity):
                    h1 = drop_path(h1, drop_prob)
                if not isinstance(op2, Identity):
                    h2 = drop_path(h2, drop_prob)
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self._concat], dim=1)


class _AuxiliaryHead(nn.Module):
    """Auxiliary classifier: ReLU, 5x5 average pool, 1x1 conv to 128, 2x2 conv to 768, linear."""

    def __init__(self, c: int, num_classes: int, pool_stride: int, last_bn: bool):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if last_bn:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.flatten(1))


class AuxiliaryHeadCIFAR(_AuxiliaryHead):
    """Auxiliary classifier on the 8x8 feature map after the second reduction."""

    def __init__(self, c: int, num_classes: int):
        super().__init__(c, num_classes, pool_stride=3, last_bn=True)


class AuxiliaryHeadImageNet(_AuxiliaryHead):
    """Auxiliary classifier on the 14x14 feature map (DARTS omits the last batch norm here)."""

    def __init__(self, c: int, num_classes: int):
        super().__init__(c, num_classes, pool_stride=2, last_bn=False)


class _Network(nn.Module):
    """Cells stacked with reductions at layers//3 and 2*layers//3; stems and head come from subclasses."""

    def _build_cells(
        self, genotype: Genotype, c: int, c_stem_out: int, layers: int, reduction_prev: bool
    ) -> int:
        plan = list(cell_plan(c, layers, c_stem_out, reduction_prev))
        self.cells = nn.ModuleList(
            EvalCell(genotype, p.c_prev_prev, p.c_prev, p.c, p.reduction, p.reduction_prev) for p in plan
        )
        self._aux_at = 2 * layers // 3
        self._c_aux = plan[self._aux_at].c_out if self._aux_at < len(plan) else c_stem_out
        return plan[-1].c_out if plan else c_stem_out

    def _run_cells(self, s0: torch.Tensor, s1: torch.Tensor):
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_at and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        return s1, logits_aux

    def _head(self, s1: torch.Tensor, logits_aux):
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if logits_aux is not None:
            return logits, logits_aux
        return logits


class NetworkCIFAR(_Network):
    """DARTS CIFAR evaluation network: 3x3 stem to 3C channels, `layers` cells, 32x32 input."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype):
        super().__init__()
        self.drop_path_prob = 0.0
        c_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev = self._build_cells(genotype, C, c_stem, layers, reduction_prev=False)
        self.auxiliary_head = AuxiliaryHeadCIFAR(self._c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        s1, aux = self._run_cells(s, s)
        return self._head(s1, aux)


class NetworkImageNet(_Network):
    """DARTS ImageNet evaluation network (mobile setting): two stride-2 stems, 224x224 input."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype):
        super().__init__()
        self.drop_path_prob = 0.0
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        c_prev = self._build_cells(genotype, C, C, layers, reduction_prev=True)
        self.auxiliary_head = AuxiliaryHeadImageNet(self._c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1, aux = self._run_cells(s0, self.stem1(s0))
        return self._head(s1, aux)


def build_network(
    genotype: Genotype,
    setting: str = "cifar",
    *,
    C: int | None = None,
    layers: int | None = None,
    num_classes: int | None = None,
    auxiliary: bool = False,
) -> nn.Module:
    """The evaluation network of `genotype` in a named setting, with optional overrides."""
    s = get_setting(setting)
    cls = NetworkCIFAR if s.network == "cifar" else NetworkImageNet
    return cls(C or s.C, num_classes or s.num_classes, layers or s.layers, auxiliary, genotype)
