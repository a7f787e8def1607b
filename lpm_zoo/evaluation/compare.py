"""`lpm compare`'s work: every predictor type at every training size on one fixed held-out split, and its table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lpm_zoo.errors import LpmError
from lpm_zoo.evaluation.metrics import default_test_size, metrics, split_indices
from lpm_zoo.predictors.registry import create_predictor, predictor_class


def compare(
    data: Any,
    types: Sequence[str],
    train_sizes: Sequence[int],
    test_size: int | None = None,
    seed: int = 0,
    params: Callable[[str], dict[str, Any]] = lambda t: {},
    on_result: Callable[[dict[str, Any], np.ndarray], None] | None = None,
    done: dict[tuple[str, int], tuple[dict[str, Any], np.ndarray | None]] | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fit every type at every training size on one fixed split of `data` (a LatencyDataset).

    `done` holds results of an interrupted earlier run ({(type, size): (row, held-out predictions
    or None)}); they are reused, not refitted (a missing prediction is refitted only if it is the
    largest size of its type, which the predicted-vs-measured plot needs). `on_result(row, pred)`
    is called after each new fit. Returns (rows, {"predictions": {type: (y, pred) at its largest
    size}, "skipped_sizes": sizes larger than the training pool, ...}).
    """
    from tqdm.auto import tqdm

    for t in types:
        predictor_class(t)  # unknown names fail before any fitting
    done = dict(done or {})
    n = len(data)
    test_size = default_test_size(n) if test_size is None else test_size
    pool, test = split_indices(n, test_size, seed)
    sizes = sorted({int(s) for s in train_sizes})
    if any(s < 2 for s in sizes):
        raise LpmError("training-set sizes must be at least 2")
    too_big = [s for s in sizes if s > len(pool)]
    sizes = [s for s in sizes if s <= len(pool)]
    if not sizes:
        raise LpmError(f"no training size fits: {len(pool)} architectures are left after holding out {test_size}; "
                       "measure more (lpm profile ...) or pass smaller --train-sizes")
    Xt, yt = (data.ops[test], data.inputs[test]), data.latency_ms[test]
    jobs = [(t, k) for t in types for k in sizes]
    todo = [(t, k) for t, k in jobs if (t, k) not in done or (k == sizes[-1] and done[(t, k)][1] is None)]
    work = sum(k for _, k in todo)
    bar = tqdm(total=work, desc="compare", unit="arch", disable=not progress or not todo, leave=False)
    rows, preds = [], {}
    for t, k in jobs:
        if (t, k) in todo:
            idx = pool[:k]
            p = create_predictor(t, **params(t))
            bar.set_postfix_str(f"{t} @ {k}")
            t0 = time.perf_counter()
            p.fit((data.ops[idx], data.inputs[idx]), data.latency_ms[idx])
            fit_s = time.perf_counter() - t0
            pred = p.predict(Xt)
            row = {"predictor": t, "train_size": k, "test_size": test_size, **metrics(yt, pred), "fit_s": fit_s}
            bar.update(k)
            if on_result:
                on_result(row, pred)
        else:
            row, pred = done[(t, k)]
        rows.append(row)
        if pred is not None:
            preds[t] = (yt, np.asarray(pred))
    bar.close()
    return rows, {"skipped_sizes": too_big, "predictions": preds, "test_index": test, "sizes": sizes,
                  "reused": len(jobs) - len(todo)}


COLUMNS = [("predictor", "{:<10}"), ("train_size", "{:>7}"), ("mae_ms", "{:>9.4f}"), ("mre_pct", "{:>7.2f}"),
           ("within10_pct", "{:>7.1f}"), ("kendall_tau", "{:>6.3f}"), ("spearman_rho", "{:>6.3f}"),
           ("fit_s", "{:>8.1f}")]
HEADER = f"{'predictor':<10} {'train':>7} {'MAE ms':>9} {'MRE %':>7} {'±10% %':>7} {'tau':>6} {'rho':>6} {'fit s':>8}"


def format_row(row: dict[str, Any]) -> str:
    """One line of the comparison table."""
    return " ".join(fmt.format(row[c]) for c, fmt in COLUMNS)
