"""Stands for `lpm` in the sweep tests (`lpm sweep --step-command "python tests/sweep_fake_lpm.py"`): search,
measure and train write what the real commands write, in a fraction of a second (FAKE_LPM_SLEEP seconds each),
and log each start and end to FAKE_LPM_LOG (one line each, appended): `start|end TRIAL STEP PID [resumed]`.

The found genotype is DARTS_V2's with as many skip_connect in the normal cell as 10·λ (at most 8), plus the seed
when the seed is odd; a measurement is 10 ms (cifar-b1) or 20 ms (-both) less 0.5 ms per skip_connect; the test
accuracy is 0.8 less 0.01 per skip_connect. A search interrupted (SIGINT) leaves its checkpoint and exits 130.
The search's history.json holds, after epoch e of E, the genotype with E − e more skip_connect (at most 8): the
cell gets better as the search goes on; `search --genotype-after N` reads it with the real reader
(lpm_zoo.search.history). The steps of an anytime cell log as genotype-eN, measure-PROFILE-eN and train-eN.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lpm_zoo.search.history import genotype_after
from lpm_zoo.space import Genotype

DARTS_V2 = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
                       ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
            "normal_concat": [2, 3, 4, 5],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                       ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
            "reduce_concat": [2, 3, 4, 5]}


def log(event: str, step: str, extra: str = "") -> None:
    path = os.environ.get("FAKE_LPM_LOG")
    if path:
        line = f"{event} {os.environ.get('LPM_SWEEP_TRIAL', '?')} {step} {os.getpid()} {extra}".strip() + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line.encode())
        os.close(fd)


def arg(argv: list[str], flag: str, default: str | None = None) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else default


def skips(g: dict) -> int:
    return sum(op == "skip_connect" for op, _ in g["normal"])


def with_skips(k: int) -> dict:
    g = json.loads(json.dumps(DARTS_V2))
    g["normal"] = [["skip_connect", i] if n < k else [op, i] for n, (op, i) in enumerate(g["normal"])]
    return g


def step_name(argv: list[str]) -> str:
    cmd = argv[0]
    spec = arg(argv, "--genotype") or ""
    suffix = spec[len("genotype"):-len(".json")] if spec.startswith("genotype-e") else ""
    if cmd == "measure":
        return f"measure-{arg(argv, '--profile')}{suffix}"
    if cmd == "train":
        return f"train{suffix}"
    if cmd == "search" and "--genotype-after" in argv:
        return f"genotype-e{arg(argv, '--genotype-after')}"
    return cmd


def main(argv: list[str]) -> int:
    cmd, nap = argv[0], float(os.environ.get("FAKE_LPM_SLEEP", "0"))
    step = step_name(argv)
    try:
        if cmd == "search" and "--genotype-after" in argv:
            log("start", step)
            g, _ = genotype_after(arg(argv, "--out"), int(arg(argv, "--genotype-after")))
            print(json.dumps(g.to_dict()))
        elif cmd == "search":
            out = Path(arg(argv, "--out"))
            out.mkdir(exist_ok=True)
            resumed = (out / "checkpoint.pt").is_file()
            log("start", step, "resumed" if resumed else "")
            if not resumed:
                time.sleep(nap / 2)
                (out / "checkpoint.pt").write_text("half")
            time.sleep(nap / 2)
            lam, seed = float(arg(argv, "--lambda")), int(arg(argv, "--seed"))
            k = min(8, round(10 * lam) + (seed if seed % 2 else 0))
            g = with_skips(k)
            (out / "genotype.json").write_text(json.dumps(g))
            epochs = int(arg(argv, "--epochs", "1"))
            (out / "history.json").write_text(json.dumps([
                {"epoch": e, "genotype": Genotype.from_dict(with_skips(min(8, k + epochs - e))).to_darts()}
                for e in range(1, epochs + 1)]))
            print(json.dumps({"genotype_json": g, "predicted_latency_ms": 10.0 - k, "lat_alpha_ms": 10.0,
                              "val_acc": 0.5, "reference_ms": 9.0, "lambda": lam, "seed": seed,
                              "method": arg(argv, "--method"), "predictor": arg(argv, "--predictor"),
                              "relative": "--relative" in argv}))
        elif cmd == "measure":
            log("start", step)
            time.sleep(nap)
            spec = arg(argv, "--genotype")
            g = json.loads(Path(spec).read_text()) if spec.endswith(".json") else json.loads(spec) \
                if spec.startswith("{") else DARTS_V2
            base = 20.0 if arg(argv, "--profile").endswith("-both") else 10.0
            print(json.dumps({"backend": arg(argv, "--backend"), "profile": arg(argv, "--profile"),
                              "latency_ms": base - 0.5 * skips(g), "spread_ms": 0.1}))
        elif cmd == "info":
            log("start", step)
            spec = argv[1]
            g = json.loads(Path(spec).read_text()) if spec.endswith(".json") else json.loads(spec) \
                if spec.startswith("{") else DARTS_V2
            print(json.dumps({"madds_M": 500.0 - 10 * skips(g), "params_M": 3.0}))
        elif cmd == "train":
            log("start", step)
            out = Path(arg(argv, "--out"))
            out.mkdir(exist_ok=True)
            time.sleep(nap)
            spec = arg(argv, "--genotype")
            g = json.loads(Path(spec).read_text()) if spec.endswith(".json") else json.loads(spec) \
                if spec.startswith("{") else DARTS_V2
            print(json.dumps({"test_acc": 0.8 - 0.01 * skips(g), "params_M": 0.01, "seconds": nap, "epochs_done": 1,
                              "dataset": arg(argv, "--dataset"), "trained_on": "Fake CPU, 2 cores, avx2"}))
        else:
            print(f"fake lpm: unknown command {cmd}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        log("interrupted", step)
        return 130
    log("end", step)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
