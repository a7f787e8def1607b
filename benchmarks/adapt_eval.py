"""How well predictors do on cells timed independently: `python benchmarks/adapt_eval.py --db S --backend B
--predictors a,b [--device-name cpu] [--profile cifar-b1] [--exclude-calibration N] [--min-measurements K]`.

Prints, per predictor, the mean relative error, Kendall tau, Spearman rho and the share within
±5% / ±10% over the store's architectures (leaving out the first N calibration cells, which an
adapted predictor was fitted on; with --min-measurements K only those whose label is the median of K or
more measurements, i.e. the labels `lpm recheck` made less noisy).
"""

import argparse

import numpy as np
from scipy.stats import kendalltau, spearmanr

from lpm_zoo.calibration import calibration_keys
from lpm_zoo.predictors import get_predictor
from lpm_zoo.store import Target, load_dataset

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--db", required=True)
ap.add_argument("--backend", required=True)
ap.add_argument("--device-name", default="cpu")
ap.add_argument("--profile", default="cifar-b1")
ap.add_argument("--predictors", required=True, help="comma-separated zoo names or directories")
ap.add_argument("--exclude-calibration", type=int, default=100, help="leave out this many calibration cells")
ap.add_argument("--min-measurements", type=int, default=1, help="only labels that are the median of K or more")
args = ap.parse_args()
data = load_dataset(args.db, Target(args.backend, args.device_name, args.profile))
skip = set(calibration_keys(args.exclude_calibration)) if args.exclude_calibration else set()
idx = np.array([i for i, k in enumerate(data.keys) if k not in skip and data.measured[i] >= args.min_measurements])
y = data.latency_ms[idx]
print(f"{args.db}: {len(idx)} architectures of {args.backend}/{args.device_name}/{args.profile}")
print(f"{'predictor':<22} {'MRE %':>6} {'tau':>6} {'rho':>6} {'±5 %':>6} {'±10 %':>6}")
for name in args.predictors.split(","):
    p = get_predictor(name).predict((data.ops[idx], data.inputs[idx]))
    rel = np.abs(p - y) / y
    print(f"{name:<22} {100 * rel.mean():>6.2f} {kendalltau(p, y).statistic:>6.3f} {spearmanr(p, y).statistic:>6.3f} "
          f"{100 * (rel <= 0.05).mean():>6.1f} {100 * (rel <= 0.10).mean():>6.1f}")
