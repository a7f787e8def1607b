"""The pilot of a new store: measure a few cells twice and keep the statistic (raw or a ratio to the reference
cell) that repeats best on this machine; every later profiler of the store uses the same one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

from lpm_zoo.backends.device import (
    device_name,
)
from lpm_zoo.backends.profiling.drive import groups, store_group
from lpm_zoo.backends.profiling.measurer import Measurer, baseline_of
from lpm_zoo.backends.protocol import AUTO, Protocol
from lpm_zoo.errors import LpmError
from lpm_zoo.space import Cell
from lpm_zoo.statistics import STATISTICS, check_statistic, compare_statistics, is_ratio
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    Target,
    json_safe,
    statistic_key,
)

DEFAULT_STATISTIC = "ref_ratio"  # a store too small for a pilot, or profiled on a Ray cluster
PILOT = 16  # architectures the pilot measures twice
MIN_PILOT = 4  # fewer to measure than this: no pilot, the default statistic


def choose_statistic(store: MeasurementStore, backend: str, device: str, profile: str, protocol: Protocol,
                     name: str | None, seed: int, todo: list[Cell], db: str,
                     log: Callable[[str], None]) -> Protocol:
    """`protocol` with the statistic this store keeps for backend/device/profile, for the store's whole life.

    The statistic recorded in the store wins (asking for another is an error: `lpm data restat`
    converts a store); a store without one takes that of its existing rows, else the one asked
    for. With `auto` on a new store, a pilot measures up to PILOT architectures twice, ranks the
    statistics by how well the two passes agree (`lpm_zoo.statistics.compare_statistics`): the
    ratio ones when the reference is timed (they cancel drift over hours, which two passes a
    minute apart cannot show), the absolute ones otherwise; it keeps the best and records the
    choice and the pilot's figures in the store; the pilot's first pass is stored as ordinary
    measurements, group by group as it is timed (so an interrupted pilot keeps them; its
    statistic is chosen by the next run, which converts them).
    """
    dev_name = device_name(device, name)
    where = f"{backend}/{dev_name}/{profile}"
    key = statistic_key(Target(backend, dev_name, profile))
    recorded = store.meta(key)
    if recorded is None:
        first = next(iter(store.measurements(backend, dev_name, profile)), None)
        if first is not None and first["protocol"].get("statistic") in STATISTICS and not first["protocol"].get("pilot"):
            recorded = store.set_meta_once(key, first["protocol"]["statistic"])
    if recorded is not None:
        check_statistic(recorded)
        if protocol.statistic not in (AUTO, recorded):
            raise LpmError(f"{db} keeps {where} as {recorded}; profile it with --statistic {recorded} (or auto), or "
                           f"re-express the store first: lpm data restat --db {db} --statistic {protocol.statistic}")
        return replace(protocol, statistic=recorded)
    if protocol.statistic != AUTO:
        return replace(protocol, statistic=_keep(store, backend, dev_name, profile, protocol.statistic))
    default = DEFAULT_STATISTIC if protocol.reference else "min_round_median"
    cells = todo[:PILOT]
    if len(cells) < MIN_PILOT:
        log(f"pilot: fewer than {MIN_PILOT} architectures to measure; {where} keeps the default statistic {default}")
        return replace(protocol, statistic=_keep(store, backend, dev_name, profile, default))
    return _pilot(store, backend, device, profile, protocol, name, seed, cells, key, default, log)


def _keep(store: MeasurementStore, backend: str, dev_name: str, profile: str, statistic: str) -> str:
    """Record `statistic` as the store's (unless another writer recorded one first) and express every row in it.

    The rows to convert are an interrupted pilot's first pass, stored before its statistic was chosen.
    """
    chosen = store.set_meta_once(statistic_key(Target(backend, dev_name, profile)), statistic)
    if any(r["protocol"].get("statistic") != chosen for r in store.measurements(backend, dev_name, profile)):
        store.restat(chosen, Target(backend, dev_name, profile))
    return chosen


def _pilot(store: MeasurementStore, backend: str, device: str, profile: str, protocol: Protocol, name: str | None,
           seed: int, cells: list[Cell], key: str, default: str, log: Callable[[str], None]) -> Protocol:
    trial = replace(protocol, statistic=default, target_pct=None)  # fixed rounds: every statistic gets the same runs
    log(f"pilot: measuring {len(cells)} architectures twice to choose the most repeatable statistic on this machine")
    measurer = Measurer(backend, device, profile, trial, name, seed)
    dev_name = measurer.device_name
    passes: list[list[Measurement]] = [[], []]
    try:
        baseline = baseline_of(store, backend, dev_name, profile)
        for g in groups(cells, trial.interleave):  # the first pass is a real measurement: committed as it is timed
            ms = measurer.measure(g)
            for m in ms:
                m.protocol["pilot"] = True  # stored before the statistic is chosen: the next run knows to choose it
            baseline, _ = store_group(store, ms, baseline, 0)
            passes[0] += ms
        for g in groups(cells, trial.interleave):
            passes[1] += measurer.measure(g)
    except KeyboardInterrupt:
        log(f"interrupted during the pilot: {len(passes[0])} architectures of its first pass are stored in "
            f"{store.path}; run the same command again to resume")
        raise
    finally:
        measurer.close()
    raw = [[{"runs_ms": m.runs_ms, "rounds": m.protocol["rounds"],
             "reference_runs_ms": m.protocol.get("reference_runs_ms")} for m in p] for p in passes]
    # With the reference timed, only ratio statistics compete: two passes a minute apart cannot show the
    # drift over hours that a ratio cancels and an absolute statistic keeps (BENCHMARKS.md, "Measurement").
    ranked = compare_statistics(list(zip(*raw)), [s for s in STATISTICS if is_ratio(s) == protocol.reference])
    best = ranked[0]["statistic"] if ranked else default
    store.set_meta_once(f"pilot/{key.split('/', 1)[1]}", json.dumps(json_safe(
        {"architectures": len(cells), "rounds": trial.rounds, "reps": trial.reps, "at": time.time(),
         "ranking": ranked}), allow_nan=False))
    chosen = _keep(store, backend, dev_name, profile, best)  # another profiler's pilot may have won: its choice
    default_row = next((r for r in ranked if r["statistic"] == default), None)
    log(f"pilot: {chosen} repeats best here ({ranked[0]['mean_pct']:.2f}% mean |a-b|/mean over {len(cells)} pairs"
        + (f"; {default} {default_row['mean_pct']:.2f}%" if default_row and best != default else "") + ")")
    return replace(protocol, statistic=chosen)
