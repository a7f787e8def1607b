"""Known latency functions for tests, benchmarks and pipeline checks: never a measurement.

`OP_COST` is the one per-operation cost table (ms per kept edge, by PRIMITIVES index:
`skip_connect` the cheapest real operation, `sep_conv_5x5` the dearest); `synthetic_latency` adds
input and interaction terms and 1% noise; `make_synthetic_store` writes a store of such rows.
"""

from __future__ import annotations

import numpy as np

from lpm_zoo.profiles import get_profile
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.store import Measurement, MeasurementStore

OP_COST = np.array([0.0, 0.05, 0.2, 0.02, 1.0, 1.6, 0.7, 1.1])  # ms per edge, by PRIMITIVES index


def synthetic_latency(ops: np.ndarray, inputs: np.ndarray, seed: int = 0) -> np.ndarray:
    """A known latency function for tests and pipeline checks (never a measurement): 5 ms, a cost
    per operation, 0.3 ms per edge from input 0, 0.8 ms when node 5's two edges are both
    convolutions, times 1 + N(0, 1%)."""
    base = 5.0 + OP_COST[ops].sum(1) + 0.3 * (inputs == 0).sum(1)
    inter = 0.8 * ((ops[:, 6] >= 4) & (ops[:, 7] >= 4))
    return (base + inter) * (1 + np.random.default_rng(seed).normal(0, 0.01, len(ops)))


def make_synthetic_store(path: str, n: int, seed: int = 9, backend: str = "synth", device: str = "cpu",
                         profile: str = "cifar-b1", scale: float = 1.0, extra_cost: np.ndarray | None = None) -> None:
    """A measurement store of `n` unique cells with `synthetic_latency` (spread 1%), for pipeline checks;
    `scale` and `extra_cost` (ms per kept edge, by operation) make another 'device' of the same cells."""

    prof = get_profile(profile)
    ops, inputs, _ = sample_unique_arrays(n, seed=seed, cells=prof.cells)
    y = scale * synthetic_latency(ops, inputs, seed=1)
    if extra_cost is not None:
        y = y + np.asarray(extra_cost, np.float64)[ops].sum(1)
    ms = [Measurement(genotype=prof.from_arrays(o, i), backend=backend, device=device, profile=profile,
                      latency_ms=float(v), spread_ms=0.01 * float(v), runs_ms=[float(v)] * 3,
                      protocol={"statistic": "median", "synthetic": True})
          for o, i, v in zip(ops, inputs, y)]
    with MeasurementStore(path) as store:
        store.add_many(ms)
