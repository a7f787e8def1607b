"""What a store holds and gives back: one `Measurement`, and a `LatencyDataset` (unique architectures with
their latency) built from the rows of one target."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpm_zoo.profiles import get_profile
from lpm_zoo.space import Genotype
from lpm_zoo.statistics import repeatability


@dataclass
class Measurement:
    """One timed architecture: the genotype, where and how it was timed, and the times."""

    genotype: Genotype
    backend: str
    device: str
    profile: str
    latency_ms: float
    spread_ms: float
    runs_ms: list[float]
    protocol: dict[str, Any]
    timestamp: float = field(default_factory=time.time)


@dataclass
class LatencyDataset:
    """Unique architectures of one backend/device/profile with their latency (median over repeats)."""

    ops: np.ndarray
    inputs: np.ndarray
    keys: list[str]
    latency_ms: np.ndarray
    spread_ms: np.ndarray
    backend: str
    device: str
    profile: str
    repeatability: dict[str, Any] | None = None  # MeasurementStore.repeatability: the data's noise floor
    skipped: dict[int, str] = field(default_factory=dict)  # ids of the store's bad rows left out, with why
    statistic: str | None = None  # the statistic the latencies are (e.g. p10_ratio); "mixed: a, b" if several
    hardware: dict[str, Any] | None = None  # lpm_zoo.hardware fingerprint of the machine that measured them
    measured: np.ndarray | None = None  # (N,) how many measurements each latency is the median of
    runtime: dict[str, Any] | None = None  # the runtime settings every row agrees on (protocol.runtime)
    runtime_mixed: list[str] = field(default_factory=list)  # the runtime fields the rows disagree on
    stated: int = 0  # rows measured under a stated host identity (LPM_HOST_IDENTITY: tests only)

    def repeated(self, index: np.ndarray) -> int:
        """How many of the architectures at `index` have a label that is the median of two or more measurements."""
        return 0 if self.measured is None else int(np.sum(self.measured[index] >= 2))

    def held_out_note(self, index: np.ndarray) -> str:
        """`repeated` of a held-out set, as a sentence for reports."""
        n, twice = len(index), self.repeated(index)
        return (f"{twice} of {n} labels are the median of two or more measurements (lpm recheck --held-out {n})"
                if twice else f"labels measured once each (lpm recheck --held-out {n} measures them again)")

    def __len__(self) -> int:
        return len(self.keys)

    def genotypes(self) -> list[Genotype]:
        """The measured genotypes (normal cells with the profile's reduction cell)."""

        prof = get_profile(self.profile)
        return [prof.from_arrays(o, i) for o, i in zip(self.ops, self.inputs)]


def hardware_of(protocol: dict[str, Any]) -> dict[str, Any] | None:
    """A row's hardware fingerprint; rows written before fingerprints have the CPU or GPU model string only."""
    hw = protocol.get("hardware")
    if isinstance(hw, dict) and isinstance(hw.get("model"), str):
        return hw
    model = protocol.get("device_model") or protocol.get("cpu_model")
    if not isinstance(model, str):
        return None
    kind = "cuda" if str(protocol.get("device", "cpu")).startswith("cuda") else "cpu"
    return {"kind": kind, "model": model[:200]}


def one_statistic(stats: set[str]) -> str | None:
    """The statistic of a set of rows: the one they share, "mixed: a, b" when several, None when no rows."""
    if not stats:
        return None
    return next(iter(stats)) if len(stats) == 1 else f"mixed: {', '.join(sorted(stats))}"


class RuntimeTally:
    """The runtime settings (a row's protocol.runtime: versions, threads, precision...) of a set of rows: which
    fields they all agree on, and which differ (a store that mixes settings, e.g. two runtime versions)."""

    def __init__(self) -> None:
        self.values: dict[str, set[str]] = {}
        self.rows = 0

    def add(self, protocol: dict[str, Any]) -> None:
        """Count one row's runtime settings (a row without them counts as disagreeing on every field)."""
        runtime = protocol.get("runtime")
        runtime = runtime if isinstance(runtime, dict) else {}
        for k in set(self.values) | set(runtime):
            self.values.setdefault(k, set() if self.rows == 0 else {"null"}).add(
                json.dumps(runtime.get(k), sort_keys=True))
        self.rows += 1

    def agreed(self) -> dict[str, Any] | None:
        """The fields every row has with one value; None when no row had any."""
        out = {k: json.loads(next(iter(v))) for k, v in sorted(self.values.items()) if len(v) == 1}
        return out or None

    def mixed(self) -> list[str]:
        """The fields on which the rows differ."""
        return sorted(k for k, v in self.values.items() if len(v) > 1)


def repeatability_of(latencies: Iterable[list[float]]) -> dict[str, Any] | None:
    """`MeasurementStore.repeatability` from each architecture's latencies in measurement order."""
    pairs = [v[:2] for v in latencies if len(v) >= 2]
    return repeatability([p[0] for p in pairs], [p[1] for p in pairs])
