"""Throughput of batched prediction, encoding included: `python -m benchmarks.predictor_throughput`.

Fits a predictor (a few epochs: speed does not depend on the weights) on synthetic latencies,
then times `predict((ops, inputs))` on N sampled cells (bit indices, first-layer gather, rest
of the network), reporting the median over repeats in architectures per second.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    """Print the median prediction throughput of each requested predictor type."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.predictor_throughput", description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="architectures per timed call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--predictors", default="mlp", help="comma-separated predictor types")
    ap.add_argument("--synthetic-store", metavar="PATH", default=None,
                    help="instead: write a store of --n cells with synthetic latencies (backend synth, device cpu)")
    args = ap.parse_args(argv)
    if args.synthetic_store:
        from lpm_zoo.synthetic import make_synthetic_store

        make_synthetic_store(args.synthetic_store, args.n)
        print(f"wrote {args.n} synthetic measurements to {args.synthetic_store}")
        return

    import torch

    from lpm_zoo.predictors import create_predictor
    from lpm_zoo.sampler import sample_arrays

    ops, inputs = sample_arrays(args.n, seed=0)
    tops, tinp = sample_arrays(400, seed=1)
    y = 1.0 + tops.sum(1) * 0.1
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, N={args.n}")
    for name in args.predictors.split(","):
        kw = {"epochs": 1} if name.startswith("mlp") else {}
        p = create_predictor(name, **kw).fit((tops, tinp), y)
        p.predict((ops[:1000], inputs[:1000]))  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            p.predict((ops, inputs))
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        print(f"{name:<10} {args.n / med:>12,.0f} architectures/s  (median of {args.repeats}: {med * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
