"""Perturbation-based architecture selection (DARTS-PT, Wang et al., ICLR 2021, "Rethinking architecture
selection in differentiable NAS"), the alternative to DARTS' argmax α once the supernet is trained.

Why: argmax α says which operation the softmax favours, not which one the supernet relies on; after a short
search parameter-free and dilated operations win α early. DARTS-PT asks the trained supernet instead:

1. operations, one edge at a time (in a seeded random order, DARTS-PT's default): remove each candidate
   operation in turn, measure the supernet's accuracy on a fixed set of validation batches, and keep the
   operation whose removal hurts the most (lowest accuracy; ties: highest cross-entropy). The edge is then
   projected onto that operation (its weight becomes 1, the others 0), as in DARTS-PT;
2. topology, one node at a time: remove each projected input edge in turn and keep the 2 whose removal
   hurts the most; the others stay removed for the nodes that follow.

Everything goes through the supernet's public interface, the architecture parameters, on a copy of the
network, so the search network's numerics and the trained supernet in the checkpoint are untouched:

- removing operation `k` of an edge sets α[k] = -inf and α[none] = log(exp α[none] + exp α[k]): the softmax
  denominator is unchanged, every other operation keeps its weight (to float rounding) and the removed
  operation's weight moves to `none`, whose output is zero. That is DARTS-PT's mask exactly, without
  renormalising the other weights (`none` itself is never a candidate: a genotype cannot hold it);
- removing an edge puts all its weight on `none` (DARTS: the edge's output is exactly zero). PC-DARTS' edges
  also pass their bypassed channels, which no α reaches, so there the edge's β is set to -inf instead: the
  node's other edges are renormalised (a variant of DARTS-PT, stated in the result).

The supernet is evaluated in training mode (batch statistics in its non-affine batch norms, DARTS-PT's
`infer(..., eval=False)`): running statistics describe the unmasked network, batch statistics the masked one.
No gradient is taken and the copy is discarded afterwards.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.search.options import SELECTIONS
from lpm_zoo.space import EDGES, N_INPUTS, N_NODES, PRIMITIVES, Genotype

NONE = PRIMITIVES.index("none")
CANDIDATES = tuple(k for k in range(len(PRIMITIVES)) if k != NONE)
CELLS = ("normal", "reduce")
MAX_SELECT_IMAGES = 100_000


def check_selection(select: str, images: int) -> None:
    """Refuse an unknown `--select` or a `--select-images` outside [64, 100000] in one line."""
    if select not in SELECTIONS:
        raise LpmError(f"--select must be one of {', '.join(SELECTIONS)}, got {clip(select)}")
    if not 64 <= images <= MAX_SELECT_IMAGES:
        raise LpmError(f"--select-images must be from 64 to {MAX_SELECT_IMAGES} (validation images per "
                       f"measurement), got {clip(images)}")


Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Score:
    """The supernet's accuracy and mean cross-entropy on the selection batches."""

    acc: float
    ce: float

    def worse_than(self, other: Score) -> bool:
        """True when this score is lower: less accurate, or as accurate with a higher cross-entropy."""
        return (self.acc, -self.ce) < (other.acc, -other.ce)


@torch.no_grad()
def score(model: torch.nn.Module, batches: Batches) -> Score:
    """Accuracy and cross-entropy of `model` in training mode (batch statistics) on fixed `batches`."""
    model.train()
    correct, ce, n = 0, 0.0, 0
    for x, y in batches:
        logits = model(x)
        correct += int((logits.argmax(1) == y).sum())
        ce += float(F.cross_entropy(logits, y, reduction="sum"))
        n += len(y)
    return Score(correct / n, ce / n)


def _alpha(model: torch.nn.Module, cell: str) -> torch.Tensor:
    return getattr(model, f"alphas_{cell}")


def _beta(model: torch.nn.Module, cell: str) -> torch.Tensor | None:
    return getattr(model, f"betas_{cell}", None)


@contextmanager
def without_op(model: torch.nn.Module, cell: str, edge: int, op: int) -> Iterator[None]:
    """Remove operation `op` from `edge` of `cell` for the duration (its weight moves to `none`, whose output is
    zero; the other weights are unchanged); α is restored exactly afterwards."""
    if op == NONE:
        raise ValueError("`none` is not a candidate operation")
    alpha = _alpha(model, cell)
    saved = alpha.data[edge].clone()
    try:
        with torch.no_grad():
            row = alpha.data[edge]
            row[NONE] = torch.logaddexp(saved[NONE], saved[op])
            row[op] = -math.inf
        yield
    finally:
        alpha.data[edge].copy_(saved)


@contextmanager
def without_edge(model: torch.nn.Module, cell: str, edge: int) -> Iterator[None]:
    """Remove `edge` of `cell` for the duration (DARTS: all weight on `none`, the edge outputs zero; PC-DARTS:
    its β is -inf, the node's other edges renormalised); α and β are restored exactly afterwards."""
    alpha, beta = _alpha(model, cell), _beta(model, cell)
    saved_a = alpha.data[edge].clone()
    saved_b = None if beta is None else beta.data[edge].clone()
    try:
        with torch.no_grad():
            if beta is None:
                alpha.data[edge].fill_(-math.inf)
                alpha.data[edge, NONE] = 0.0
            else:
                beta.data[edge] = -math.inf
        yield
    finally:
        alpha.data[edge].copy_(saved_a)
        if beta is not None:
            beta.data[edge].copy_(saved_b)


