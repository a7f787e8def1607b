"""GPU acceptance run: on any CUDA machine, in at most 10 minutes, what a user with that GPU sends back.

    python scripts/gpu_acceptance.py [--device cuda:0] [--out DIR] [--budget-s 600] [--json FILE]

1. The machine: GPU, driver, compute capability, torch (CUDA, cuDNN, kernel arch list), onnxruntime
   (providers) and TensorRT versions.
2. DARTS_V2 on cifar-b32 (batch 32, C=36, 20 cells; the paper's Table 2 gives 40.9 ms for DARTS (2nd) on a
   P100) with torch eager, torch + CUDA graph, ONNX Runtime's CUDA EP and TensorRT: prepare time, output
   error against CPU torch on the same weights (must be < 1e-2 relative), median latency (CUDA events),
   event time / wall time over the same runs (must be 0.6 to 1.05), the share of ONNX Runtime nodes on the
   CPU (must be 0) and TensorRT's engine build time with a cold and a warm timing cache.
3. With TensorRT: `lpm profile` of 16 random cells, `lpm recheck` of them (repeatability), `lpm fit` of a
   predictor and a 1-epoch `lpm search` with it on the GPU.
4. The search step in each precision (`lpm search --precision`, issue 32): 20 steps at C=16, 8 cells, batch 32,
   32×32 in fp32, fp16 with channels-last and, where the GPU has it, bf16; each one's mean step time and its
   ratio to fp32 (no pass bar: a figure to record).

Exit 0 when every check passes, 1 when one fails or could not run, 2 (one line on stderr) when there is
no usable CUDA device. The output format is in README ("GPU acceptance run").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROFILE = "cifar-b32"
PAPER_MS = 40.9  # LA-DARTS Table 2: DARTS (2nd order) on a P100, batch 32
MAX_REL_ERR = 1e-2
EVENT_WALL = (0.6, 1.05)
TIMED_RUNS = 50
HEADER = "runtime            prepare_s   rel_err   median_ms  event/wall  cpu_nodes  verdict  note"


@dataclass
class RuntimeResult:
    """One runtime's row: what it took to prepare DARTS_V2, how right and how fast it was."""

    runtime: str
    prepare_s: float | None
    rel_err: float | None
    median_ms: float | None
    event_wall: float | None
    cpu_node_share: float | None  # ONNX Runtime only
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return asdict(self)


def verdict(row: RuntimeResult) -> str:
    """'ok' when the row passes every check, else 'FAIL'."""
    ok = (row.rel_err is not None and row.rel_err < MAX_REL_ERR and row.event_wall is not None
          and EVENT_WALL[0] <= row.event_wall <= EVENT_WALL[1] and row.cpu_node_share in (None, 0.0))
    return "ok" if ok else "FAIL"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_row(row: RuntimeResult) -> str:
    """The row as one line under HEADER."""
    return (f"{row.runtime:<18} {_num(row.prepare_s, '9.2f')} {_num(row.rel_err, '9.1e')} {_num(row.median_ms, '11.3f')}"
            f" {_num(row.event_wall, '11.3f')} {_num(row.cpu_node_share, '10.3f')}  {verdict(row):<7}  {row.note}")


def json_line(obj: dict[str, Any]) -> str:
    """`obj` as one JSON line, RuntimeResult values as dicts."""
    return json.dumps({k: v.as_dict() if isinstance(v, RuntimeResult) else v for k, v in obj.items()})


def _fail(message: str) -> int:
    print(f"gpu_acceptance: error: {message}", file=sys.stderr)
    return 2


