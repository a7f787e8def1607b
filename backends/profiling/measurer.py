"""Timing one architecture: the network a profile builds for a cell, exported for its backend, measured with
the protocol (`Measurer`), and latencies normalised by the store's baseline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lpm_zoo.backends.base import Backend
from lpm_zoo.backends.device import (
    cpu_model,
    device_fingerprint,
    device_model,
    device_name,
    parse_device,
)
from lpm_zoo.backends.onnx_builder import build_onnx
from lpm_zoo.backends.protocol import Protocol, spread_of, statistic_of, time_interleaved
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.profiles import Profile, get_profile
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import Cell, Genotype
from lpm_zoo.statistics import is_ratio
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    Target,
    baseline_key,
    checked_baseline,
)


def model_for(backend: Backend, profile: Profile, cell: Cell | Genotype, seed: int = 0) -> Any:
    """The profile's network for `cell` in the form the backend wants: an nn.Module or an ONNX graph."""
    if backend.model_format == "onnx":
        return build_onnx(profile.genotype(cell), profile.setting, batch=profile.batch,
                          resolution=profile.resolution, seed=seed)
    return profile.build(cell, seed=seed)


class Measurer:
    """Times architectures of one profile on one backend/device with one protocol; knows the device's name."""

    def __init__(self, backend: str, device: str, profile: str, protocol: Protocol | None = None,
                 name: str | None = None, seed: int = 0):
        self.backend = get_backend(backend)
        self.device = device
        self.backend.check(device)
        self.profile = get_profile(profile)
        self.protocol = protocol or Protocol()
        self.options = dict(self.protocol.backend_options)
        self.backend.check_options(self.options, device)
        self.seed = seed
        self._ref = None
        self._runtime: dict[str, Any] | None = None
        self.device_name = device_name(device, name)
        kind, _ = parse_device(device)
        self._static = {
            **self.protocol.to_dict(),
            "backend": self.backend.name,
            "device": device,
            "device_name": self.device_name,
            "device_model": device_model(device),
            "cpu_model": cpu_model(),
            "hardware": device_fingerprint(device),
            "profile": self.profile.name,
            "input_shape": list(self.profile.input_shape),
            "weights_seed": seed,
        }
        if kind == "cuda":
            self._static["threads"] = None  # host threads do not shape a CUDA timing
            self._static["clock"] = "cuda_events"

    def _reference(self) -> Any:
        """The reference network (the profile with DARTS_V2's normal cell), prepared once and kept."""
        if self._ref is None:
            model = model_for(self.backend, self.profile, DARTS_V2, self.seed)
            self._ref = self.backend.prepare(model, self.profile.example_input(self.seed), self.device,
                                             threads=self.protocol.threads, **self.options)
        return self._ref

    def measure(self, cells: Sequence[Cell | Genotype]) -> list[Measurement]:
        """Prepare each cell's network, time them in turns (with the reference), one Measurement each.

        With `ref_ratio`, `latency_ms` is in the units of this group's reference time; the
        profiler re-expresses it in the store's baseline (`normalize`) before storing.
        """
        prepared, prep_s = [], []
        example = self.profile.example_input(self.seed)
        proto = self.protocol
        try:
            for cell in cells:
                t0 = time.perf_counter()
                model = model_for(self.backend, self.profile, cell, self.seed)
                prepared.append(self.backend.prepare(model, example, self.device, threads=proto.threads, **self.options))
                prep_s.append(time.perf_counter() - t0)
            if self._runtime is None:  # versions and providers: the same for every group
                self._runtime = self.backend.runtime_info(self.device)
            runtime = self._runtime
            group = ([self._reference()] if proto.reference else []) + prepared
            t0 = time.perf_counter()
            runs = time_interleaved(self.backend, group, proto)
            timing_s = (time.perf_counter() - t0) / max(1, len(cells))
        finally:
            for p in prepared:
                p.close()
        all_ref = runs.pop(0) if proto.reference else None
        ref_ms = statistic_of(all_ref, len(all_ref) // proto.reps, "min_round_median") if all_ref else None
        out = []
        for cell, p, r, ps in zip(cells, prepared, runs, prep_s):
            used = len(r) // proto.reps  # rounds this model took (fewer than proto.rounds when adaptive)
            ref_runs = all_ref[: len(r)] if all_ref is not None else None  # the reference in the same rounds
            raw = statistic_of(r, used, "min_round_median")
            rec = {**self._static, "rounds": used, "runtime": {**runtime, **p.info}, "prepare_s": round(ps, 4),
                   "timing_s": round(timing_s, 4), "raw_latency_ms": raw}
            if p.network:
                rec["network"] = p.network
            if ref_runs is not None:
                rec.update(reference="DARTS_V2", reference_ms=ref_ms,
                           reference_runs_ms=[round(t, 6) for t in ref_runs])
            if is_ratio(proto.statistic):
                rec["ratio"] = statistic_of(r, used, proto.statistic, ref_runs)
                latency = rec["ratio"] * ref_ms  # rescaled to the store's baseline by `normalize`
            else:
                latency = statistic_of(r, used, proto.statistic)
            out.append(Measurement(
                genotype=self.profile.genotype(cell), backend=self.backend.name, device=self.device_name,
                profile=self.profile.name, latency_ms=latency, spread_ms=spread_of(r), runs_ms=r, protocol=rec,
            ))
        return out

    def close(self) -> None:
        if self._ref is not None:
            self._ref.close()
            self._ref = None


def baseline_of(store: MeasurementStore, backend: str, dev_name: str, profile: str) -> float | None:
    """The reference latency the store's measurements for backend/device/profile are scaled to (None if none yet)."""
    return store.baseline(Target(backend, dev_name, profile))


def adopt_baseline(store: MeasurementStore, backend: str, dev_name: str, profile: str, candidate: float) -> float:
    """Make `candidate` the store's baseline unless another writer set one first; returns the one in force."""
    where = f"{backend}/{dev_name}/{profile}"
    checked_baseline(candidate, f"this run's first group ({where})")
    stored = store.set_meta_once(baseline_key(Target(backend, dev_name, profile)), repr(float(candidate)))
    return checked_baseline(stored, f"{store.path} {where}")


def normalize(ms: list[Measurement], baseline_ms: float | None) -> float | None:
    """Express `ref_ratio` latencies in the store's milliseconds: ratio x baseline; returns the baseline.

    The first group of a store fixes the baseline (its reference time); every later group,
    run under whatever load, is expressed in it, so a slow spell that slows the reference and
    the group alike cancels out. The raw statistic stays in protocol.raw_latency_ms.
    """
    for m in ms:
        if "ratio" not in m.protocol:
            continue
        if baseline_ms is None:
            baseline_ms = float(m.protocol["reference_ms"])
        scale = baseline_ms / float(m.protocol["reference_ms"])
        m.protocol["reference_baseline_ms"] = baseline_ms
        m.latency_ms = m.protocol["ratio"] * baseline_ms
        m.spread_ms = spread_of(m.runs_ms) * scale
    return baseline_ms