def project_op(model: torch.nn.Module, cell: str, edge: int, op: int) -> None:
    """Keep only `op` on `edge` (weight 1), as DARTS-PT does once an edge is decided."""
    row = _alpha(model, cell).data[edge]
    row.fill_(-math.inf)
    row[op] = 0.0


def remove_edge(model: torch.nn.Module, cell: str, edge: int) -> None:
    """Remove `edge` for good (what `without_edge` does for a moment)."""
    alpha, beta = _alpha(model, cell), _beta(model, cell)
    if beta is None:
        alpha.data[edge].fill_(-math.inf)
        alpha.data[edge, NONE] = 0.0
    else:
        beta.data[edge] = -math.inf


def node_edges(node: int) -> list[int]:
    """The edge indices entering intermediate node `node` (0-3), in input order."""
    return [k for k, (_, dst) in enumerate(EDGES) if dst == N_INPUTS + node]


@dataclass
class Selection:
    """The genotype DARTS-PT chose and what each measurement said (plain data for result.json)."""

    images: int
    base: dict[str, float]
    genotype: Genotype | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    topology: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    edge_removal: str = "all weight on none (exact)"

    def to_dict(self) -> dict[str, Any]:
        return {"method": "perturbation (DARTS-PT)", "images": self.images, "base_val_acc": self.base["acc"],
                "base_val_ce": self.base["ce"], "edge_removal": self.edge_removal, "seconds": self.seconds,
                "ops": self.ops, "topology": self.topology,
                "genotype": None if self.genotype is None else self.genotype.to_darts()}


class Interrupted(Exception):
    """Ctrl-C during the selection: nothing was written; the checkpoint still holds the trained supernet."""


def select_perturbation(model: torch.nn.Module, batches: Batches, seed: int, *,
                        stop: Callable[[], bool] = lambda: False, progress: bool = True) -> Selection:
    """DARTS-PT on a copy of `model`: per edge the operation whose removal hurts most, then per node the 2 edges
    whose removal hurts most. `stop()` true between measurements raises `Interrupted`."""
    from tqdm.auto import tqdm

    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(False)
    rng = np.random.default_rng(seed)
    n_edges = len(EDGES)
    n_topo = sum(len(node_edges(n)) + 1 for n in range(N_NODES) if len(node_edges(n)) > 2)
    total = 1 + len(CELLS) * (n_edges * (len(CANDIDATES) + 1) + n_topo)
    bar = tqdm(total=total, unit="eval", desc="select perturbation", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()

    def measure() -> Score:
        if stop():
            raise Interrupted
        s = score(net, batches)
        bar.update(1)
        return s

    try:
        base = measure()
        sel = Selection(sum(len(y) for _, y in batches), vars(base))
        if _beta(net, "normal") is not None:
            sel.edge_removal = "edge beta set to -inf (the node's other edges renormalised)"
        cells: dict[str, list[tuple[str, int]]] = {}
        for cell in CELLS:
            chosen: dict[int, int] = {}
            for edge in (int(e) for e in rng.permutation(n_edges)):
                before = measure()
                removed: dict[int, Score] = {}
                for op in CANDIDATES:
                    with without_op(net, cell, edge, op):
                        removed[op] = measure()
                best = CANDIDATES[0]
                for op in CANDIDATES[1:]:
                    if removed[op].worse_than(removed[best]):
                        best = op
                chosen[edge] = best
                project_op(net, cell, edge, best)
                sel.ops.append({"cell": cell, "edge": edge, "from": EDGES[edge][0], "to": EDGES[edge][1],
                                "op": PRIMITIVES[best], "val_acc": before.acc,
                                "acc_drop": {PRIMITIVES[k]: round(before.acc - s.acc, 6) for k, s in removed.items()},
                                "ce_rise": {PRIMITIVES[k]: round(s.ce - before.ce, 6) for k, s in removed.items()}})
            gene: list[tuple[int, list[tuple[str, int]]]] = []
            for node in (int(n) for n in rng.permutation(N_NODES)):
                edges = node_edges(node)
                kept = edges
                if len(edges) > 2:
                    before = measure()
                    removed_e: dict[int, Score] = {}
                    for edge in edges:
                        with without_edge(net, cell, edge):
                            removed_e[edge] = measure()
                    order = sorted(edges, key=lambda e: (removed_e[e].acc, -removed_e[e].ce))
                    kept = order[:2]
                    for edge in edges:
                        if edge not in kept:
                            remove_edge(net, cell, edge)
                    sel.topology.append({"cell": cell, "node": N_INPUTS + node, "kept_inputs": [EDGES[e][0] for e in kept],
                                         "val_acc": before.acc,
                                         "acc_drop": {str(EDGES[e][0]): round(before.acc - s.acc, 6)
                                                      for e, s in removed_e.items()}})
                gene.append((node, [(PRIMITIVES[chosen[e]], EDGES[e][0]) for e in kept]))
            cells[cell] = [pair for _, pairs in sorted(gene) for pair in pairs]
        sel.genotype = Genotype(normal=tuple(cells["normal"]), reduce=tuple(cells["reduce"]))
        sel.seconds = time.perf_counter() - t0
        return sel
    finally:
        bar.close()
