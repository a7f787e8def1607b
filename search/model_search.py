"""The DARTS / PC-DARTS over-parameterised search network and DARTS' genotype derivation.

One `SearchNetwork` covers both methods: `partial_k=1, edge_norm=False` is DARTS (every op on all
channels, α only), `partial_k=4, edge_norm=True` is PC-DARTS (1/K of the channels through the
mixed op, the rest bypassed, channel shuffle, and a per-node softmax over edge weights β).
Operations come from `lpm_zoo.ops.OPS` with `affine=False`, pools followed by a non-affine batch
norm, as in both papers' search code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lpm_zoo.encoding import NODE_OFFSET
from lpm_zoo.layout import cell_plan
from lpm_zoo.ops import OPS, FactorizedReduce, ReLUConvBN
from lpm_zoo.search.fused_cell import channel_shuffle, fused_cell_forward
from lpm_zoo.space import CONCAT, EDGES, N_INPUTS, N_NODES, PRIMITIVES, Cell, Genotype

N_EDGES = len(EDGES)
N_OPS = len(PRIMITIVES)
NONE = PRIMITIVES.index("none")


class MixedOp(nn.Module):
    """Softmax-weighted sum of all 8 primitives on one edge; with `k > 1` on 1/k of the channels."""

    def __init__(self, C: int, stride: int, k: int = 1):
        super().__init__()
        if C % k:
            raise ValueError(f"partial channels need C divisible by K, got C={C}, K={k}")
        self.k = k
        c = C // k
        self._ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = OPS[name](c, stride, False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self._ops.append(op)
        self.mp = nn.MaxPool2d(2, 2) if k > 1 else None

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return sum(w * op(x) for w, op in zip(weights, self._ops))
        c = x.shape[1] // self.k
        xa, xb = x[:, :c], x[:, c:]
        out = sum(w * op(xa) for w, op in zip(weights, self._ops))
        if out.shape[2] != x.shape[2]:
            xb = self.mp(xb)
        return channel_shuffle(torch.cat([out, xb], dim=1), self.k)


class SearchCell(nn.Module):
    """A search cell: two preprocessed inputs, 4 nodes, each the (β-weighted) sum of mixed ops on all earlier nodes."""

    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, k: int = 1):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self._steps = steps
        self._multiplier = multiplier
        self._ops = nn.ModuleList(
            MixedOp(c, 2 if reduction and j < 2 else 1, k) for i in range(steps) for j in range(2 + i)
        )

    fused = False
    """Training-mode forward per input state (`lpm_zoo.search.fused_cell`); False: the original per-edge loop."""

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.fused and self.training:
            return fused_cell_forward(self, s0, s1, weights, edge_weights)
        return self.forward_plain(s0, s1, weights, edge_weights)

    def forward_plain(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                      edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The original code's loop: every mixed op of every edge on its own."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self._steps):
            if edge_weights is None:
                s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            else:
                s = sum(edge_weights[offset + j] * self._ops[offset + j](h, weights[offset + j])
                        for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self._multiplier:], dim=1)


def normalize_edges(beta: torch.Tensor) -> torch.Tensor:
    """PC-DARTS edge normalisation: a softmax over each node's incoming edge weights, shape (14,)."""
    parts, start = [], 0
    for k in range(N_NODES):
        n = N_INPUTS + k
        parts.append(F.softmax(beta[start:start + n], dim=-1))
        start += n
    return torch.cat(parts)


