"""The λ sweep's table and Pareto picture: test accuracy against measured latency, one point per seed.

For the folders the old `benchmarks/lambda_sweep.sh OUT ...` wrote (OUT/SPEC-sSEED/{search,measure,measure_whole,train}.json),
the figures in BENCHMARKS.md came from; new sweeps are `lpm sweep`, whose report.md holds the same table (the table,
the claim and the picture are `lpm_zoo.search.sweep.report`'s). It
prints a table per spec (mean over seeds, the seeds' range), checks the paper's claim (some λ gives
>= 25% lower measured latency at test accuracy within 0.5 points of λ = 0) and draws OUT/pareto.png.
    usage: python benchmarks/pareto.py OUT [--plot FILE] [--title TEXT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpm_zoo.search.sweep.report import claim, plot, table


def _last_json(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def _read_run(d: Path) -> dict:
    """One finished run of the sweep: its seed, test accuracy, measured and predicted ms, skip count."""
    seed = d.name.rsplit("-s", 1)[1]
    train = _last_json(d / "train.json")
    search = _last_json(d / "search.json") if (d / "search.json").is_file() else {}
    geno = json.loads((d / "genotype.json").read_text()) if (d / "genotype.json").is_file() else None
    return dict(seed=int(seed), acc=100 * train["test_acc"], normal_ms=_last_json(d / "measure.json")["latency_ms"],
                whole_ms=_last_json(d / "measure_whole.json")["latency_ms"],
                predicted_ms=search.get("predicted_latency_ms"),
                skips=sum(op == "skip_connect" for op, _ in geno["normal"]) if geno else None)


def load_runs(out: Path) -> dict[str, list[dict]]:
    """Finished runs by spec, in the order specs first appear (λ = 0 first when present)."""
    runs: dict[str, list[dict]] = {}
    done = ("train.json", "measure.json", "measure_whole.json")
    for d in sorted(p for p in out.iterdir() if p.is_dir() and all((p / f).is_file() for f in done)):
        try:
            runs.setdefault(d.name.rsplit("-s", 1)[0], []).append(_read_run(d))
        except (ValueError, KeyError, TypeError, IndexError) as e:  # a torn or foreign file: one line, not a traceback
            raise SystemExit(f"pareto.py: {d} does not hold a finished sweep run ({type(e).__name__}: "
                             f"{str(e)[:120]}); delete it or rerun the sweep") from None
    return dict(sorted(runs.items(), key=lambda kv: (kv[0].startswith("ref:"), kv[0] != "0", kv[0])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--plot", type=Path, help="where to draw the picture (default OUT/pareto.png)")
    ap.add_argument("--title", default="λ sweep: one point per seed")
    args = ap.parse_args(argv)
    if not args.out.is_dir():
        raise SystemExit(f"pareto.py: {str(args.out)[:200]} is not a folder of benchmarks/lambda_sweep.sh runs")
    runs = load_runs(args.out)
    if not runs:
        raise SystemExit(f"pareto.py: no finished runs in {args.out}")
    print("\n".join(table(runs)))
    print()
    print("\n".join(claim(runs)))
    path = args.plot or args.out / "pareto.png"
    plot(runs, path, args.title)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
