"""`lpm profile`'s work: plan which cells a store still needs and measure them here, in local worker
processes' shares, or on Ray workers, resuming where an earlier run stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from lpm_zoo.backends.device import (
    check_same_machine,
    check_same_options,
    device_fingerprint,
    device_name,
    store_device_name,
)
from lpm_zoo.backends.profiling.drive import drive
from lpm_zoo.backends.profiling.measurer import Measurer
from lpm_zoo.backends.profiling.pilot import DEFAULT_STATISTIC, choose_statistic
from lpm_zoo.backends.profiling.ray import RayPool
from lpm_zoo.backends.protocol import AUTO, Protocol
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.calibration import calibration_cells
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import get_profile
from lpm_zoo.ray_cluster import reachable
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.space import Cell
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    Target,
    statistic_key,
)


def plan(store: MeasurementStore, backend: str, dev_name: str, profile: str, samples: int,
         seed: int, cells: str = "random") -> list[Cell]:
    """The cells still to measure so the store holds `samples` unique ones: the seed's sequence, minus those present.

    `cells="calibration"`: the shipped calibration set's first `samples` cells, minus those present.
    """

    if samples < 1:
        raise LpmError(f"--samples must be at least 1, got {samples}")
    have = store.keys(Target(backend, dev_name, profile))
    prof = get_profile(profile)
    if cells == "calibration":
        keys, ops, inputs = calibration_cells(profile, samples)
        return [prof.from_arrays(o, i) for o, i, k in zip(ops, inputs, keys) if k not in have]
    if cells != "random":
        raise LpmError(f"--cells must be random or calibration, got {str(cells)[:40]!r}")
    need = samples - len(have)
    if need <= 0:
        return []
    ops, inputs, keys = sample_unique_arrays(samples, seed, cells=prof.cells)
    todo = [prof.from_arrays(o, i) for o, i, k in zip(ops, inputs, keys) if k not in have]
    if len(todo) < need:  # the store holds cells from other seeds: continue the sequence past `samples`
        ops, inputs, keys = sample_unique_arrays(need - len(todo), seed + 1_000_003, exclude=have | set(keys),
                                                 cells=prof.cells)
        todo += [prof.from_arrays(o, i) for o, i in zip(ops, inputs)]
    return todo[:need]


def run_profile(backend: str, device: str, profile: str, samples: int, db: str, *, seed: int = 0,
                protocol: Protocol | None = None, name: str | None = None, ray_address: str | None = None,
                workers: int | None = None, progress: bool = True,
                log: Callable[[str], None] = print, shard: tuple[int, int] | None = None,
                cells: str = "random") -> int:
    """Measure until `db` holds `samples` unique architectures for backend/device/profile; returns how many were added.

    `cells="calibration"` measures the calibration set's first `samples` cells instead (see `plan`).

    With `shard=(i, n)` only every n-th architecture of the plan from the i-th is measured, so n
    processes (`lpm profile --workers n`) fill one store between them without measuring one twice.
    """
    protocol = protocol or Protocol()
    get_profile(profile)
    if not ray_address:
        get_backend(backend).check(device)  # before the store is touched (a pilot would record its statistic)
    elif ray_address not in ("local", "auto"):
        reachable(ray_address)  # a cluster nobody runs: refused before the store is created
    with MeasurementStore(db) as store:
        if ray_address:
            if protocol.statistic == AUTO:  # no pilot on a cluster: the store's statistic, else the default
                protocol = replace(protocol, statistic=store.meta(statistic_key(Target(backend, device_name(device, name),
                                                                                 profile))) or DEFAULT_STATISTIC)
            pool = RayPool(ray_address, backend, device, profile, protocol, name, seed, workers, log)
            try:
                dev_name = pool.device_name
                todo = plan(store, backend, dev_name, profile, samples, seed, cells)
                return drive(store, todo, protocol.interleave, pool.measure_all, backend, dev_name, profile,
                              db, samples, progress, log)
            finally:
                pool.shutdown()
        name = dev_name = store_device_name(store, backend, device, profile, name)
        check_same_machine(store, backend, dev_name, profile, device_fingerprint(device), db)
        check_same_options(store, backend, dev_name, profile, dict(protocol.backend_options), db)
        todo = plan(store, backend, dev_name, profile, samples, seed, cells)
        before = store.count(Target(backend, dev_name, profile))
        if todo:
            protocol = choose_statistic(store, backend, device, profile, protocol, name, seed, todo, db, log)
            todo = plan(store, backend, dev_name, profile, samples, seed, cells)  # the pilot stored its first pass
        if shard is not None:
            todo = todo[shard[0]::shard[1]]
        measurer = Measurer(backend, device, profile, protocol, name, seed)

        def local(groups: list[list[Cell]]) -> Iterable[list[Measurement]]:
            for g in groups:
                yield measurer.measure(g)

        try:
            drive(store, todo, protocol.interleave, local, backend, measurer.device_name, profile, db, samples,
                   progress, log)
        finally:
            measurer.close()
        return store.count(Target(backend, dev_name, profile)) - before
