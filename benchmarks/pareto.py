"""The λ sweep's table and Pareto picture: test accuracy against measured latency, one point per seed.

Reads what `benchmarks/lambda_sweep.sh OUT ...` wrote (OUT/SPEC-sSEED/{search,measure,measure_whole,train}.json),
prints a table per spec (mean over seeds, the seeds' range), checks the paper's claim (some λ gives
>= 25% lower measured latency at test accuracy within 0.5 points of λ = 0) and draws OUT/pareto.png.
    usage: python benchmarks/pareto.py OUT [--plot FILE] [--title TEXT]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


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


def _mean(rs: list[dict], key: str) -> float:
    vals = [r[key] for r in rs if r[key] is not None]
    return statistics.mean(vals) if vals else float("nan")


def table(runs: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: one per spec, means over seeds with the accuracy's range."""
    base = runs.get("0")
    lines = ["| spec | seeds | skip_connect (normal) | predicted ms | measured ms, normal cell | measured ms, whole "
             "network | test acc, mean (min–max) |", "|---|---|---|---|---|---|---|"]
    def rel(spec: str, rs: list[dict], key: str) -> str:
        m = _mean(rs, key)
        if base is None or spec == "0":
            return f"{m:.2f}"
        return f"{m:.2f} ({100 * (m - _mean(base, key)) / _mean(base, key):+.1f}%)"

    for spec, rs in runs.items():
        accs = [r["acc"] for r in rs]
        pred = _mean(rs, "predicted_ms")
        lines.append(f"| {spec} | {len(rs)} | {_mean(rs, 'skips'):.1f} | {'—' if pred != pred else f'{pred:.2f}'} | "
                     f"{rel(spec, rs, 'normal_ms')} | {rel(spec, rs, 'whole_ms')} | {statistics.mean(accs):.2f}% "
                     f"({min(accs):.2f}–{max(accs):.2f}) |")
    return lines


def claim(runs: dict[str, list[dict]]) -> list[str]:
    """The paper's claim per λ > 0: >= 25% lower measured latency at accuracy within 0.5 points of λ = 0."""
    base = runs.get("0")
    if not base:
        return ["no λ = 0 runs: the claim cannot be checked"]
    out = []
    for spec, rs in runs.items():
        if spec == "0" or spec.startswith("ref:"):
            continue
        d_acc = _mean(rs, "acc") - _mean(base, "acc")
        for key, what in (("normal_ms", "normal cell"), ("whole_ms", "whole network")):
            cut = 100 * (1 - _mean(rs, key) / _mean(base, key))
            ok = cut >= 25 and d_acc >= -0.5
            out.append(f"{spec}: {what} {cut:.1f}% faster, accuracy {d_acc:+.2f} points: "
                       f"{'meets' if ok else 'does not meet'} the claim")
    return out


def plot(runs: dict[str, list[dict]], path: Path, title: str) -> None:
    """Test accuracy against the whole network's measured latency, one point per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    searched = [spec for spec in runs if not spec.startswith("ref:")]
    ref_markers = iter("*DPX^v")
    for spec, rs in runs.items():
        ref = spec.startswith("ref:")
        color = "black" if ref else plt.cm.viridis(searched.index(spec) / max(1, len(searched) - 1))
        ax.scatter([r["whole_ms"] for r in rs], [r["acc"] for r in rs], s=70 if ref else 36,
                   marker=next(ref_markers, "s") if ref else "o", color=color,
                   label=spec.removeprefix("ref:") if ref else f"λ = {spec.replace('rel', 'relative ')}",
                   edgecolors="white", linewidths=0.5, zorder=3 if ref else 2)
    ax.set_xlabel("measured latency of the whole network, ms (lpm measure, ort/cpu, cifar-b1-both)")
    ax.set_ylabel("test accuracy, % (lpm train)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: it hides no point
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
