"""Profiler benchmarks for BENCHMARKS.md: repeatability of re-measuring, and throughput with overhead share.

    python -m benchmarks.backend_timing repeat --backend ort --samples 20
    python -m benchmarks.backend_timing throughput --backend ort --samples 20
    python -m benchmarks.backend_timing onnx --samples 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.backends.profiling import run_profile
from lpm_zoo.backends.protocol import STATISTICS, Protocol, statistic_of
from lpm_zoo.store import MeasurementStore


def _rows(db: Path, backend: str, profile: str) -> dict[str, dict]:
    with MeasurementStore(db) as s:
        return {r["cell_key"]: r for r in s.measurements(backend=backend, profile=profile)}


def _rel(a: list[float], b: list[float]) -> dict:
    rel = np.abs(np.array(a) - np.array(b)) / ((np.array(a) + np.array(b)) / 2) * 100
    return {"median_pct": round(float(np.median(rel)), 2), "p90_pct": round(float(np.percentile(rel, 90)), 2)}


def repeatability(backend: str, samples: int, profile: str = "cifar-b1", seed: int = 0,
                  protocol: Protocol | None = None) -> dict:
    """Measure the same `samples` architectures in two separate passes (fresh sessions, as two profiler runs
    would); per statistic, median and p90 over architectures of |a-b|/mean(a,b), raw and drift-corrected."""
    from lpm_zoo.backends.profiling import Measurer, normalize
    from lpm_zoo.encoding import arrays_to_cell
    from lpm_zoo.sampler import sample_unique_arrays

    protocol = protocol or Protocol()
    ops, inputs, _ = sample_unique_arrays(samples, seed)
    cells = [arrays_to_cell(o, i) for o, i in zip(ops, inputs)]
    passes, baseline = [], None
    for _ in range(2):
        m = Measurer(backend, "cpu", profile, protocol, seed=seed)
        ms = []
        for k in range(0, len(cells), protocol.interleave):
            group = m.measure(cells[k:k + protocol.interleave])
            baseline = normalize(group, baseline)
            ms += group
        m.close()
        passes.append(ms)
    a, b = passes
    out = {}
    for stat in STATISTICS:
        if stat == "ref_ratio" and not protocol.reference:
            continue
        out[stat] = _rel([m.latency_ms for m in a], [m.latency_ms for m in b]) if stat == "ref_ratio" else _rel(
            [statistic_of(m.runs_ms, protocol.rounds, stat) for m in a],
            [statistic_of(m.runs_ms, protocol.rounds, stat) for m in b])
    out["naive_median_of_20"] = _rel([float(np.median(m.runs_ms[:20])) for m in a],
                                     [float(np.median(m.runs_ms[:20])) for m in b])
    drift = [m2.protocol["raw_latency_ms"] / m1.protocol["raw_latency_ms"] for m1, m2 in zip(a, b)]
    return {"backend": backend, "profile": profile, "samples": samples, "protocol": protocol.to_dict(),
            "median_raw_ratio_b_over_a": round(float(np.median(drift)), 4), "repeatability": out}


def throughput(backend: str, samples: int, profile: str = "cifar-b1", seed: int = 0,
               protocol: Protocol | None = None) -> dict:
    """Architectures per hour end to end, and the share of time not spent timing (build, export, session)."""
    protocol = protocol or Protocol()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "t.db"
        t0 = time.perf_counter()
        run_profile(backend, "cpu", profile, samples, str(db), seed=seed, protocol=protocol, progress=False,
                    log=lambda s: None)
        wall = time.perf_counter() - t0
        rows = list(_rows(db, backend, profile).values())
    prep = np.array([r["protocol"]["prepare_s"] for r in rows])
    timing = np.array([r["protocol"]["timing_s"] for r in rows])
    return {"backend": backend, "profile": profile, "samples": samples, "wall_s": round(wall, 1),
            "archs_per_hour": round(samples / wall * 3600),
            "prepare_s_median": round(float(np.median(prep)), 3), "timing_s_median": round(float(np.median(timing)), 3),
            "prepare_share_pct": round(float(prep.sum() / timing.sum() * 100), 1),
            "overhead_share_pct": round(float((wall - timing.sum()) / timing.sum() * 100), 1),
            "median_latency_ms": round(float(np.median([r["latency_ms"] for r in rows])), 3)}


def onnx_build(samples: int, profile: str = "cifar-b1", seed: int = 0) -> dict:
    """Seconds per architecture: direct ONNX build (random weights / a module's weights) vs torch.onnx.export."""
    import io

    import torch

    from lpm_zoo.backends.onnx_builder import build_onnx
    from lpm_zoo.encoding import arrays_to_cell
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.sampler import sample_unique_arrays

    torch.set_num_threads(1)
    prof = get_profile(profile)
    ops, inputs, _ = sample_unique_arrays(samples, seed)
    t: dict[str, list[float]] = {}

    def timed(what: str, fn: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        t.setdefault(what + "_wall", []).append(time.perf_counter() - w0)
        t.setdefault(what + "_cpu", []).append(time.process_time() - c0)
        return out

    example = prof.example_input(seed)
    for o, i in zip(ops, inputs):
        g = prof.genotype(arrays_to_cell(o, i))
        timed("build_onnx_random_weights", lambda g=g: build_onnx(
            g, prof.setting, batch=prof.batch, resolution=prof.resolution, seed=seed).SerializeToString())
        model = timed("torch_build_module", lambda g=g: prof.build(g, seed=seed))
        timed("build_onnx_from_module", lambda g=g, model=model: build_onnx(
            g, prof.setting, batch=prof.batch, resolution=prof.resolution,
            state_dict=model.state_dict()).SerializeToString())

        def export(model=model) -> None:
            with torch.no_grad():
                torch.onnx.export(model, (example,), io.BytesIO(), dynamo=False)

        timed("torch_onnx_export", export)
    med = {k: round(float(np.median(v)), 4) for k, v in t.items()}
    med["speedup_vs_export_cpu"] = round(med["torch_onnx_export_cpu"] / med["build_onnx_random_weights_cpu"], 1)
    return {"profile": profile, "samples": samples, "median_s": med}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("what", choices=["repeat", "throughput", "onnx"])
    p.add_argument("--backend", default="ort")
    p.add_argument("--profile", default="cifar-b1")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--clock", default="auto")
    p.add_argument("--interleave", type=int, default=4)
    p.add_argument("--statistic", default="ref_ratio")
    p.add_argument("--no-reference", action="store_true")
    a = p.parse_args()
    proto = Protocol(rounds=a.rounds, reps=a.reps, clock=a.clock, interleave=a.interleave, statistic=a.statistic,
                     reference=not a.no_reference)
    if a.what == "onnx":
        print(json.dumps(onnx_build(a.samples, a.profile, a.seed), indent=1))
        return
    fn = repeatability if a.what == "repeat" else throughput
    print(json.dumps(fn(a.backend, a.samples, a.profile, a.seed, proto), indent=1))


if __name__ == "__main__":
    main()
