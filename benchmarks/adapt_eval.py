"""How well predictors do on cells timed independently: `python benchmarks/adapt_eval.py --db S --backend B
--predictors a,b [--device-name cpu] [--profile cifar-b1] [--exclude-calibration N] [--min-measurements K]
[--baseline-from FITDB]`.

Prints, per predictor, the mean relative error, Kendall tau, Spearman rho and the share within
±5% / ±10% over the store's architectures (leaving out the first N calibration cells, which an
adapted predictor was fitted on; with --min-measurements K only those whose label is the median of K or
more measurements, i.e. the labels `lpm recheck` made less noisy). With --baseline-from FITDB (both stores keeping a ratio
statistic: each row is the ratio to DARTS_V2 timed beside it, times its store's baseline, the first group's
DARTS_V2 ms), the labels are put on FITDB's baseline first: the same ratios in the units the predictor was
fitted in, as if the held-out cells had been measured into a copy of FITDB; without it a one-group difference
of the two baselines shows as error.
"""

import argparse

import numpy as np
from scipy.stats import kendalltau, spearmanr

from lpm_zoo.calibration import calibration_keys
from lpm_zoo.predictors import get_predictor
from lpm_zoo.store import MeasurementStore, Target, load_dataset


def baseline(db: str, target: Target) -> float:
    """The one DARTS_V2 baseline (ms) a ratio store's rows of `target` are expressed in."""
    with MeasurementStore(db) as store:
        values = {r["protocol"].get("reference_baseline_ms") for r in store.measurements(
            backend=target.backend, device=target.device, profile=target.profile)}
    if len(values) != 1 or None in values:
        raise SystemExit(f"{db}: the rows do not share one reference_baseline_ms ({sorted(map(str, values))[:3]})")
    return float(values.pop())


ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--db", required=True)
ap.add_argument("--backend", required=True)
ap.add_argument("--device-name", default="cpu")
ap.add_argument("--profile", default="cifar-b1")
ap.add_argument("--predictors", required=True, help="comma-separated zoo names or directories")
ap.add_argument("--exclude-calibration", type=int, default=100, help="leave out this many calibration cells")
ap.add_argument("--min-measurements", type=int, default=1, help="only labels that are the median of K or more")
ap.add_argument("--baseline-from", metavar="FITDB", help="put the labels on this store's DARTS_V2 baseline (ratio stores)")
args = ap.parse_args()
target = Target(args.backend, args.device_name, args.profile)
data = load_dataset(args.db, target)
skip = set(calibration_keys(args.exclude_calibration)) if args.exclude_calibration else set()
idx = np.array([i for i, k in enumerate(data.keys) if k not in skip and data.measured[i] >= args.min_measurements])
y = data.latency_ms[idx]
if args.baseline_from:
    fit_base, own_base = baseline(args.baseline_from, target), baseline(args.db, target)
    y = y * fit_base / own_base
    print(f"labels on {args.baseline_from}'s baseline: x {fit_base:.3f} / {own_base:.3f} ms")
print(f"{args.db}: {len(idx)} architectures of {args.backend}/{args.device_name}/{args.profile}")
print(f"{'predictor':<22} {'MRE %':>6} {'tau':>6} {'rho':>6} {'±5 %':>6} {'±10 %':>6}")
for name in args.predictors.split(","):
    p = get_predictor(name).predict((data.ops[idx], data.inputs[idx]))
    rel = np.abs(p - y) / y
    print(f"{name:<22} {100 * rel.mean():>6.2f} {kendalltau(p, y).statistic:>6.3f} {spearmanr(p, y).statistic:>6.3f} "
          f"{100 * (rel <= 0.05).mean():>6.1f} {100 * (rel <= 0.10).mean():>6.1f}")
