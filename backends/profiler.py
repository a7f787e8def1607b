"""The profiler: time sampled architectures of a profile on one backend/device into the measurement store.

It measures until the store holds N unique architectures for the backend/device/profile,
skipping those already there, in small groups timed in turns (`backends.protocol`). Each group
is committed as soon as it is timed, so a kill (even `kill -9`) loses at most the group in
flight, and running the same command again resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

from backends.base import Backend
from backends.device import (
    check_same_machine,
    cpu_model,
    device_fingerprint,
    device_model,
    device_name,
    parse_device,
    store_device_name,
)
from backends.protocol import AUTO, Protocol, spread_of, statistic_of, time_interleaved
from backends.registry import get_backend
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.profiles import Profile, get_profile
from lpm_zoo.space import Cell, Genotype
from lpm_zoo.statistics import STATISTICS, check_statistic, compare_statistics, is_ratio
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    baseline_key,
    checked_baseline,
    json_safe,
    skipped_note,
    statistic_key,
)


def model_for(backend: Backend, profile: Profile, cell: Cell | Genotype, seed: int = 0) -> Any:
    """The profile's network for `cell` in the form the backend wants: an nn.Module or an ONNX graph."""
    if backend.model_format == "onnx":
        from backends.onnx_builder import build_onnx

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
            from lpm_zoo.published import DARTS_V2

            model = model_for(self.backend, self.profile, DARTS_V2, self.seed)
            self._ref = self.backend.prepare(model, self.profile.example_input(self.seed), self.device,
                                             threads=self.protocol.threads)
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
                prepared.append(self.backend.prepare(model, example, self.device, threads=proto.threads))
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
    return store.baseline(backend, dev_name, profile)


def adopt_baseline(store: MeasurementStore, backend: str, dev_name: str, profile: str, candidate: float) -> float:
    """Make `candidate` the store's baseline unless another writer set one first; returns the one in force."""
    where = f"{backend}/{dev_name}/{profile}"
    checked_baseline(candidate, f"this run's first group ({where})")
    stored = store.set_meta_once(baseline_key(backend, dev_name, profile), repr(float(candidate)))
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


def plan(store: MeasurementStore, backend: str, dev_name: str, profile: str, samples: int,
         seed: int, cells: str = "random") -> list[Cell]:
    """The cells still to measure so the store holds `samples` unique ones: the seed's sequence, minus those present.

    `cells="calibration"`: the shipped calibration set's first `samples` cells, minus those present.
    """
    from lpm_zoo.sampler import sample_unique_arrays

    if samples < 1:
        raise LpmError(f"--samples must be at least 1, got {samples}")
    have = store.keys(backend, dev_name, profile)
    prof = get_profile(profile)
    if cells == "calibration":
        from lpm_zoo.calibration import calibration_cells

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


def _groups(cells: list[Cell], size: int) -> Iterable[list[Cell]]:
    for k in range(0, len(cells), size):
        yield cells[k:k + size]


