"""`make demo`: a latency-aware search with a shipped predictor, then the found cells measured.

The demo is a sequence of `lpm` commands, so it lives beside the other scripts, above all three rooms:
two searches on the built-in digits dataset with the shipped `ort-cpu` predictor, λ=0 and a
latency-aware λ, run side by side (one thread each), then both found cells timed with
`lpm measure` on the predictor's own backend, and a table of predicted against measured latency:
the normal cell (in DARTS_V2's network, what `ort-cpu` predicts) and the whole found genotype
(`--profile cifar-b1-both`: both found cells, the network a user deploys).
Searches checkpoint into `runs/demo/`, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PREDICTOR = "ort-cpu"
MEASURE = ["--backend", "ort", "--device", "cpu", "--profile", "cifar-b1"]
WHOLE = ["--backend", "ort", "--device", "cpu", "--profile", "cifar-b1-both"]  # both found cells, as deployed
DATA = "bundled:ort-cpu-cifar-b1"  # the shipped measurements ort-cpu was fitted on: `measure --db` uses their scale
SEARCH_FLAGS = [
    "--dataset", "digits", "--method", "darts", "--relative", "--epochs", "6", "--channels", "4",
    "--layers", "5", "--batch-size", "32", "--arch-lr", "3e-3", "--threads", "1", "--no-progress", "--json",
]


def _lpm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lpm_zoo", *args]


def _json_out(proc: subprocess.CompletedProcess, what: str) -> dict:
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"demo: {what} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--lambda", dest="lam", type=float, default=0.5, help="relative λ of the latency-aware run")
    ap.add_argument("--out", default="runs/demo", help="where the searches checkpoint and write their cells")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    print("== shipped predictors ==", flush=True)
    subprocess.run(_lpm("zoo", "list"), check=True)
    zoo = subprocess.run(_lpm("zoo", "list", "--json"), capture_output=True, text=True, check=True).stdout
    fit = next(e for e in map(json.loads, zoo.splitlines()) if e["name"] == PREDICTOR)
    stamp = "".join(ch for ch in str(fit.get("created", "")) if ch.isalnum())
    out = Path(args.out) / f"{PREDICTOR}-{stamp}"  # a refitted predictor starts afresh
    print(f"\n== two searches on digits with --predictor {PREDICTOR}: λ=0 and relative λ={args.lam} "
          "(side by side, one thread each; progress on stderr) ==", flush=True)
    t0 = time.time()
    runs = {}
    for lam in (0.0, args.lam):
        d = out / f"lambda-{lam:g}"
        cmd = _lpm("search", "--predictor", PREDICTOR, "--lambda", f"{lam:g}", "--seed", str(args.seed),
                   "--out", str(d), *SEARCH_FLAGS)
        runs[lam] = (d, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for lam, (_, proc) in runs.items():
        stdout, stderr = proc.communicate()
        results[lam] = _json_out(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
                                 f"search λ={lam:g}")
    print(f"   searches done in {time.time() - t0:.0f} s", flush=True)

    print(f"\n== measuring the found cells: lpm measure {' '.join(MEASURE)} --db {DATA} ==", flush=True)
    rows = []
    for lam, (d, _) in runs.items():
        m = _json_out(subprocess.run(_lpm("measure", *MEASURE, "--db", DATA, "--genotype", str(d / "genotype.json"), "--json"),
                                     capture_output=True, text=True), f"measure λ={lam:g}")
        p = _json_out(subprocess.run(_lpm("predict", "--predictor", PREDICTOR, "--genotype", str(d / "genotype.json"),
                                          "--json"), capture_output=True, text=True), f"predict λ={lam:g}")
        w = _json_out(subprocess.run(_lpm("measure", *WHOLE, "--genotype", str(d / "genotype.json"), "--json"),
                                     capture_output=True, text=True), f"measure the whole network λ={lam:g}")
        rows.append((lam, results[lam], p["latency_ms"], m["latency_ms"], w["latency_ms"], d))

    print(f"\n{'λ (relative)':>12}  {'val acc':>7}  {'predicted ms':>12}  {'measured ms':>11}  {'whole net ms':>12}"
          "  normal cell")
    for lam, res, pred, meas, whole, d in rows:
        acc = res.get("val_acc", res.get("valid_acc", float("nan")))
        normal = ", ".join(f"{op}<-{i}" for op, i in json.loads((d / "genotype.json").read_text())["normal"])
        print(f"{lam:>12g}  {acc:>7.3f}  {pred:>12.2f}  {meas:>11.2f}  {whole:>12.2f}  {normal}")
    base, aware = rows[0][3], rows[1][3]
    wbase, waware = rows[0][4], rows[1][4]
    print(f"\nmeasured latency, λ={args.lam:g} vs λ=0: {100 * (aware - base) / base:+.1f}% for the normal cell "
          f"(DARTS_V2's reduction cell), {100 * (waware - wbase) / wbase:+.1f}% for the whole found network "
          f"(its own reduction cell, which {PREDICTOR} does not see)  (cells and pictures in {out}/)")
    print("\nwhat digits can show: latency. What it cannot: accuracy; an all-skip_connect normal cell still "
          "scores ~93-96% here, so the val acc column says nothing about a cell's quality. The textures task "
          "(--dataset textures) does: DARTS_V2 85.1% against 62.3% for all-skip_connect; its λ sweep takes an hour "
          "(scripts/lambda_sweep.sh, BENCHMARKS.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
