"""`make demo`: the mission on the machine it runs on: calibrate, compare, search, measure, in a few minutes.

The demo is a sequence of `lpm` commands (each printed before it runs), so it lives beside the other
scripts, above all three rooms:

1. calibrate this machine: `lpm adapt` from the shipped whole-network predictor `ort-cpu-both` with
   the first calibration genotypes, measured here (`cifar-b1-both`, ONNX Runtime on the CPU);
2. compare predictor types briefly on a bundled store (`lpm compare`);
3. search on the built-in digits task with the calibrated predictor, λ = 0 and a relative λ, over
   several seeds, two searches at a time on one thread each;
4. measure the found networks here, in this machine's milliseconds (the calibration store's scale),
   together with DARTS_V2 as a fixed reference, in one interleaved `lpm measure`, beside the
   calibrated predictor's predictions.

The headline compares the mean over seeds of the latency-aware networks with DARTS_V2 (a fixed
network, so the figure does not hang on what one short λ = 0 search happened to find) and with the
mean of the λ = 0 networks. Everything lands in `runs/demo/<this machine's slug>/`: the store of
calibration measurements (resumed), the calibrated predictor, a folder per search (checkpointed, so
an interrupted demo resumes; a recalibrated predictor starts its searches afresh).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lpm_zoo.hardware import host_slug

SOURCE = "ort-cpu-both"  # the shipped whole-network predictor (both cells priced)
TARGET = ["--backend", "ort", "--device", "cpu", "--profile", "cifar-b1-both"]  # the deployed C=36 network
COMPARE = ["--db", "bundled:ort-xeon-small-b1", "--backend", "ort", "--device-name", "xeon", "--profile", "small-b1",
           "--predictors", "flops,lut,ridge,mlp", "--train-sizes", "100,800", "--test-size", "300"]
SEARCH_FLAGS = [  # a step costs about the same at batch 32 or 64 (small-op overhead), so 64 halves the steps; a larger
    # α learning rate keeps α's total movement (≈ steps × lr with Adam) near the old 4 epochs × 28 steps × 3e-3
    "--dataset", "digits", "--method", "darts", "--relative", "--channels", "4", "--layers", "5",
    "--batch-size", "64", "--arch-lr", "1e-2", "--threads", "1", "--no-progress", "--json",
]


def _lpm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lpm_zoo", *args]


def _show(cmd: list[str]) -> None:
    print("   $ lpm " + " ".join(shlex.quote(a) for a in cmd[3:]), flush=True)


def _run(cmd: list[str], what: str, capture: bool = True) -> str:
    _show(cmd)
    proc = subprocess.run(cmd, capture_output=capture, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr or "")
        raise SystemExit(f"demo: {what} failed (exit {proc.returncode})")
    return proc.stdout or ""


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--lambda", dest="lam", type=float, default=0.5, help="relative λ of the latency-aware runs")
    ap.add_argument("--seeds", default="0,1", help="search seeds (comma-separated; default 0,1)")
    ap.add_argument("--epochs", type=int, default=3, help="search epochs (default 3)")
    ap.add_argument("--samples", type=int, default=10, help="calibration genotypes measured here (default 10)")
    ap.add_argument("--out", default="runs/demo", help="where the demo keeps its store, predictor and searches")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t_start = time.time()
    out = Path(args.out) / host_slug()  # this machine's own folder: a store never mixes machines
    out.mkdir(parents=True, exist_ok=True)
    db, zoo = out / "here.db", out / "zoo"
    name = "calibrated"
    predictor = str(zoo / name)

    print(f"== 1. calibrate this machine: {SOURCE} (fitted on the dev Xeon) adapted with {args.samples} "
          "genotypes measured here ==", flush=True)
    t0 = time.time()
    adapt = _last_json(_run(_lpm("adapt", "--from", SOURCE, *TARGET, "--samples", str(args.samples), "--db", str(db),
                                 "--name", name, "--zoo-dir", str(zoo), "--force", "--no-progress", "--json"),
                            "lpm adapt"))
    scale = next((c for c in adapt["candidates"] if c.get("method") == "scale"), None)
    print(f"   {adapt['method']}: leave-one-out error {adapt['loo_mre_pct']:.2f}% on the {adapt['n']} genotypes "
          f"measured here" + (f" (a plain scale: {scale['loo_mre_pct']:.2f}%)" if scale and scale is not adapt else "")
          + f"; {time.time() - t0:.0f} s", flush=True)
    stamp = hashlib.sha256((zoo / name / "model.safetensors").read_bytes()  # a recalibrated predictor, or other
                           + json.dumps([SEARCH_FLAGS, args.epochs]).encode()).hexdigest()[:12]  # settings: afresh

    print("\n== 2. compare predictor types on a bundled store (the dev Xeon's small-b1 cells) ==", flush=True)
    table = _run(_lpm("compare", *COMPARE, "--out", str(out / "compare")), "lpm compare")
    for line in table.splitlines():
        if not line.startswith(("#", "wrote")):
            print("   " + line)

    print(f"\n== 3. search on digits with the calibrated predictor: λ=0 and relative λ={args.lam:g}, seeds "
          f"{', '.join(map(str, seeds))} (two at a time, one thread each) ==", flush=True)
    t0 = time.time()
    trials = [(lam, seed) for seed in seeds for lam in (0.0, args.lam)]
    results: dict[tuple[float, int], dict] = {}
    dirs = {t: out / f"search-{stamp}" / f"lambda-{t[0]:g}-seed-{t[1]}" for t in trials}
    for i in range(0, len(trials), 2):
        procs = []
        for lam, seed in trials[i:i + 2]:
            cmd = _lpm("search", "--predictor", predictor, "--lambda", f"{lam:g}", "--seed", str(seed),
                       "--epochs", str(args.epochs), "--out", str(dirs[(lam, seed)]), *SEARCH_FLAGS)
            _show(cmd)
            procs.append(((lam, seed), subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                        text=True)))
        for t, proc in procs:
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                sys.stderr.write(stderr)
                raise SystemExit(f"demo: search λ={t[0]:g} seed {t[1]} failed (exit {proc.returncode})")
            results[t] = _last_json(stdout)
    print(f"   {len(trials)} searches in {time.time() - t0:.0f} s", flush=True)

    print("\n== 4. measure the found networks here, with DARTS_V2, in one interleaved run (this machine's ms) ==",
          flush=True)
    genos = ["DARTS_V2", *(str(dirs[t] / "genotype.json") for t in trials)]
    flags = [a for g in genos for a in ("--genotype", g)]
    measured = [json.loads(line)["latency_ms"] for line in
                _run(_lpm("measure", *TARGET, "--db", str(db), *flags, "--json"), "lpm measure").splitlines()]
    predicted = [json.loads(line)["latency_ms"] for line in
                 _run(_lpm("predict", "--predictor", predictor, *flags, "--json"), "lpm predict").splitlines()]
    v2 = measured[0]
    print(f"\n{'network':>22}  {'val acc':>7}  {'predicted ms':>12}  {'measured ms':>11}  normal cell (op<-input)")
    print(f"{'DARTS_V2':>22}  {'':>7}  {predicted[0]:>12.2f}  {v2:>11.2f}")
    by_lam: dict[float, list[float]] = {0.0: [], args.lam: []}
    for t, pred, meas in zip(trials, predicted[1:], measured[1:]):
        res = results[t]
        by_lam[t[0]].append(meas)
        geno = json.loads((dirs[t] / "genotype.json").read_text())
        ops = ", ".join(f"{op}<-{i}" for op, i in geno["normal"])
        acc = res.get("val_acc", float("nan"))
        print(f"{f'λ={t[0]:g} seed {t[1]}':>22}  {acc:>7.3f}  {pred:>12.2f}  {meas:>11.2f}  {ops}")
    errors = [abs(p - m) / m * 100 for p, m in zip(predicted, measured)]
    print(f"\ncalibrated predictor against the measurements: mean error {statistics.mean(errors):.1f}% "
          f"(max {max(errors):.1f}%) over {len(errors)} networks")
    aware, base = statistics.mean(by_lam[args.lam]), statistics.mean(by_lam[0.0])
    spread = ", ".join(f"{100 * (m - v2) / v2:+.0f}%" for m in by_lam[args.lam])
    print(f"\nheadline: latency-aware networks (relative λ={args.lam:g}, mean of {len(seeds)} seeds) measured "
          f"{aware:.2f} ms here: {100 * (aware - v2) / v2:+.1f}% against DARTS_V2 ({v2:.2f} ms; seeds {spread}) "
          f"and {100 * (aware - base) / base:+.1f}% against λ=0 ({base:.2f} ms)")
    print(f"demo took {time.time() - t_start:.0f} s; its store, predictor and searches are in {out}/")
    print("\nwhat digits can show: latency. What it cannot: accuracy; an all-skip_connect normal cell still "
          "scores ~93-96% here, so the val acc column says nothing about a cell's quality. The textures task "
          "(--dataset textures) does: DARTS_V2 85.1% against 62.3% for all-skip_connect (BENCHMARKS.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