def machine(device: str) -> dict[str, Any]:
    """GPU, driver, compute capability and the runtimes' versions and providers."""
    import torch

    from lpm_zoo.backends.device import parse_device

    index = parse_device(device)[1]
    props = torch.cuda.get_device_properties(index)
    info: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(index), "capability": f"{props.major}.{props.minor}",
        "memory_gb": round(props.total_memory / 2**30, 1), "driver": _driver(index), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "torch_arch_list": torch.cuda.get_arch_list()}
    try:
        import onnxruntime as ort

        info.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError:
        info.update(onnxruntime="not installed")
    try:
        import tensorrt as trt

        info.update(tensorrt=trt.__version__)
    except ImportError:
        info.update(tensorrt="not installed")
    return info


def _driver(index: int) -> str:
    """The NVIDIA driver version from nvidia-smi ('unknown' without it)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", str(index)],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def time_runtime(name: str, backend: str, model: Any, x: Any, want: Any, device: str, **opts: Any) -> RuntimeResult:
    """Prepare, check and time one runtime on DARTS_V2 (never raises: a failure is a FAIL row saying why)."""
    import numpy as np
    import torch

    from lpm_zoo.backends.protocol import GPU_WARMUP_S
    from lpm_zoo.backends.registry import get_backend

    b = get_backend(backend)
    ok, why = b.available(device)
    if not ok:
        return RuntimeResult(name, None, None, None, None, None, f"not run: {why}")
    try:
        t0 = time.perf_counter()
        p = b.prepare(model, x, device, **opts)
        prepare_s = time.perf_counter() - t0
        got = np.asarray(p.output(), dtype=np.float64)
        rel_err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
        warm_until = time.perf_counter() + GPU_WARMUP_S
        while time.perf_counter() < warm_until:
            b.run_timed(p, 5)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        runs = b.run_timed(p, TIMED_RUNS)  # synchronised at its end
        wall_ms = (time.perf_counter() - t0) * 1e3
        note = ", ".join(f"{k}={v}" for k, v in p.info.items() if k in ("precision", "tf32", "providers"))
        share = None
        if backend == "ort":
            from lpm_zoo.backends.ort_backend import node_providers

            counts = node_providers(model, x, device)
            share = counts.get("CPUExecutionProvider", 0) / max(1, sum(counts.values()))
        p.close()
        return RuntimeResult(name, prepare_s, rel_err, statistics.median(runs), sum(runs) / wall_ms, share, note)
    except Exception as e:  # noqa: BLE001 - whatever a runtime raises is its row's FAIL, and the run goes on
        return RuntimeResult(name, None, None, None, None, None, f"error: {(str(e) or type(e).__name__).splitlines()[0][:200]}")


def trt_cache_build_times(onnx_model: Any, x: Any, device: str) -> str:
    """TensorRT engine build time with a cold (new) and then a warm timing cache."""
    from lpm_zoo.backends.registry import get_backend

    b = get_backend("trt")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "timing.cache")
        cold = b.prepare(onnx_model, x, device, timing_cache=cache)
        warm = b.prepare(onnx_model, x, device, timing_cache=cache)
        text = (f"timing cache cold {cold.info['build_s']:.1f} s ({cold.info['timing_cache_state']}), "
                f"warm {warm.info['build_s']:.1f} s ({warm.info['timing_cache_state']})")
        cold.close()
        warm.close()
    return text


def _lpm(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, timeout=timeout)


def trt_pipeline(device: str, out: Path, deadline: float) -> list[tuple[str, bool, str]]:
    """Profile 16 cells with TensorRT, recheck them, fit a predictor, search 1 epoch with it: (step, ok, what)."""
    db, zoo = out / "trt-acceptance.db", out / "zoo"
    target = ["--backend", "trt", "--device", device, "--profile", PROFILE]
    steps = [
        ("profile 16 cells", ["profile", *target, "--samples", "16", "--db", str(db), "--statistic", "ref_ratio",
                              "--no-progress"]),
        ("recheck", ["recheck", *target, "--samples", "16", "--db", str(db), "--json", "--no-progress"]),
        ("fit", ["fit", "--db", str(db), "--backend", "trt", "--profile", PROFILE, "--predictor", "ridge",
                 "--test-size", "4", "--name", "trt-acceptance", "--zoo-dir", str(zoo), "--json"]),
        ("search 1 epoch", ["search", "--predictor", str(zoo / "trt-acceptance"), "--lambda", "0.2", "--epochs", "1",
                            "--max-steps", "20", "--device", device, "--out", str(out / "search"), "--json",
                            "--no-progress"]),
    ]
    done = []
    for step, args in steps:
        left = deadline - time.perf_counter()
        if left < 10:
            done.append((step, False, "not run: the 10-minute budget is spent"))
            break
        try:
            proc = _lpm(args, left)
        except subprocess.TimeoutExpired:
            done.append((step, False, "stopped: the 10-minute budget is spent"))
            break
        lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        done.append((step, proc.returncode == 0, lines[-1][:300] if lines else ""))
        if proc.returncode != 0:
            break
    return done


#: the search step timed per precision: (label, extra `lpm search` flags)
PRECISION_RUNS = (("fp32", []), ("fp16 + channels-last", ["--precision", "fp16", "--channels-last"]),
                  ("bf16", ["--precision", "bf16"]))


def precision_steps(device: str, out: Path, deadline: float, bf16: bool) -> list[tuple[str, bool, str]]:
    """20 search steps per precision on the GPU: (label, ok, mean step and ratio to fp32, or why not)."""
    done, base = [], None
    for label, extra in PRECISION_RUNS:
        if label == "bf16" and not bf16:
            done.append((label, True, "not run: this GPU has no bf16"))
            continue
        left = deadline - time.perf_counter()
        if left < 10:
            done.append((label, False, "not run: the 10-minute budget is spent"))
            continue
        args = ["search", "--dataset", "textures", "--resolution", "32", "--channels", "16", "--layers", "8",
                "--batch-size", "32", "--epochs", "1", "--max-steps", "20", "--warmup-epochs", "0", "--device", device,
                *extra, "--out", str(out / f"search-{label.split()[0]}"), "--restart", "--json", "--no-progress"]
        try:
            proc = _lpm(args, left)
        except subprocess.TimeoutExpired:
            done.append((label, False, "stopped: the 10-minute budget is spent"))
            continue
        try:
            step = float(json.loads(proc.stdout.strip().splitlines()[-1])["mean_step_s"]) if proc.returncode == 0 else None
        except (ValueError, KeyError, IndexError, TypeError):
            step = None
        if step is None:
            lines = proc.stderr.strip().splitlines()
            done.append((label, False, lines[-1][:300] if lines else f"exit {proc.returncode}"))
            continue
        base = base if base is not None else step
        done.append((label, True, f"{1000 * step:.1f} ms per step (α and w), {step / base:.2f}x fp32"))
    return done


def budget_seconds(text: str) -> float:
    """`--budget-s`: a finite number of seconds from 1 to 86400 (argparse type: anything else is refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 1 <= value <= 86400):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds from 1 to 86400")
    return value


