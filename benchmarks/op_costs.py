"""What each operation costs on a device: `python benchmarks/op_costs.py STORE BACKEND DEVICE [PROFILE] ...`.

For each (store, backend, device) triple given, a least-squares fit of latency on how many kept
edges carry each operation (the `lut` model without its shrinkage) over every architecture in the
store: milliseconds per edge and the intercept. Comparing two devices' rows shows whether they
differ by a machine-wide factor (every column scaled alike) or in cost structure (`lpm adapt`'s
`residual` method exists for the latter).
"""

import sys

import numpy as np

from lpm_zoo.encoding import op_counts
from lpm_zoo.space import PRIMITIVES
from lpm_zoo.store import Target, load_dataset

args = sys.argv[1:]
if not args or len(args) % 4 not in (0, 3):
    sys.exit(__doc__.splitlines()[0] + " (groups of STORE BACKEND DEVICE PROFILE; PROFILE may be left off once, last)")
groups = [args[i:i + 4] for i in range(0, len(args), 4)]
if len(groups[-1]) == 3:
    groups[-1].append("cifar-b1")
print("| store | device | cells | median ms | " + " | ".join(PRIMITIVES[1:]) + " | intercept |")
print("|---" * (len(PRIMITIVES) + 4) + "|")
for db, backend, device, profile in groups:
    d = load_dataset(db, Target(backend, device, profile))
    X = np.hstack([op_counts(d.ops)[:, 1:], np.ones((len(d), 1))])  # `none` edges cost nothing
    beta = np.linalg.lstsq(X, d.latency_ms, rcond=None)[0]
    print(f"| {db} | {backend}/{device}/{profile} | {len(d)} | {np.median(d.latency_ms):.2f} | "
          + " | ".join(f"{b:.2f}" for b in beta) + " |")
