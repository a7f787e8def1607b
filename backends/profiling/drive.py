"""The loop every profiler shares: measure groups of cells (here, in worker processes or on Ray) and commit
each group to the store as it is timed, with progress, an ETA and Ctrl-C that keeps what was stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from lpm_zoo.backends.device import (
    check_same_machine,
    check_same_options,
)
from lpm_zoo.backends.profiling.measurer import adopt_baseline, baseline_of, normalize
from lpm_zoo.space import Cell
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    Target,
    skipped_note,
)


def groups(cells: list[Cell], size: int) -> Iterable[list[Cell]]:
    for k in range(0, len(cells), size):
        yield cells[k:k + size]


def drive(store: MeasurementStore, todo: list[Cell], group: int,
           measure_all: Callable[[list[list[Cell]]], Iterable[list[Measurement]]], backend: str, dev_name: str,
           profile: str, db: str, samples: int, progress: bool, log: Callable[[str], None],
           stopped: Callable[[], str] | None = None, repeat: int = 0) -> int:
    """Measure `todo` in groups, committing each group as it arrives, with a progress bar; Ctrl-C stops cleanly.

    Each is stored as its architecture's `repeat`-th measurement (0: first, 1: recheck) unless
    another run stored that one meanwhile, so concurrent runs on one store never duplicate a row;
    returns how many were stored. `stopped` says where things stand after a Ctrl-C (default:
    unique architectures against `samples`).
    """
    from tqdm import tqdm

    where = f"{backend}/{dev_name}/{profile}"
    if not todo:
        log(f"{db} already holds {store.count(Target(backend, dev_name, profile))} unique architectures for {where}")
        return 0
    done = 0
    known_bad = len(store.skipped)
    baseline = baseline_of(store, backend, dev_name, profile)  # checked before any timing
    if len(store.skipped) > known_bad:
        log(f"warning: {skipped_note(store.skipped)}")
    bar = tqdm(total=len(todo), desc=where, unit="arch", disable=not progress, dynamic_ncols=True)
    try:
        for ms in measure_all(list(groups(todo, group))):
            baseline, stored = store_group(store, ms, baseline, repeat)
            done += stored
            bar.update(len(ms))
            bar.set_postfix_str(f"last {ms[-1].latency_ms:.2f} ms")
    except KeyboardInterrupt:
        bar.close()
        state = stopped() if stopped else (
            f"{db} holds {store.count(Target(backend, dev_name, profile))}/{samples} unique architectures for {where}")
        log(f"interrupted: {state}; run the same command again to resume")
        raise
    bar.close()
    return done


def store_group(store: MeasurementStore, ms: list[Measurement], baseline: float | None,
                 repeat: int | None) -> tuple[float | None, int]:
    """Store one timed group in the store's baseline (the first group sets it); (baseline, rows stored)."""
    if baseline is None and ms:  # the first group of the store: its reference time, unless another run's is there
        first = next((m.protocol["reference_ms"] for m in ms if "ratio" in m.protocol), None)
        if first is not None:
            m0 = ms[0]
            baseline = adopt_baseline(store, m0.backend, m0.device, m0.profile, first)
    normalize(ms, baseline)
    if ms and "hardware" in ms[0].protocol:  # which machine the store's data of this triple comes from
        m0 = ms[0]
        seen = {json.dumps([m.backend, m.device, m.profile, m.protocol["hardware"]], sort_keys=True): m for m in ms}
        for m in seen.values():  # the last guard (Ray workers measure elsewhere): never a row of another machine
            check_same_machine(store, m.backend, m.device, m.profile, m.protocol["hardware"], str(store.path))
            check_same_options(store, m.backend, m.device, m.profile, m.protocol.get("backend_options") or {},
                               str(store.path))
        store.set_meta_once(f"hardware/{m0.backend}/{m0.device}/{m0.profile}",
                            json.dumps(m0.protocol["hardware"], sort_keys=True))
    return baseline, store.add_many(ms, repeat=repeat)  # one transaction: durable once this returns


# --- the statistic a store keeps -----------------------------------------------------------
