"""How repeatable a store's data is: the first and a later measurement of each architecture compared,
for the kept latency and for every statistic recomputed from the raw runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from lpm_zoo import statistics
from lpm_zoo.statistics import compare_statistics
from lpm_zoo.store.database import MeasurementStore
from lpm_zoo.store.records import repeatability_of
from lpm_zoo.store.target import Target


def repeatability(store: MeasurementStore, target: Target) -> dict[str, Any] | None:
    """How far two measurements of one architecture fall apart: the noise floor a predictor is judged against.

    Over the architectures measured at least twice (`lpm recheck` adds the repeats), the
    relative difference of the first two, |a - b| / mean(a, b), in %: its mean (comparable
    with a predictor's mean relative error: predicting one measurement by the other), median,
    90th percentile and share within 10%, and the Kendall tau between the two measurements (the
    ceiling of a predictor's tau on this data). None when no architecture was measured twice.
    """
    backend, device, profile = target
    by_key: dict[str, list[float]] = {}
    for r in store.measurements(backend, device, profile):
        by_key.setdefault(r["cell_key"], []).append(float(r["latency_ms"]))
    return repeatability_of(by_key.values())

def pairs(store: MeasurementStore, target: Target, later: int = 1) -> list[tuple[dict, dict]]:
    """(first, later-th) good measurements of architectures measured more than `later` times (raw runs too)."""
    backend, device, profile = target
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in store.measurements(backend, device, profile):
        by_key.setdefault(r["cell_key"], []).append(r)
    return [(v[0], v[later]) for v in by_key.values() if len(v) > later]

def pass_report(store: MeasurementStore, target: Target, later: int = 1) -> dict[str, Any] | None:
    """How the first and the `later`-th measurements agree: kept latencies, every statistic, hours apart.

    `kept` is the repeatability of the stored latencies; `by_statistic` ranks every statistic
    recomputed from the same raw runs (best first), so a store can see which one it should keep.
    """
    backend, device, profile = target

    matched = pairs(store, target, later)
    if not matched:
        return None
    gaps = [(b["timestamp"] - a["timestamp"]) / 3600 for a, b in matched]
    raw = [tuple({"runs_ms": r["runs_ms"], "rounds": r["protocol"].get("rounds", 1),
                  "reference_runs_ms": r["protocol"].get("reference_runs_ms")} for r in pair) for pair in matched]
    ranked = compare_statistics(raw)
    return {"pass": later, "n": len(matched), "hours_apart_median": float(np.median(gaps)),
            "hours_apart_min": float(np.min(gaps)),
            "statistic": matched[0][0]["protocol"].get("statistic"),
            "kept": statistics.repeatability([a["latency_ms"] for a, _ in matched], [b["latency_ms"] for _, b in matched]),
            "by_statistic": ranked, "best": ranked[0]["statistic"] if ranked else None}