def unwritable(path: str) -> str | None:
    """Why `--json FILE` cannot be written (a folder, a missing or read-only parent, a read-only file); None if it can."""
    target = Path(path)
    if target.is_dir():
        return "is a folder"
    parent = target.parent
    if not parent.is_dir():
        return "is in a folder that does not exist"
    if not os.access(parent if not target.exists() else target, os.W_OK):
        return "cannot be written here"
    return None


def main(argv: list[str] | None = None) -> int:
    from lpm_zoo.cli import OneLineParser

    ap = OneLineParser(prog="scripts/gpu_acceptance.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0", help="the CUDA device to test (default cuda:0)")
    ap.add_argument("--out", default=None, help="folder for the profile store, predictor and search (default: temporary)")
    ap.add_argument("--budget-s", type=budget_seconds, default=600.0,
                    help="stop starting new steps after this long (1 to 86400; default 600)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write every result to FILE as JSON lines")
    args = ap.parse_args(argv)
    if args.json and unwritable(args.json):  # before the CUDA check: found now, not after the whole run
        return _fail(f"--json {args.json[:120]!r} {unwritable(args.json)}; give a file in a writable folder")
    start = time.perf_counter()
    deadline = start + args.budget_s
    import torch

    from lpm_zoo.backends.device import parse_device
    from lpm_zoo.device import cuda_missing
    from lpm_zoo.errors import LpmError

    try:
        kind, index = parse_device(args.device)
    except LpmError as e:
        return _fail(str(e))
    why = "--device must be a CUDA device" if kind != "cuda" else cuda_missing(index)
    if why:
        return _fail(f"{why}; run this on a machine with a usable CUDA GPU")
    device = f"cuda:{index}"
    records: list[dict[str, Any]] = []

    info = machine(device)
    records.append({"machine": info})
    print("== lpm-zoo GPU acceptance ==")
    for key, value in info.items():
        print(f"{key}: {value}")

    from lpm_zoo.backends.onnx_builder import build_onnx
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.published import DARTS_V2

    prof = get_profile(PROFILE)
    model, x = prof.build(DARTS_V2, seed=0), prof.example_input(seed=0)
    with torch.inference_mode():
        want = model(x).double().numpy()  # CPU torch, the reference every runtime is checked against
    onnx_model = build_onnx(prof.genotype(DARTS_V2), prof.setting, batch=prof.batch, resolution=prof.resolution,
                            state_dict=model.state_dict())
    print(f"\n== DARTS_V2 on {PROFILE}: median of {TIMED_RUNS} runs, CUDA events (paper's Table 2: {PAPER_MS} ms for "
          f"DARTS (2nd) on a P100) ==")
    print(HEADER)
    rows = [
        time_runtime("torch", "torch", model, x, want, device),
        time_runtime("torch+cudagraph", "torch", prof.build(DARTS_V2, seed=0), x, want, device, cuda_graph=True),
        time_runtime("ort-cuda", "ort", onnx_model, x, want, device),
        time_runtime("trt", "trt", onnx_model, x, want, device),
    ]
    trt_row = rows[-1]
    if trt_row.median_ms is not None and time.perf_counter() < deadline - 60:
        try:
            trt_row.note = f"{trt_row.note}; {trt_cache_build_times(onnx_model, x, device)}".strip("; ")
        except Exception as e:  # noqa: BLE001 - reported in the row, the run goes on
            trt_row.note += f"; timing cache check failed: {(str(e) or type(e).__name__).splitlines()[0][:160]}"
    for row in rows:
        print(format_row(row))
        records.append({"runtime": row})
    failed = sum(verdict(r) != "ok" for r in rows)

    print("\n== TensorRT: 16 cells profiled, rechecked, a predictor fitted, a 1-epoch search ==")
    if trt_row.median_ms is None:
        print(f"not run: {trt_row.note}")
        failed += 1
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out) if args.out else Path(tmp)
            for step, ok, what in trt_pipeline(device, out, deadline):
                print(f"{step:<18} {'ok' if ok else 'FAIL':<5} {what}")
                records.append({"step": step, "ok": ok, "output": what})
                failed += not ok
    print("\n== The search step per precision (20 steps, C=16, 8 cells, batch 32, 32x32) ==")
    from lpm_zoo.search.precision import cuda_has_bf16  # lpm search's own bar for bf16

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        for label, ok, what in precision_steps(device, out, deadline, cuda_has_bf16(device)):
            print(f"{label:<22} {'ok' if ok else 'FAIL':<5} {what}")
            records.append({"precision": label, "ok": ok, "output": what})
            failed += not ok
    total = time.perf_counter() - start
    print(f"\n== {'all checks passed' if not failed else f'{failed} check(s) failed or not run'} in {total:.0f} s ==")
    if args.json:
        Path(args.json).write_text("".join(json_line(r) + "\n" for r in records))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