class SearchNetwork(nn.Module):
    """The DARTS search network: stem, `layers` search cells (reductions at 1/3 and 2/3), classifier."""

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = N_NODES,
                 multiplier: int = 4, stem_multiplier: int = 3, partial_k: int = 1, edge_norm: bool = False,
                 in_channels: int = 3, fused: bool = False):
        super().__init__()
        if steps != N_NODES or multiplier != len(CONCAT):
            raise ValueError("this search space has 4 intermediate nodes, all concatenated")
        self._C, self._num_classes, self._layers = C, num_classes, layers
        self.partial_k, self.edge_norm = partial_k, edge_norm
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        plan = list(cell_plan(C, layers, c_curr, multiplier=multiplier))
        self.cells = nn.ModuleList(
            SearchCell(steps, multiplier, p.c_prev_prev, p.c_prev, p.c, p.reduction, p.reduction_prev, partial_k)
            for p in plan
        )
        self.set_fused(fused)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1].c_out if plan else c_curr, num_classes)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(N_EDGES, N_OPS))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(N_EDGES, N_OPS))
        if edge_norm:
            self.betas_normal = nn.Parameter(1e-3 * torch.randn(N_EDGES))
            self.betas_reduce = nn.Parameter(1e-3 * torch.randn(N_EDGES))
        else:
            self.betas_normal = self.betas_reduce = None

    def set_fused(self, fused: bool) -> SearchNetwork:
        """Train with the per-state cell forward, or with the original code's per-edge loop (the reference)."""
        self.fused = fused
        for cell in self.cells:
            cell.fused = fused
        return self

    # --- parameters -------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """α (normal, reduce) and, with edge normalisation, β (normal, reduce)."""
        params = [self.alphas_normal, self.alphas_reduce]
        if self.edge_norm:
            params += [self.betas_normal, self.betas_reduce]
        return params

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network weights w (everything but the architecture parameters)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in arch]

    def new(self) -> SearchNetwork:
        """A network of the same shape carrying a copy of this one's architecture parameters (DARTS' `new`)."""
        other = SearchNetwork(self._C, self._num_classes, self._layers, partial_k=self.partial_k,
                              edge_norm=self.edge_norm, in_channels=self.stem[0].in_channels,
                              fused=self.fused)
        for a, b in zip(other.arch_parameters(), self.arch_parameters()):
            a.data.copy_(b.data)
        return other

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        w_normal = F.softmax(self.alphas_normal, dim=-1)
        w_reduce = F.softmax(self.alphas_reduce, dim=-1)
        e_normal = normalize_edges(self.betas_normal) if self.edge_norm else None
        e_reduce = normalize_edges(self.betas_reduce) if self.edge_norm else None
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the network on a batch (DARTS' `_loss`)."""
        return F.cross_entropy(self(x), y)

    # --- derivation -------------------------------------------------------------------
    def edge_op_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The (14, 8) weights the genotype is derived from: softmax(α), times normalised β for PC-DARTS."""
        out = []
        for alpha, beta in ((self.alphas_normal, self.betas_normal), (self.alphas_reduce, self.betas_reduce)):
            w = F.softmax(alpha.detach(), dim=-1)
            if beta is not None:
                w = w * normalize_edges(beta.detach())[:, None]
            out.append(w.cpu().numpy().astype(np.float64))
        return out[0], out[1]

    def genotype(self, max_skip: int | None = None) -> Genotype:
        """The discrete genotype DARTS (or PC-DARTS) derives from the current architecture parameters;
        `max_skip` caps the normal cell's `skip_connect` edges (P-DARTS, see `derive_capped`)."""
        normal, reduce = self.edge_op_weights()
        return Genotype(normal=derive_capped(normal, max_skip), reduce=derive_cell(reduce))


def derive_capped(weights: Sequence[Sequence[float]] | np.ndarray, max_skip: int | None) -> Cell:
    """`derive_cell` keeping at most `max_skip` `skip_connect` edges (P-DARTS, Chen et al. 2019, §3.3):
    while the derived cell has more, the kept skip edge with the weakest skip weight loses its skip
    option and the cell is derived again (the edge takes its best other operation, or gives way)."""
    w = np.array(weights, dtype=np.float64)
    cell = derive_cell(w)
    if max_skip is None:
        return cell
    skip = PRIMITIVES.index("skip_connect")
    for _ in range(len(w)):  # each pass removes one skip option: at most one per edge
        if sum(op == "skip_connect" for op, _ in cell) <= max_skip:
            break
        node_edges = [(k // 2, src) for k, (op, src) in enumerate(cell) if op == "skip_connect"]
        edges = [int(NODE_OFFSET[node]) + src for node, src in node_edges]
        w[min(edges, key=lambda e: w[e, skip]), skip] = 0.0
        cell = derive_cell(w)
    return cell


def derive_cell(weights: Sequence[Sequence[float]] | np.ndarray) -> Cell:
    """DARTS' `_parse`: per node the 2 incoming edges with the strongest non-`none` weight, each with its best op.

    Edges are listed strongest first (DARTS' order); ties keep the lower input (Python's stable sort).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (N_EDGES, N_OPS):
        raise ValueError(f"expected ({N_EDGES}, {N_OPS}) weights, got {w.shape}")
    kept = [k for k in range(N_OPS) if k != NONE]
    gene: list[tuple[str, int]] = []
    start, n = 0, N_INPUTS
    for _ in range(N_NODES):
        block = w[start:start + n]
        edges = sorted(range(n), key=lambda x: -max(block[x][k] for k in kept))[:2]
        for j in edges:
            k_best = max(kept, key=lambda k: (block[j][k], -k))  # first maximum, as DARTS' loop
            gene.append((PRIMITIVES[k_best], j))
        start += n
        n += 1
    return tuple(gene)
