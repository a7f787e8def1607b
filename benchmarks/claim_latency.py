"""Issue 34's claim with every network timed in turns: a sweep's trained networks are measured again with
`lpm measure --profile cifar-b1-both` in interleaved groups (at most 16 networks a group, DARTS_V2 in each, every
group scaled to the first group's DARTS_V2), so a passing load hits them alike; their whole-network ms replace the
per-trial figures (each measured alone, under whatever ran beside it), and the verdicts of
`lpm_zoo.search.sweep.claims`, its picture and the rows of benchmarks/results/search-claim.json are written from them.

    python -m benchmarks.claim_latency runs/claim-search [runs/claim-pc ...] \\
        --out benchmarks/results/search-claim.json --png docs/search_claim.png

Several sweep folders pool their trials (say, the λ = 0 searches of one sweep, a PC-DARTS sweep and a λ > 0 sweep),
when they train every network alike (the same datasets and `lpm train` flags, length included); a trial in two
folders (one taken into the other with `--reuse`) counts once, from the first folder that has it.

Run it on a quiet machine: it prints the `lscpu` model the figures belong to. The sweep folder is read as untrusted
input (its grid and every row are checked and recomputed by `lpm sweep`'s own reader; a genotype is data, never a
path)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import write_atomic
from lpm_zoo.hardware import cpu_fingerprint, describe
from lpm_zoo.search.sweep import claims
from lpm_zoo.search.sweep.grid import sweep_grid
from lpm_zoo.search.sweep.results import collect_rows, profile_column

PROFILE = "cifar-b1-both"
ANCHOR = "DARTS_V2"
#: networks per `lpm measure` call (its cap), the anchor included
GROUP = 16


def networks(rows: list[dict]) -> list[str]:
    """The distinct genotypes (as the sweep wrote them: JSON) of the finished rows, in first-seen order."""
    return list(dict.fromkeys(r["genotype"] for r in rows if r.get("genotype")))


def pooled_rows(folders: list[Path]) -> list[dict]:
    """The finished rows of every sweep folder, each trial once (the first folder's), after checking that all of
    them train their networks alike: a claim over networks trained two ways would compare the training."""
    grids = [(folder, sweep_grid(folder)) for folder in folders]
    want = grids[0][1].training()
    for folder, grid in grids[1:]:
        if grid.training() != want:
            raise LpmError(f"{folder} trains with {clip(grid.training())}, {folders[0]} with {clip(want)}: pool "
                           "sweeps whose networks are trained alike")
    by_trial: dict[str, dict] = {}
    for folder, grid in grids:
        for r in collect_rows(folder, grid.trials(), grid.settings):
            by_trial.setdefault(r["trial"], r)
    rows = list(by_trial.values())
    if not rows:
        raise LpmError(f"{clip(', '.join(map(str, folders)))}: no finished trial")
    return rows


def training_machines(rows: list[dict]) -> str:
    """Which machines trained the pooled networks, with counts: one training's accuracy differs between CPU models
    (by 0.5 points for two cells, BENCHMARKS.md), so a claim over networks trained on several should say so."""
    counts: dict[str, int] = {}
    for r in rows:
        key = r.get("trained_on") or "not recorded (trained before 2026-12-08)"
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def measure_group(genotypes: list[str], threads: int, rounds: int | None) -> list[float]:
    """Whole-network ms of ANCHOR and then each genotype, timed together in turns by one `lpm measure`."""
    argv = [sys.executable, "-m", "lpm_zoo", "measure", "--backend", "ort", "--profile", PROFILE, "--threads",
            str(threads), "--json", "--genotype", ANCHOR]
    for g in genotypes:
        argv += ["--genotype", g]
    if rounds:
        argv += ["--rounds", str(rounds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise LpmError(f"lpm measure failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    out = [json.loads(line)["latency_ms"] for line in done.stdout.splitlines() if line.startswith("{")]
    if len(out) != len(genotypes) + 1 or not all(isinstance(v, (int, float)) and v > 0 for v in out):
        raise LpmError(f"lpm measure printed {len(out)} results for {len(genotypes) + 1} networks, or a latency "
                       "that is not a positive number")
    return out


def interleaved_ms(genotypes: list[str], threads: int, rounds: int | None) -> tuple[dict[str, float], list[dict]]:
    """Each genotype's ms in the first group's terms, and each group's raw figures (anchor first)."""
    ms: dict[str, float] = {}
    groups = []
    anchor0 = None
    for i in range(0, len(genotypes), GROUP - 1):
        part = genotypes[i:i + GROUP - 1]
        got = measure_group(part, threads, rounds)
        anchor0 = anchor0 or got[0]
        scale = anchor0 / got[0]
        groups.append({"anchor_ms": got[0], "scale": scale, "ms": got[1:]})
        for g, v in zip(part, got[1:]):
            ms[g] = v * scale
        print(f"group {len(groups)}: {len(part)} networks, {ANCHOR} {got[0]:.3f} ms (scale {scale:.4f})",
              file=sys.stderr)
    return ms, groups


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except LpmError as e:  # a sweep folder that is not one, a measurement that failed: one line
        print(f"claim_latency: error: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", type=Path, nargs="+", metavar="SWEEP",
                   help="finished (or partly finished) `lpm sweep` folders that train alike")
    p.add_argument("--out", type=Path, required=True, help="the claim rows (search-claim.json)")
    p.add_argument("--png", type=Path, help="the picture (accuracy against the interleaved ms)")
    p.add_argument("--threads", type=int, default=1, help="threads of every measurement (the sweep's: 1)")
    p.add_argument("--rounds", type=int, help="lpm measure --rounds (default its own)")
    args = p.parse_args(argv)
    rows = pooled_rows(args.sweeps)
    ms, groups = interleaved_ms(networks(rows), args.threads, args.rounds)
    column = profile_column(PROFILE)
    for r in rows:
        r[column] = ms.get(r["genotype"])
    crows = claims.claim_rows(rows, column)
    machine = describe(cpu_fingerprint())
    write_atomic(args.out, (json.dumps(crows, indent=1, allow_nan=False) + "\n").encode())
    timing = args.out.with_suffix(".timing.json")
    write_atomic(timing, (json.dumps({"machine": machine, "profile": PROFILE, "backend": "ort", "threads": args.threads,
                                      "anchor": ANCHOR, "groups": groups}, indent=1) + "\n").encode())
    if args.png:
        claims.plot_claim(crows, args.png, f"accuracy against whole-network ms, timed in turns ({machine})")
    print(f"machine: {machine}; {len(ms)} networks in {len(groups)} interleaved groups; wrote {args.out}, {timing}")
    print(f"trained on: {training_machines(rows)}")
    for line in claims.verdicts(crows):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
