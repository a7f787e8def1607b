"""Leave-one-device-out transfer benchmark: how well `lpm adapt` carries predictors to a device it never saw.

Every device (a backend/device/profile group of a measurement store) is the target once; the
others are its sources. For each target:

- a fixed held-out test set (a seeded fifth of its cells, at most 2,000; the shipped calibration
  cells are never in it) on which everything is scored;
- `native`: a predictor of `source_type` fitted on all the target's other cells (the ceiling);
- `adapted`: the `lpm adapt` fit (method and shrinkage chosen by leave-one-out on the N cells)
  on top of source predictors fitted on the other devices' full data, at each N, over `draws`
  random draws of N cells and over the first N calibration cells when the target has them; the
  sources are each other device alone, every other device together (`all`), and only the
  devices of other runtimes together (`other-runtime`);
- `finetune`: each MLP source fine-tuned on the N cells (`lpm_zoo.adaptation.finetune`, one recipe);
- `lpm adapt`: what `lpm adapt --from SOURCE` does with each MLP source of the target's runtime
  alone: the linear map or a fine-tuning recipe, whichever its own cross-validation on the N
  cells picks (the goal check's figure; N ≤ 20, the goals' sizes);
- `scratch`: predictors of `scratch_types` fitted on the same N cells alone.

Each row is one (target, sources, method, N, cells) with the mean and spread of the metrics over
draws, and the settings it was made with. Nothing is measured: it reads stores only, so it runs
anywhere the stores are. A target's rows already made at some N are not made again: a resumed run
with other N makes only the rows of the N that are new, on the same held-out set, with the draws a
run of all those N would make.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.adaptation.finetune import can_finetune, finetune
from lpm_zoo.adaptation.methods import adapt_fit, adapt_predict, choose_adaptation
from lpm_zoo.calibration import calibration_keys
from lpm_zoo.cli import check_seed
from lpm_zoo.encoding import op_counts
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.evaluation.metrics import default_test_size, metrics, split_indices
from lpm_zoo.predictors.linear import FlopsPredictor
from lpm_zoo.predictors.registry import create_predictor, predictor_class
from lpm_zoo.profiles import cells_of
from lpm_zoo.store import MeasurementStore, Target, load_dataset, resolve_db

METRICS = ("mre_pct", "kendall_tau", "spearman_rho", "within5_pct", "within10_pct")
SCRATCH_MAX_DRAWS = 5  # the MLP from scratch is the slow one; its mean over 5 draws is enough to place it
LPM_ADAPT_MAX_N = 20  # 'lpm adapt' rows up to the goals' N (each draw cross-validates 3 fine-tuning recipes 5-fold)
# the goal check's same-runtime figures: (key prefix, cells the N are, key naming the source)
GOAL_CELLS = (("same", "random", "same_runtime_source"), ("calib", "calibration", "calib_source"))
FINETUNE_RECIPE = ("head", 1.0)  # fine-tuning in the benchmark: one recipe (lpm adapt chooses it by cross-validation)
MIN_TEST_SIZE = 10  # held-out cells: Kendall tau over fewer moves in steps of 0.044 or more (2/45 at 10), noise only


@dataclass(frozen=True)
class Device:
    """One target or source: the measurements of a backend/device/profile in a store."""

    db: str
    backend: str
    device: str
    profile: str

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.device}/{self.profile}"


def devices_in(dbs: Sequence[str], min_cells: int = 200) -> list[Device]:
    """Every backend/device/profile with at least `min_cells` unique architectures in the stores `dbs`."""


    out = []
    for db in dbs:
        path = resolve_db(db)
        if not Path(path).is_file():
            raise LpmError(f"no measurement database at {str(db)[:200]}")
        with MeasurementStore(path, readonly=True) as store:
            for r in store.summary():
                if r["n_unique"] >= min_cells:
                    out.append(Device(str(db), r["backend"], r["device"], r["profile"]))
    names = [d.name for d in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise LpmError(f"{', '.join(sorted(dup))} appears in more than one store; give each device once")
    return out


def transferable(devices: Sequence[Device]) -> list[str]:
    """Names of the devices that have another device of their encoding to transfer from."""
    return [d.name for d in devices if sum(cells_of(o.profile) == cells_of(d.profile) for o in devices) >= 2]


def relation(source: Device, target: Device) -> str:
    """How a source relates to the target: same runtime and profile, another runtime, or another profile."""
    if source.profile != target.profile:
        return "other-profile"
    return "same-runtime" if source.backend == target.backend else "other-runtime"


def metric_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    m = metrics(y, pred)
    return {k: m[k] for k in METRICS}


def _summary(scores: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"draws": len(scores)}
    for k in METRICS:
        v = np.array([s[k] for s in scores], np.float64)
        out[k] = float(np.nanmean(v))
        out[k + "_sd"] = float(np.nanstd(v)) if len(v) > 1 else 0.0
    return out


class TransferTarget:
    """A target's data, its split, and the columns every adaptation of it reads (source predictions, MAdds)."""

    def __init__(self, dev: Device, test_size: int | None, seed: int, max_n: int):
        self.dev = dev
        self.data = d = load_dataset(dev.db, Target(dev.backend, dev.device, dev.profile))
        index = {k: i for i, k in enumerate(d.keys)}
        calib = calibration_keys()
        self.calibration = [index[k] for k in calib if k in index]
        calib_set = set(self.calibration)
        rest = np.array([i for i in range(len(d)) if i not in calib_set])
        n_test = default_test_size(len(rest)) if test_size is None else test_size
        if len(rest) - n_test < max_n:
            if test_size is None or len(rest) - max_n < MIN_TEST_SIZE:
                raise LpmError(f"{dev.name} has {len(d)} architectures: too few for N up to {max_n} and a held-out set "
                               f"of at least {MIN_TEST_SIZE}")
            raise LpmError(f"--test-size {test_size}: {dev.name} has {len(rest)} architectures outside the calibration "
                           f"set and N up to {max_n} are drawn from the rest, so at most {len(rest) - max_n}")
        pool, test = split_indices(len(rest), n_test, seed)
        self.pool, self.test = rest[pool], rest[test]
        self.y = d.latency_ms
        self.madds = FlopsPredictor(dev.profile).madds(d.ops, d.inputs)
        self.counts = op_counts(d.ops)

    def X(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.data.ops[idx], self.data.inputs[idx]

    def cell_sets(self, draws: list[np.ndarray]) -> list[tuple[str, list[np.ndarray]]]:
        """The random draws of N cells, then the first N calibration cells when the store has that many."""
        n = len(draws[0])
        calibration = [("calibration", [np.array(self.calibration[:n])])] if len(self.calibration) >= n else []
        return [("random", draws), *calibration]

    def choices(self, draws: list[np.ndarray],
                fit_predict: Callable[[np.ndarray], tuple[np.ndarray, str]]) -> dict[str, Any]:
        """Metrics on the held-out cells over draws of `fit_predict(cells)` -> (predictions, method chosen),
        and the method chosen most often ("residual (4/5)")."""
        scores, methods = [], []
        for idx in draws:
            pred, method = fit_predict(idx)
            scores.append(metric_scores(self.y[self.test], pred))
            methods.append(method)
        top = max(set(methods), key=methods.count)
        return {"chosen": f"{top} ({methods.count(top)}/{len(methods)})", **_summary(scores)}

    def scored(self, draws: list[np.ndarray], fit: Callable[[tuple, np.ndarray], Any]) -> dict[str, float]:
        """Metrics on the held-out cells, over draws, of the predictor `fit(X, y)` makes from each draw's cells."""
        y = self.y[self.test]
        return _summary([metric_scores(y, fit(self.X(idx), self.y[idx]).predict(self.X(self.test))) for idx in draws])


def _linear_adapt(tgt: TransferTarget, S: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, str]:
    """Held-out predictions of the linear `adapt` fit on the sources' columns `S` at the target's cells `idx`."""

    fit = adapt_fit(S[idx], tgt.madds[idx], tgt.counts[idx], tgt.y[idx])
    return adapt_predict(fit, S[tgt.test], tgt.madds[tgt.test], tgt.counts[tgt.test]), fit[0].method


def _lpm_adapt(tgt: TransferTarget, src: Any, S: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, str]:
    """Held-out predictions of `lpm adapt --from src` on the target's cells `idx`, and the method it chose."""

    design, pick, _ = choose_adaptation(src, S[idx], tgt.madds[idx], tgt.counts[idx], tgt.X(idx), tgt.y[idx])
    if design is None:
        tuned = finetune(src, *tgt.X(idx), tgt.y[idx], pick["method"].split("-", 1)[1], pick["lambda"])
        return tuned.predict(tgt.X(tgt.test)), pick["method"]
    fit = adapt_fit(S[idx], tgt.madds[idx], tgt.counts[idx], tgt.y[idx], design=design)
    return adapt_predict(fit, S[tgt.test], tgt.madds[tgt.test], tgt.counts[tgt.test]), pick["method"]


def check_settings(sizes: Sequence[int], draws: int, test_size: int | None, seed: int) -> list[int]:
    """The sizes sorted and deduplicated, or a one-line refusal of a setting no store can satisfy."""

    out = sorted({int(n) for n in sizes})
    if not out or out[0] < 3:
        raise LpmError("--sizes must be at least 3 (the fewest cells an adaptation can choose its method from)")
    if not 1 <= draws <= 1000:
        raise LpmError(f"--draws must be from 1 to 1000, got {draws}")
    if test_size is not None and test_size < MIN_TEST_SIZE:
        raise LpmError(f"--test-size must be at least {MIN_TEST_SIZE} (Kendall tau over fewer held-out cells is noise), "
                       f"got {clip(test_size)}")
    check_seed(seed)
    return out


def transfer_benchmark(
    devices: Sequence[Device],
    sizes: Sequence[int] = (5, 10, 20, 50, 100),
    draws: int = 30,
    source_type: str = "mlp-plus",
    scratch_types: Sequence[str] = ("ridge", "lut", "mlp-plus"),
    targets: Sequence[str] | None = None,
    test_size: int | None = None,
    seed: int = 0,
    done: Mapping[str, Collection[int]] | None = None,
    on_target: Callable[[str, list[dict[str, Any]]], None] | None = None,
    progress: bool = True,
    on_start: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the leave-one-device-out benchmark (see the module docstring).

    `done` maps a target to the N its saved rows cover (its native row is saved too): only the rows of
    the other N are made. `on_start()` is called once every setting was checked against the stores,
    before any fitting; `on_target(name, rows)` when a target is finished (to save, so an interrupted
    run resumes).
    """
    from tqdm.auto import tqdm


    for t in (source_type, *scratch_types):
        predictor_class(t)  # unknown names fail before any work
    sizes = check_settings(sizes, draws, test_size, seed)
    if len(devices) < 2:
        raise LpmError(f"leave-one-device-out needs at least 2 devices; found {len(devices)} "
                       "(a device is a backend/device/profile with enough measurements in the stores given)")
    names = [d.name for d in devices]
    chosen = list(targets) if targets else names
    unknown = [t for t in chosen if t not in names]
    if unknown:
        raise LpmError(f"unknown target {unknown[0][:100]!r}; devices: {', '.join(names)}")
    movable = set(transferable(devices))
    lonely = [t for t in chosen if t not in movable]
    if lonely:
        raise LpmError(f"{', '.join(lonely)}: no other device with the same encoding (112 or 224 bits) to transfer "
                       "from; leave it out with --target or add a store of another device")
    done = done or {}
    plan = []  # (target, its split, the N to make rows for, every N of its rows: the draws follow all of them)
    for dev in devices:
        missing = [n for n in sizes if n not in done.get(dev.name, ())]
        if dev.name in chosen and missing:
            every = sorted(set(sizes) | set(done.get(dev.name, ())))
            plan.append((dev, TransferTarget(dev, test_size, seed, every[-1]), missing, every))  # every split checked now
    if on_start:
        on_start()
    fitted: dict[str, Any] = {}  # source predictors, fitted once on a device's full data

    def source(dev: Device):
        if dev.name not in fitted:
            d = load_dataset(dev.db, Target(dev.backend, dev.device, dev.profile))
            fitted[dev.name] = create_predictor(source_type).fit((d.ops, d.inputs), d.latency_ms)
        return fitted[dev.name]

    all_rows: list[dict[str, Any]] = []
    settings = {"source_type": source_type, "scratch": list(scratch_types), "draws": draws, "test_size": test_size,
                "seed": seed}
    bar = tqdm(total=len(plan) * (len(devices) + 2), desc="transfer", unit="step", disable=not progress)
    for dev, tgt, new, every in plan:  # `new`: the N this run makes rows for
        rng = np.random.default_rng(seed + 1)
        drawn = {n: [rng.choice(tgt.pool, n, replace=False) for _ in range(draws)] for n in every}
        sets = {n: drawn[n] for n in new}
        yt = tgt.y[tgt.test]

        base = {"target": dev.name, "target_n": len(tgt.data), "test_n": len(tgt.test), "settings": settings}
        rows: list[dict[str, Any]] = []
        if dev.name not in done:
            native = create_predictor(source_type).fit(tgt.X(tgt.pool), tgt.y[tgt.pool])
            rows.append({**base, "sources": "-", "relation": "native", "method": f"native {source_type}",
                         "n": len(tgt.pool), "cells": "all",
                         **_summary([metric_scores(yt, native.predict(tgt.X(tgt.test)))])})
        bar.update(1)
        others = [o for o in devices if o.name != dev.name and cells_of(o.profile) == cells_of(dev.profile)]  # same encoding only
        S_all = {}
        for o in others:
            S_all[o.name] = source(o).predict(tgt.X(np.arange(len(tgt.data))))
            bar.update(1)
        groups = [(o.name, relation(o, dev), [o.name]) for o in others]
        groups.append(("all", "all", [o.name for o in others]))
        cross = [o.name for o in others if relation(o, dev) == "other-runtime"]
        if cross:
            groups.append(("other-runtime", "other-runtime", cross))
        for label, rel, members in groups:
            S = np.stack([S_all[m] for m in members], 1)
            for n in new:
                for kind, idx_list in tgt.cell_sets(sets[n]):
                    rows.append({**base, "sources": label, "relation": rel, "method": "adapted", "n": n, "cells": kind,
                                 **tgt.choices(idx_list, partial(_linear_adapt, tgt, S))})
        for o in others:  # fine-tuning each MLP source (a fixed recipe; the slow method, so fewer draws)
            src = source(o)
            if not can_finetune(src):
                continue
            for n in new:
                summary = tgt.scored(sets[n][:SCRATCH_MAX_DRAWS],
                                     lambda X, y, src=src: finetune(src, *X, y, *FINETUNE_RECIPE))
                rows.append({**base, "sources": o.name, "relation": relation(o, dev), "method": "finetune", "n": n,
                             "cells": "random", "chosen": f"finetune-{FINETUNE_RECIPE[0]} lambda {FINETUNE_RECIPE[1]}",
                             **summary})
            if o.backend != dev.backend:
                continue  # the goal it serves is same-runtime (and each row costs 15 fine-tunings per draw)
            S1 = S_all[o.name][:, None]
            for n in [n for n in new if n <= LPM_ADAPT_MAX_N]:  # what `lpm adapt --from SOURCE` itself picks
                for kind, idx_list in tgt.cell_sets(sets[n][:SCRATCH_MAX_DRAWS]):
                    rows.append({**base, "sources": o.name, "relation": relation(o, dev), "method": "lpm adapt",
                                 "n": n, "cells": kind,
                                 **tgt.choices(idx_list, partial(_lpm_adapt, tgt, src, S1))})
        for t in scratch_types:
            for n in new:
                summary = tgt.scored(sets[n][: SCRATCH_MAX_DRAWS if t.startswith("mlp") else draws],
                                     lambda X, y, t=t: create_predictor(t).fit(X, y))
                rows.append({**base, "sources": "-", "relation": "scratch", "method": f"scratch {t}", "n": n,
                             "cells": "random", **summary})
        bar.update(1)
        if on_target:
            on_target(dev.name, rows)
        all_rows.extend(rows)
    bar.close()
    return all_rows


def goal_check(rows: Sequence[dict[str, Any]], n: int = 10, cross_n: int = 20) -> list[dict[str, Any]]:
    """Per target: the issue's goals (same runtime at N=n vs native; other runtime at N=cross_n), from `rows`.

    "Same runtime" is any single source of the target's backend (other hardware, threads, batch or
    network size) through what `lpm adapt --from SOURCE` itself chooses (rows "lpm adapt"; older
    rows without them: the better of the adapted and fine-tuned rows, which picks the method after
    seeing the held-out error); the best source is reported, on N random cells (`same_*`) and on
    the first N calibration cells, what `lpm adapt` measures by default (`calib_*`, None when the
    target's store has no calibration cells).
    """
    out = []
    for target in dict.fromkeys(r["target"] for r in rows):
        rs = [r for r in rows if r["target"] == target]
        native = next(r for r in rs if r["relation"] == "native")
        backend = target.split("/")[0]
        adapted = [r for r in rs if r["method"] == "adapted" and r["cells"] == "random"]
        cross = next((r for r in adapted if r["sources"] == "other-runtime" and r["n"] == cross_n), None)
        g: dict[str, Any] = {"target": target, "native_mre_pct": native["mre_pct"], "native_tau": native["kendall_tau"],
                             "cross_tau": cross["kendall_tau"] if cross else None,
                             "cross_mre_pct": cross["mre_pct"] if cross else None}
        for prefix, cells, source_key in GOAL_CELLS:
            single = [r for r in rs if r["cells"] == cells and r["n"] == n
                      and r["sources"].split("/")[0] == backend and r["sources"].count("/") == 2]
            same = [r for r in single if r["method"] == "lpm adapt"] or [
                r for r in single if r["method"] in ("adapted", "finetune")]
            best = min(same, key=lambda r: r["mre_pct"]) if same else None
            g.update({
                source_key: f"{best['sources']} ({best['method']})" if best else None,
                f"{prefix}_mre_pct": best["mre_pct"] if best else None,
                f"{prefix}_mre_ratio": best["mre_pct"] / native["mre_pct"] if best else None,
                f"{prefix}_tau_gap": native["kendall_tau"] - best["kendall_tau"] if best else None,
                f"{prefix}_within10_pct": best["within10_pct"] if best else None,
            })
        out.append(g)
    return out
