"""The paper's cell sampler and the exact size of the space.

Each intermediate node takes 2 distinct predecessors uniformly and each kept edge one of the
7 non-`none` operations uniformly. Bulk sampling is vectorised and seeded.
"""

from __future__ import annotations

from math import comb, prod

import numpy as np

from lpm_zoo.encoding import arrays_to_cell, keys_from_arrays
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import N_INPUTS, N_NODES, OPS_KEPT, Cell, Genotype


def sample_arrays(n: int, seed: int | np.random.Generator | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random cells as (ops, inputs) int8 arrays of shape (n, 8)."""
    rng = np.random.default_rng(seed)
    ops = rng.integers(1, len(OPS_KEPT) + 1, size=(n, 2 * N_NODES), dtype=np.int8)
    inputs = np.empty((n, 2 * N_NODES), dtype=np.int8)
    for k in range(N_NODES):
        j = N_INPUTS + k  # node j chooses 2 of its j predecessors
        a = rng.integers(0, j, size=n)
        b = rng.integers(0, j - 1, size=n)
        b = b + (b >= a)  # uniform over the j-1 values != a
        inputs[:, 2 * k] = a
        inputs[:, 2 * k + 1] = b
    return ops, inputs


def sample_cells(n: int, seed: int | np.random.Generator | None = 0) -> list[Cell]:
    """`n` random normal cells, as DARTS (op, input) pairs."""
    ops, inputs = sample_arrays(n, seed)
    return [arrays_to_cell(o, i) for o, i in zip(ops, inputs)]


def sample_genotypes(
    n: int, seed: int | np.random.Generator | None = 0, reduce: Cell | Genotype | None = None
) -> list[Genotype]:
    """`n` random genotypes: sampled normal cells with a fixed reduction cell (DARTS_V2's by default)."""

    red = (reduce.reduce if isinstance(reduce, Genotype) else reduce) or DARTS_V2.reduce
    return [Genotype(normal=c, reduce=red) for c in sample_cells(n, seed)]


def sample_random_genotypes(n: int, seed: int = 0) -> list[Genotype]:
    """`n` distinct random genotypes, normal and reduction cell each drawn from the paper's sampler: the random-search
    baseline (Li & Talwalkar 2019). Genotype i comes from its own stream (seed, i), so a longer list with the same
    `seed` starts with the shorter one."""
    out: list[Genotype] = []
    seen: set[str] = set()
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        while True:
            ops, inputs = sample_arrays(2, rng)
            key = "".join(keys_from_arrays(ops, inputs))
            if key not in seen:
                break
        seen.add(key)
        out.append(Genotype(normal=arrays_to_cell(ops[0], inputs[0]), reduce=arrays_to_cell(ops[1], inputs[1])))
    return out


def sample_unique_arrays(
    n: int, seed: int | np.random.Generator | None = 0, exclude: set[str] | None = None, cells: int = 1
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`n` cells (`cells=2`: genotypes, a normal and a reduction cell drawn independently, (n, 16)
    arrays) with distinct canonical keys, none of them in `exclude`; (ops, inputs, keys)."""
    rng = np.random.default_rng(seed)
    seen = set(exclude or ())
    ops_out, inp_out, keys_out = [], [], []
    while len(keys_out) < n:
        m = max(16, 2 * (n - len(keys_out)))
        ops, inputs = sample_arrays(m * cells, rng)
        if cells == 2:
            ops, inputs = np.hstack([ops[:m], ops[m:]]), np.hstack([inputs[:m], inputs[m:]])
        for o, i, key in zip(ops, inputs, keys_from_arrays(ops, inputs)):
            if key not in seen and len(keys_out) < n:
                seen.add(key)
                ops_out.append(o)
                inp_out.append(i)
                keys_out.append(key)
    if not keys_out:
        return np.zeros((0, 8 * cells), np.int8), np.zeros((0, 8 * cells), np.int8), []
    return np.stack(ops_out), np.stack(inp_out), keys_out


def count_cells(n_nodes: int = N_NODES, n_ops: int = len(OPS_KEPT), n_inputs: int = N_INPUTS) -> int:
    """Exact number of distinct cells: node j keeps an unordered pair of distinct predecessors
    (C(j, 2) choices) with one of `n_ops` operations on each edge (n_ops**2)."""
    return prod(comb(n_inputs + k, 2) * n_ops**2 for k in range(n_nodes))
