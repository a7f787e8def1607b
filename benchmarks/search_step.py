"""Cost of the latency term relative to a search step: `python -m benchmarks.search_step [--predictor NAME] ...`.

Runs a few search steps with λ > 0 and reports the median time of a whole step (α update with the
latency term, then the w update) and of the latency term alone (M samples, the predictor, the
gradient). Without `--predictor`, a paper-shaped MLP (112-256-64-1) and a k-NN regressor are fitted
on a synthetic per-op cost table: the latencies are made up, only the compute cost is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _synthetic_predictors(root: Path) -> list[str]:
    from lpm_zoo.predictors import create_predictor
    from lpm_zoo.sampler import sample_arrays
    from lpm_zoo.synthetic import OP_COST

    ops, inputs = sample_arrays(2000, seed=0)
    y = 5 + OP_COST[ops].sum(1)
    create_predictor("mlp", epochs=5).fit((ops, inputs), y).save(str(root / "mlp-synthetic"))
    create_predictor("knn").fit((ops, inputs), y).save(str(root / "knn-synthetic"))
    return [str(root / "mlp-synthetic"), str(root / "knn-synthetic")]


def main(argv: list[str] | None = None) -> int:
    import torch

    from lpm_zoo.search.searcher import Search, SearchConfig

    ap = argparse.ArgumentParser(prog="python -m benchmarks.search_step", description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", action="append", help="fitted predictor(s); default: synthetic mlp and knn")
    ap.add_argument("--method", default="darts")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        preds = args.predictor or _synthetic_predictors(Path(tmp))
        for name in preds:
            cfg = SearchConfig(method=args.method, predictor=name, lam=0.2, relative=True, epochs=1,
                               max_steps=args.steps, channels=args.channels, layers=args.layers,
                               batch_size=args.batch_size, warmup_epochs=0)
            s = Search(cfg, Path(tmp) / "run", progress=False, log=lambda m: None)
            steps, lats = [], []
            orig_latency = s._latency_fn

            def patched(orig_latency=orig_latency, lats=lats):
                fn = orig_latency()

                def timed():
                    t0 = time.perf_counter()
                    out = fn()
                    lats.append(time.perf_counter() - t0)
                    return out
                return timed

            s._latency_fn = patched
            orig_step = s.architect.step

            def timed_step(*a, orig_step=orig_step, steps=steps, **k):
                t0 = time.perf_counter()
                out = orig_step(*a, **k)
                steps.append(time.perf_counter() - t0)
                return out

            s.architect.step = timed_step
            t0 = time.perf_counter()
            s.run()
            total = (time.perf_counter() - t0)
            step_s = s.state.timing["step_s"] / s.state.timing["step_n"]
            lat = statistics.median(lats[1:] or lats)
            print(json.dumps({
                "predictor": Path(name).name, "estimator": s.latency.estimator, "method": args.method,
                "network": f"C={args.channels} layers={args.layers} batch={args.batch_size} "
                           f"{s.data.resolution}x{s.data.resolution}",
                "threads": torch.get_num_threads(), "steps": args.steps,
                "mean_search_step_s": round(step_s, 4), "median_arch_step_s": round(statistics.median(steps), 4),
                "median_latency_term_ms": round(1e3 * lat, 3),
                "latency_term_share_of_step_pct": round(100 * lat / step_s, 3), "wall_s": round(total, 1),
            }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
