"""`lpm recheck`'s work: measure stored architectures again, with the protocol each was recorded with, to
find the store's repeatability (or the held-out cells `lpm fit` scores on)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields as dataclass_fields
from typing import Any

from lpm_zoo.backends.device import (
    check_same_machine,
    device_fingerprint,
    store_device_name,
)
from lpm_zoo.backends.profiling.drive import drive
from lpm_zoo.backends.profiling.measurer import Measurer, baseline_of
from lpm_zoo.backends.protocol import Protocol
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.evaluation.metrics import split_indices
from lpm_zoo.profiles import get_profile
from lpm_zoo.space import Cell, Genotype
from lpm_zoo.store import (
    Measurement,
    MeasurementStore,
    Target,
    skipped_note,
)
from lpm_zoo.store.analysis import repeatability

MAX_RECHECK_RUNS = 100_000  # the most timed runs (rounds x reps) a recorded protocol may ask of a recheck


def recorded_protocol(rec: dict[str, Any]) -> tuple[Protocol, int]:
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
    count = store.counts(Target(backend, dev_name, profile))  # every row: a bad one still holds its place
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

    keys = store.dataset(Target(backend, dev_name, profile)).keys
    if not keys:
        raise LpmError(f"the store holds no usable {backend}/{dev_name}/{profile} measurements to recheck")
    if not 1 <= test_size < len(keys):
        raise LpmError(f"--held-out must be from 1 to {len(keys) - 1} (the store holds {len(keys)} architectures "
                       f"of {backend}/{dev_name}/{profile}), got {clip(test_size)}")
    return [keys[i] for i in split_indices(len(keys), test_size, split_seed)[1]]


def run_recheck(backend: str, device: str, profile: str, samples: int, db: str, *, seed: int = 0,
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
                by_protocol.setdefault(recorded_protocol(rec), []).append(rec)
            except (LpmError, TypeError, ValueError) as e:  # not run: a stored protocol is data, not a command
                store.skipped[rec["id"]] = f"its recorded protocol is not run ({str(e)[:120]})"
        if store.skipped:
            log(f"warning: {skipped_note(store.skipped)}")
        done = 0

        def stopped() -> str:
            rep = repeatability(store, Target(backend, dev_name, profile))
            return f"{db} holds {rep['n'] if rep else 0}/{samples} architectures measured twice"

        for (proto, wseed), recs in by_protocol.items():
            measurer = Measurer(backend, device, profile, proto, name, wseed)
            cells = [Genotype.from_dict(r["genotype"]) for r in recs]  # the profile measures what it encodes

            def local(groups: list[list[Cell]], m: Measurer = measurer) -> Iterable[list[Measurement]]:
                for g in groups:
                    yield m.measure(g)

            try:
                done += drive(store, cells, proto.interleave, local, backend, dev_name, profile, db, samples,
                               progress, log, stopped, repeat=again)
            finally:
                measurer.close()
        if not todo:
            log(f"{db} already holds {twice} architectures measured {again + 1} times for "
                f"{backend}/{dev_name}/{profile}")
        return done
