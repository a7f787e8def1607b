"""K-fold cross-validation of one predictor type on a store: every architecture is held out once.

One held-out split of 1,000 has a Kendall tau standard error of ~0.004; the folds show how much
a figure moves with the split. Fold 0 is the held-out set of `lpm fit --test-size N/K` (the
same seeded permutation), so its figure matches the shipped predictor's up to the order of the
training rows. Prints a JSON line per fold, then mean / sd / min / max of MRE, tau and ±10%.

    python benchmarks/crossval.py bundled:ort-cpu-cifar-b1-both ort cpu cifar-b1-both mlp-split [--folds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from lpm_zoo.errors import LpmError
from lpm_zoo.evaluation.metrics import metrics
from lpm_zoo.predictors.registry import create_predictor
from lpm_zoo.store import Target, load_dataset, resolve_db


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="a measurement store, or bundled:NAME")
    ap.add_argument("backend")
    ap.add_argument("device", help="the store's device name (e.g. cpu)")
    ap.add_argument("profile")
    ap.add_argument("predictor", help="a predictor type (mlp-split, ridge, ...) with its default parameters")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="seed of the permutation (lpm fit's --seed)")
    args = ap.parse_args(argv)
    try:
        data = load_dataset(resolve_db(args.db), Target(args.backend, args.device, args.profile))
        if not 2 <= args.folds <= len(data):
            raise LpmError(f"--folds must be from 2 to {len(data)} (the architectures in the store)")
        perm = np.random.default_rng(args.seed).permutation(len(data))
        rows = []
        for k, test in enumerate(np.array_split(perm, args.folds)):
            train = np.setdiff1d(perm, test)
            t0 = time.perf_counter()
            p = create_predictor(args.predictor).fit((data.ops[train], data.inputs[train]), data.latency_ms[train])
            m = metrics(data.latency_ms[test], p.predict((data.ops[test], data.inputs[test])))
            rows.append(m)
            print(json.dumps({"fold": k, "train": len(train), "test": len(test), "mre_pct": round(m["mre_pct"], 3),
                              "kendall_tau": round(m["kendall_tau"], 4), "within10_pct": m["within10_pct"],
                              "fit_s": round(time.perf_counter() - t0, 1)}), flush=True)
    except (LpmError, ValueError) as e:
        print(f"crossval: {e}", file=sys.stderr)
        return 2
    for key in ("mre_pct", "kendall_tau", "within10_pct"):
        v = np.array([r[key] for r in rows])
        print(f"{key}: mean {v.mean():.4f}, sd {v.std(ddof=1):.4f}, min {v.min():.4f}, max {v.max():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
