"""The calibration set: a fixed, ordered list of cells worth measuring first on a new device.

At N = 10 which cells are measured matters. Every prefix of the list is spread across the range
of latencies the zoo's predictors expect (quantiles in van der Corput order: median, quartiles,
octiles, ...) and, within that, covers the (edge, operation) pairs no earlier cell covered, so the
first 13 or so cells touch every operation on every edge. `make_calibration` builds it from a
seeded pool and the bundled predictors; the result ships as `data/calibration.json`
(`python scripts/make_calibration.py` remakes it) and `lpm adapt` measures its first N cells.

A whole-network profile (`-both`) measures genotypes: its k-th calibration genotype has the k-th
cell as its normal cell (which sets most of the network's latency, 18 of 20 cells) and the cell
half the list further on as its reduction cell, so its first N genotypes cover the latency range
and the operations of both cells with no second list to ship.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

import numpy as np

from lpm_zoo.encoding import encode_arrays
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors.files import keys_to_arrays
from lpm_zoo.profiles import get_profile
from lpm_zoo.sampler import sample_unique_arrays

FILE = "data/calibration.json"


def _van_der_corput(n: int) -> list[float]:
    out = []
    for k in range(1, n + 1):
        q, denom, x = k, 1.0, 0.0
        while q:
            denom *= 2
            q, r = divmod(q, 2)
            x += r / denom
        out.append(x)
    return out


def make_calibration(predictors: Sequence[object], n: int = 100, pool: int = 20000, seed: int = 0) -> list[str]:
    """Canonical keys of `n` cells: latency quantiles in van der Corput order, new (edge, op) pairs first."""

    ops, inputs, keys = sample_unique_arrays(pool, seed=seed)
    z = np.zeros(len(ops))
    for p in predictors:  # the mean of the sources' standardised log latencies
        y = np.log(p.predict((ops, inputs)))
        z += (y - y.mean()) / y.std()
    rank = np.argsort(np.argsort(z)) / (len(z) - 1)  # each cell's quantile
    bits = encode_arrays(ops, inputs, np.uint8).astype(bool)
    covered = np.zeros(bits.shape[1], bool)
    taken = np.zeros(len(ops), bool)
    chosen: list[int] = []
    for q in _van_der_corput(n):
        near = np.flatnonzero(~taken & (np.abs(rank - q) <= 0.02))
        if not len(near):
            near = np.flatnonzero(~taken)
        gain = (bits[near] & ~covered).sum(1)
        best = near[np.lexsort((np.abs(rank[near] - q), -gain))[0]]  # most new pairs, then nearest the quantile
        chosen.append(int(best))
        taken[best] = True
        covered |= bits[best]
    return [keys[i] for i in chosen]


def calibration_keys(n: int | None = None) -> list[str]:
    """The first `n` keys of the shipped calibration set (all of them with n None)."""
    data = json.loads(resources.files("lpm_zoo").joinpath(FILE).read_text())
    keys = list(data["keys"])
    if n is not None and not 1 <= n <= len(keys):
        raise LpmError(f"the calibration set has {len(keys)} cells; ask for 1 to {len(keys)} (or use --cells random)")
    return keys[:n]


def calibration_cells(profile: str, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The first `n` calibration cells to measure on `profile`: (keys, ops, inputs), with (N, 8) arrays;
    for a -both profile the first `n` calibration genotypes ("normal:reduce" keys, (N, 16) arrays)."""

    keys = calibration_keys(n)
    if get_profile(profile).cells == 2:
        every = calibration_keys()
        half = len(every) // 2
        keys = [f"{k}:{every[(i + half) % len(every)]}" for i, k in enumerate(keys)]
    ops, inputs = keys_to_arrays(keys)
    return keys, ops, inputs


def coverage(keys: list[str]) -> float:
    """Share of the 98 (edge, non-none operation) pairs the cells of `keys` cover."""

    ops, inputs = keys_to_arrays(keys)
    bits = encode_arrays(ops, inputs, np.uint8).reshape(len(keys), 14, 8)[:, :, 1:].any(0)
    return float(bits.mean())



