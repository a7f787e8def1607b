"""Fine-tuning an MLP predictor to a new device on a handful of cells (a method of `lpm adapt`).

The source network is first rescaled to the target (its output multiplied by the median ratio
measured/predicted, the `scale` method), then trained on the N cells to minimise the squared
relative error plus `lam`·‖θ − θ₀‖² (L2-SP: regularised toward the source weights, so ten
cells move it only as far as they can justify), with full-batch Adam for a fixed number of
steps. `mode="head"` trains the last layer only; `"all"` every layer. The recipe (mode, lam)
is chosen by 5-fold cross-validated relative error on the N cells (leave-one-out is 10x the
fits for the same answer here).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lpm_zoo.encoding import keys_from_arrays
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors.base import encoding_of, training_hash
from lpm_zoo.predictors.mlp import MLPPredictor

MODES = ("head", "all")
RECIPES = (("head", 1.0), ("all", 1.0), ("all", 10.0))  # (mode, lam) tried; all layers only with a firm pull home
STEPS = 150
LR = 3e-3
MIN_CELLS = 5


def can_finetune(p: Any) -> bool:
    """Whether `p` is an MLP predictor this module can fine-tune."""

    # an `mlp-split` of whole genotypes adds a linear reduction-cell term this module does not retrain
    return isinstance(p, MLPPredictor) and p.fitted and getattr(p, "_reduce", None) is None


def finetune(source: Any, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray, mode: str = "all",
             lam: float = 0.1, steps: int = STEPS) -> Any:
    """A copy of the MLP predictor `source` fitted to the cells (ops, inputs) with latencies `y` (ms)."""
    import torch

    if mode not in MODES:
        raise LpmError(f"fine-tune mode must be one of {', '.join(MODES)}, got {str(mode)[:40]!r}")
    if not can_finetune(source):
        raise LpmError("fine-tuning needs a fitted mlp or mlp-plus source (or an mlp-split of normal cells)")
    y = np.asarray(y, np.float64)
    s = source.predict((ops, inputs))
    scale = float(np.median(y / s)) if (s > 0).all() else 1.0
    out = copy.deepcopy(source)
    out._y_mean, out._y_std = source._y_mean * scale, source._y_std * scale  # the `scale` method, baked in
    out._tcache = None
    _retrained(out, source, ops, inputs, y)
    if steps <= 0:
        return out
    start = [(torch.from_numpy(W.copy()), torch.from_numpy(b.copy())) for W, b in out._weights]
    params = [(W.clone().requires_grad_(mode == "all" or k == len(start) - 1),
               b.clone().requires_grad_(mode == "all" or k == len(start) - 1)) for k, (W, b) in enumerate(start)]
    trainable = [p for pair in params for p in pair if p.requires_grad]
    X = torch.from_numpy(source._dense(ops, inputs))
    t = torch.from_numpy(y)
    pulled = [(p, p0) for pair, pair0 in zip(params, start) for p, p0 in zip(pair, pair0) if p.requires_grad]
    n_params = sum(p.numel() for p in trainable)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            opt = torch.optim.Adam(trainable, lr=LR)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                pred = out.forward(X, params).double() * out._y_std + out._y_mean
                loss = (((pred - t) / t) ** 2).mean()
                drift = sum(((p - p0) ** 2).sum() for p, p0 in pulled)
                (loss + lam * drift / n_params).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    out._weights = [(W.detach().numpy().copy(), b.detach().numpy().copy()) for W, b in params]
    out._tcache = None
    return out


def _retrained(out: Any, source: Any, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> Any:
    """`out` recorded as trained on these cells (its train.json and hash), not on the source's data."""

    out._train_keys = keys_from_arrays(ops, inputs)
    out._train_y = np.asarray(y, np.float64).copy()
    out.meta = {"type": source.type_name, "params": source.get_params(), "encoding": encoding_of(ops.shape[1]),
                "train_size": int(len(y)), "train_hash": training_hash(out._train_keys, out._train_y),
                "finetuned_from": source.meta.get("name")}
    return out


def choose_recipe(source: Any, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray,
                  folds: int = 5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The (mode, lam) of `RECIPES` with the lowest k-fold MRE on the cells, and every recipe's score."""
    n = len(y)
    if n < MIN_CELLS:
        raise LpmError(f"fine-tuning needs at least {MIN_CELLS} measured cells; got {n}")
    k = min(folds, n)
    fold = np.arange(n) % k
    rows = []
    for mode, lam in RECIPES:
        errs = np.empty(n)
        for f in range(k):
            tr, te = fold != f, fold == f
            p = finetune(source, ops[tr], inputs[tr], y[tr], mode, lam)
            errs[te] = np.abs(p.predict((ops[te], inputs[te])) - y[te]) / y[te]
        rows.append({"method": f"finetune-{mode}", "lambda": lam, "loo_mre_pct": float(100 * errs.mean())})
    best = min(rows, key=lambda r: r["loo_mre_pct"])
    return best, rows
