"""How much the reduction cell matters: whole networks with one normal cell and random reduction cells.

    python benchmarks/reduction_share.py --backend ort [--profile cifar-b1-both] [--normal DARTS_V2] [--samples 96]

Times the `--normal` cell's genotype with `--samples` seeded random reduction cells on a -both
profile (the default protocol's rounds, `min_ratio` against the DARTS_V2 reference timed in every
group of 8, all expressed in the first group's reference time), plus the all-`skip_connect`
reduction cell, and prints the spread of the whole network's latency over reduction cells: the
range as a share of the median network. Nothing is stored.
"""

from __future__ import annotations

import argparse

import numpy as np

from lpm_zoo.backends.profiling import Measurer, normalize
from lpm_zoo.backends.protocol import Protocol
from lpm_zoo.published import get_genotype
from lpm_zoo.sampler import sample_cells
from lpm_zoo.space import Genotype

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--backend", required=True)
ap.add_argument("--profile", default="cifar-b1-both")
ap.add_argument("--normal", default="DARTS_V2", help="published genotype whose normal cell is kept")
ap.add_argument("--samples", type=int, default=96)
ap.add_argument("--seed", type=int, default=5)
args = ap.parse_args()

normal = get_genotype(args.normal).normal
skips = tuple(("skip_connect", i) for _ in range(4) for i in (0, 1))
genotypes = [Genotype(normal=normal, reduce=skips)] + [Genotype(normal=normal, reduce=r)
                                                       for r in sample_cells(args.samples, seed=args.seed)]
protocol = Protocol(warmup=5, rounds=10, reps=5, interleave=8, target_pct=2.0, min_rounds=3, statistic="min_ratio")
m = Measurer(args.backend, "cpu", args.profile, protocol)
lat, baseline = [], None
try:
    for k in range(0, len(genotypes), 8):
        ms = m.measure(genotypes[k:k + 8])
        baseline = normalize(ms, baseline)
        lat += [x.latency_ms for x in ms]
        print(f"{len(lat)}/{len(genotypes)}", end="\r", flush=True)
finally:
    m.close()
cheapest, rand = lat[0], np.array(lat[1:])
med = float(np.median(rand))
p5, p95 = np.percentile(rand, [5, 95])
print(f"{args.backend}/{args.profile}, normal cell of {args.normal}, {len(rand)} random reduction cells "
      f"({m.device_name}, {m.backend.name}):")
print(f"  whole network: median {med:.3f} ms, min {rand.min():.3f}, p5 {p5:.3f}, p95 {p95:.3f}, max {rand.max():.3f}")
print(f"  range over reduction cells: (max - min) / median {100 * (rand.max() - rand.min()) / med:.1f}%, "
      f"(p95 - p5) / median {100 * (p95 - p5) / med:.1f}%")
print(f"  the all-skip_connect reduction cell (a FactorizedReduce on each input edge): {cheapest:.3f} ms "
      f"({100 * (cheapest - med) / med:+.1f}% against the median)")