def run_profile(backend: str, device: str, profile: str, samples: int, db: str, seed: int = 0,
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
    with MeasurementStore(db) as store:
        if ray_address:
            from backends.ray_runner import RayPool

            if protocol.statistic == AUTO:  # no pilot on a cluster: the store's statistic, else the default
                protocol = replace(protocol, statistic=store.meta(statistic_key(backend, device_name(device, name),
                                                                                 profile)) or DEFAULT_STATISTIC)
            pool = RayPool(ray_address, backend, device, profile, protocol, name, seed, workers, log)
            try:
                dev_name = pool.device_name
                todo = plan(store, backend, dev_name, profile, samples, seed, cells)
                return _drive(store, todo, protocol.interleave, pool.measure_all, backend, dev_name, profile,
                              db, samples, progress, log)
            finally:
                pool.shutdown()
        name = dev_name = store_device_name(store, backend, device, profile, name)
        check_same_machine(store, backend, dev_name, profile, device_fingerprint(device), db)
        todo = plan(store, backend, dev_name, profile, samples, seed, cells)
        before = store.count(backend, dev_name, profile)
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
            _drive(store, todo, protocol.interleave, local, backend, measurer.device_name, profile, db, samples,
                   progress, log)
        finally:
            measurer.close()
        return store.count(backend, dev_name, profile) - before


def _drive(store: MeasurementStore, todo: list[Cell], group: int,
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
        log(f"{db} already holds {store.count(backend, dev_name, profile)} unique architectures for {where}")
        return 0
    done = 0
    known_bad = len(store.skipped)
    baseline = baseline_of(store, backend, dev_name, profile)  # checked before any timing
    if len(store.skipped) > known_bad:
        log(f"warning: {skipped_note(store.skipped)}")
    bar = tqdm(total=len(todo), desc=where, unit="arch", disable=not progress, dynamic_ncols=True)
    try:
        for ms in measure_all(list(_groups(todo, group))):
            baseline, stored = _store_group(store, ms, baseline, repeat)
            done += stored
            bar.update(len(ms))
            bar.set_postfix_str(f"last {ms[-1].latency_ms:.2f} ms")
    except KeyboardInterrupt:
        bar.close()
        state = stopped() if stopped else (
            f"{db} holds {store.count(backend, dev_name, profile)}/{samples} unique architectures for {where}")
        log(f"interrupted: {state}; run the same command again to resume")
        raise
    bar.close()
    return done


def _store_group(store: MeasurementStore, ms: list[Measurement], baseline: float | None,
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
        store.set_meta_once(f"hardware/{m0.backend}/{m0.device}/{m0.profile}",
                            json.dumps(m0.protocol["hardware"], sort_keys=True))
    return baseline, store.add_many(ms, repeat=repeat)  # one transaction: durable once this returns


# --- the statistic a store keeps -----------------------------------------------------------
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
    key = statistic_key(backend, dev_name, profile)
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
    chosen = store.set_meta_once(statistic_key(backend, dev_name, profile), statistic)
    if any(r["protocol"].get("statistic") != chosen for r in store.measurements(backend, dev_name, profile)):
        store.restat(chosen, backend, dev_name, profile)
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
        for g in _groups(cells, trial.interleave):  # the first pass is a real measurement: committed as it is timed
            ms = measurer.measure(g)
            for m in ms:
                m.protocol["pilot"] = True  # stored before the statistic is chosen: the next run knows to choose it
            baseline, _ = _store_group(store, ms, baseline, 0)
            passes[0] += ms
        for g in _groups(cells, trial.interleave):
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




MAX_RECHECK_RUNS = 100_000  # the most timed runs (rounds x reps) a recorded protocol may ask of a recheck


def _recorded_protocol(rec: dict[str, Any]) -> tuple[Protocol, int]:
    """The protocol and weights seed a stored measurement was taken with, to take it again the same way.

    The row was validated on read (`lpm_zoo.store.validate_row`: counts within bounds); a protocol
    asking for more than MAX_RECHECK_RUNS timed runs, or one `Protocol` refuses, is an LpmError.
    """
    p = rec["protocol"]
    fields = {f.name: p[f.name] for f in dataclass_fields(Protocol) if f.name in p}
    if "max_rounds" in p:  # an adaptive measurement: `rounds` is what it used, the budget is max_rounds
        fields["rounds"] = p["max_rounds"]
    if fields.get("threads") is None:  # CUDA measurements record no host threads
        fields["threads"] = 1
    if fields.get("clock") == "cuda_events":
        fields["clock"] = "auto"
    if "reference" in fields:  # measurements record the reference network's name there
        fields["reference"] = bool(fields["reference"])
    proto = Protocol(**fields)
    if proto.rounds * proto.reps > MAX_RECHECK_RUNS:
        raise LpmError(f"it asks for {proto.rounds} x {proto.reps} timed runs, more than {MAX_RECHECK_RUNS}")
    hash(proto)  # a JSON list in a text field cannot key a group
    return proto, int(p.get("weights_seed", 0))


def recheck_plan(store: MeasurementStore, backend: str, dev_name: str, profile: str, samples: int,
                 seed: int, again: int = 1, only: list[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Stored measurements to take again so `samples` architectures hold `again` + 1 measurements; how many do.

    The architectures are taken in a seeded random order of those stored, among those measured
    exactly `again` times, so a resumed recheck continues the same sequence, and a later pass
    (`again` = 2, 3, ...) measures the same architectures again, hours or days later. `only`
    (cell keys) restricts the recheck to those architectures, in that order (`held_out_keys`).
    """
    import numpy as np

    if samples < 1:
        raise LpmError(f"--samples must be at least 1, got {samples}")
    if not 1 <= again <= 100:
        raise LpmError(f"--pass must be from 1 to 100, got {again}")
    first: dict[str, dict[str, Any]] = {}
    for rec in store.measurements(backend=backend, device=dev_name, profile=profile):  # good rows only
        first.setdefault(rec["cell_key"], rec)
    count = store.counts(backend, dev_name, profile)  # every row: a bad one still holds its place
    if not count:
        raise LpmError(f"the store holds no {backend}/{dev_name}/{profile} measurements to recheck; "
                       f"fill it first with `lpm profile --backend {backend} --profile {profile} --samples N --db ...`")
    if not first:
        raise LpmError(f"the store holds no usable {backend}/{dev_name}/{profile} measurements to recheck "
                       f"({skipped_note(store.skipped)})")
    if only is not None:
        count = {k: count[k] for k in only if k in count}
        keys = list(count)
        order = range(len(keys))
    else:
        keys = sorted(count)
        order = np.random.default_rng(seed).permutation(len(keys))
    done = sum(1 for n in count.values() if n > again)
    need = max(0, samples - done)
    todo = [keys[i] for i in order if count[keys[i]] == again and keys[i] in first]
    if again > 1 and not todo and not done:
        raise LpmError(f"no architecture of {backend}/{dev_name}/{profile} is measured {again} times yet; "
                       f"run pass {again - 1} first (lpm recheck ... --pass {again - 1})")
    return [first[k] for k in todo[:need]], done


def held_out_keys(store: MeasurementStore, backend: str, dev_name: str, profile: str, test_size: int,
                  split_seed: int = 0) -> list[str]:
    """The cell keys `lpm fit` / `lpm compare --test-size N --seed S` hold out of this store, in split order.

    Rechecking them scores predictors against the mean of two measurements (the dataset's
    median of repeats), which halves the label noise a held-out figure carries.
    """
    from lpm_zoo.predictors.evaluate import split_indices

    keys = store.dataset(backend, dev_name, profile).keys
    if not keys:
        raise LpmError(f"the store holds no usable {backend}/{dev_name}/{profile} measurements to recheck")
    if not 1 <= test_size < len(keys):
        raise LpmError(f"--held-out must be from 1 to {len(keys) - 1} (the store holds {len(keys)} architectures "
                       f"of {backend}/{dev_name}/{profile}), got {clip(test_size)}")
    return [keys[i] for i in split_indices(len(keys), test_size, split_seed)[1]]


def run_recheck(backend: str, device: str, profile: str, samples: int, db: str, seed: int = 0,
                name: str | None = None, progress: bool = True, log: Callable[[str], None] = print,
                again: int = 1, held_out: int | None = None, split_seed: int = 0) -> int:
    """Measure again, each with its recorded protocol, stored architectures until `samples` were measured twice.

    The repeats go into the store (its dataset takes the median of an architecture's
    measurements), expressed in the store's baseline like every group; the store's
    `repeatability` then reads how far two measurements of one architecture fall apart.
    `held_out` = N rechecks exactly the N architectures `lpm fit --test-size N --seed split_seed`
    holds out (`samples` is then N). Returns how many were measured now; resumable like `run_profile`.
    """
    get_profile(profile)
    with MeasurementStore(db) as store:
        name = dev_name = store_device_name(store, backend, device, profile, name)
        check_same_machine(store, backend, dev_name, profile, device_fingerprint(device), db)
        only = None
        if held_out is not None:
            only = held_out_keys(store, backend, dev_name, profile, held_out, split_seed)
            samples = held_out
        todo, twice = recheck_plan(store, backend, dev_name, profile, samples, seed, again, only)
        baseline_of(store, backend, dev_name, profile)  # a damaged baseline stops the recheck before any timing
        by_protocol: dict[tuple[Protocol, int], list[dict[str, Any]]] = {}
        for rec in todo:
            try:
                by_protocol.setdefault(_recorded_protocol(rec), []).append(rec)
            except (LpmError, TypeError, ValueError) as e:  # not run: a stored protocol is data, not a command
                store.skipped[rec["id"]] = f"its recorded protocol is not run ({str(e)[:120]})"
        if store.skipped:
            log(f"warning: {skipped_note(store.skipped)}")
        done = 0

        def stopped() -> str:
            rep = store.repeatability(backend, dev_name, profile)
            return f"{db} holds {rep['n'] if rep else 0}/{samples} architectures measured twice"

        for (proto, wseed), recs in by_protocol.items():
            measurer = Measurer(backend, device, profile, proto, name, wseed)
            cells = [Genotype.from_dict(r["genotype"]) for r in recs]  # the profile measures what it encodes

            def local(groups: list[list[Cell]], m: Measurer = measurer) -> Iterable[list[Measurement]]:
                for g in groups:
                    yield m.measure(g)

            try:
                done += _drive(store, cells, proto.interleave, local, backend, dev_name, profile, db, samples,
                               progress, log, stopped, repeat=again)
            finally:
                measurer.close()
        if not todo:
            log(f"{db} already holds {twice} architectures measured {again + 1} times for "
                f"{backend}/{dev_name}/{profile}")
        return done
