"""What defines a search run (`SearchConfig`), its settings resolved against the method's defaults
(`ResolvedSearch`), and the bounds every setting is checked against before anything is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from lpm_zoo.cli import check_seed
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.search.checkpoint import check_device, check_number
from lpm_zoo.search.datasets import check_resolution
from lpm_zoo.search.options import METHODS, SELECT_IMAGES
from lpm_zoo.search.precision import check_precision
from lpm_zoo.search.selection import check_selection
from lpm_zoo.store import MAX_LATENCY_MS

MAX_LAMBDA = {True: 1e3, False: 1e6}
"""The largest --lambda with and without --relative. Adam's step does not grow with the gradient, so once λ·LAT
dwarfs the cross-entropy (about 2.3 at the start, below 1 later) a larger λ steers α the same way: relative 1,000
is a latency term a thousand times the reference cell's, and 10^6 s⁻¹ weighs a 1 ms cell at 1,000 in the loss.
Far below where float32 overflows (a gradient of inf makes α NaN)."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search run; `None` means the method's default."""

    method: str = "darts"
    predictor: str | None = None
    lam: float = 0.0
    relative: bool = False
    estimator: str = "auto"
    samples: int = 20
    noise_ms: float = 0.0
    dataset: str = "digits"
    data_dir: str | None = None
    resolution: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_min: float | None = None
    arch_lr: float | None = None
    warmup_epochs: int | None = None
    channels: int = 16
    layers: int = 8
    partial_k: int | None = None
    grad_clip: float = 5.0
    train_portion: float = 0.5
    max_steps: int | None = None  # cap on steps per epoch (quick runs and tests)
    max_skip: int | None = None  # P-DARTS: at most this many skip_connect in the derived normal cell
    stop_skip: int | None = None  # DARTS+: stop once the derived normal cell has this many skip_connect
    seed: int = 0
    device: str = "cpu"
    select: str = "argmax"  # how the genotype is read from the trained supernet (lpm_zoo.search.selection)
    select_images: int = SELECT_IMAGES  # validation images per DARTS-PT measurement
    fused: bool = False  # train with the per-state forward (lpm_zoo.search.fused_cell): same function, faster
    precision: str = "fp32"  # opt-in bf16 / fp16 autocast (lpm_zoo.search.precision); fp32: the original arithmetic
    channels_last: bool = False  # CUDA only: NHWC tensors for the tensor cores

    def resolved(self) -> ResolvedSearch:
        """The settings with the method's defaults filled in (what the run actually uses)."""
        if self.method not in METHODS:
            raise LpmError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        m = METHODS[self.method]
        out = asdict(self)
        epochs = self.epochs if self.epochs is not None else m.epochs
        for k in ("batch_size", "lr", "lr_min", "arch_lr", "partial_k"):
            if out[k] is None:
                out[k] = getattr(m, k)
        out["epochs"] = epochs
        if out["warmup_epochs"] is None:  # the paper's 15 of 50 epochs, scaled to the run's length
            out["warmup_epochs"] = m.warmup_for(epochs)
        return ResolvedSearch(**out, unrolled=m.unrolled, edge_norm=m.edge_norm, momentum=m.momentum,
                              weight_decay=m.weight_decay, arch_betas=tuple(m.arch_betas),
                              arch_weight_decay=m.arch_weight_decay)


@dataclass(frozen=True)
class ResolvedSearch(SearchConfig):
    """A search's settings with every default filled in, and the method's fixed ones (what the run uses)."""

    unrolled: bool = False
    edge_norm: bool = False
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (result.json, checkpoints)."""
        out = asdict(self)
        out["arch_betas"] = list(self.arch_betas)
        return out


def check_config(cfg: ResolvedSearch) -> ResolvedSearch:
    """Refuse, before anything is loaded or trained, settings the run could not complete with."""
    if cfg.epochs < 1:
        raise LpmError(f"--epochs must be at least 1, got {cfg.epochs}")
    if cfg.batch_size < 2:
        raise LpmError(f"--batch-size must be at least 2, got {cfg.batch_size}")
    if cfg.channels < 1 or cfg.layers < 3:
        raise LpmError("--channels must be >= 1 and --layers >= 3 (two reduction cells and a normal one)")
    if cfg.partial_k < 1:
        raise LpmError(f"--partial-k must be at least 1 (1: all channels, DARTS), got {cfg.partial_k}")
    if cfg.channels % cfg.partial_k:
        raise LpmError(f"--channels {cfg.channels} must be divisible by the partial-channel K={cfg.partial_k}")
    for key, flag, above in (("lam", "--lambda", False), ("lr", "--lr", True), ("lr_min", "--lr-min", False),
                             ("arch_lr", "--arch-lr", False), ("noise_ms", "--noise", False),
                             ("grad_clip", "grad_clip", True), ("train_portion", "train_portion", True)):
        check_number(flag, getattr(cfg, key), 0.0, above)
    if cfg.lam > MAX_LAMBDA[cfg.relative]:
        raise LpmError(f"--lambda must be at most {MAX_LAMBDA[cfg.relative]:g}{'' if cfg.relative else ' s⁻¹'} "
                       f"{'with' if cfg.relative else 'without'} --relative (a larger one steers α the same way), "
                       f"got {clip(cfg.lam)}")
    if cfg.noise_ms > MAX_LATENCY_MS:
        raise LpmError(f"--noise must be at most {MAX_LATENCY_MS:g} ms (the largest latency a store accepts), "
                       f"got {clip(cfg.noise_ms)}")
    if cfg.lr_min > cfg.lr:
        raise LpmError(f"--lr-min {clip(cfg.lr_min)} must not exceed --lr {clip(cfg.lr)} (the schedule decays to it)")
    check_seed(cfg.seed)
    if cfg.warmup_epochs < 0:
        raise LpmError(f"--warmup-epochs must be >= 0, got {cfg.warmup_epochs}")
    if cfg.predictor and not 2 <= cfg.samples <= 10_000:
        raise LpmError(f"--samples must be in [2, 10000] (sub-networks per step), got {cfg.samples}")
    if cfg.lam > 0 and not cfg.predictor:
        raise LpmError("--lambda > 0 needs --predictor NAME (a fitted predictor from `lpm zoo` or a directory)")
    check_resolution(cfg.dataset, cfg.resolution)
    cfg = replace(cfg, device=check_device(cfg.device))
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise LpmError(f"--max-steps must be at least 1, got {cfg.max_steps}")
    if cfg.max_skip is not None and not 0 <= cfg.max_skip <= 8:
        raise LpmError(f"--max-skip must be from 0 to 8 (skip_connect edges kept in the normal cell), got {cfg.max_skip}")
    if cfg.stop_skip is not None and not 1 <= cfg.stop_skip <= 8:
        raise LpmError(f"--stop-skip must be from 1 to 8 (skip_connect edges that stop the search), got {cfg.stop_skip}")
    check_selection(cfg.select, cfg.select_images)
    check_precision(cfg.precision, cfg.device, cfg.unrolled, cfg.channels_last)
    if cfg.select != "argmax" and cfg.max_skip is not None:
        raise LpmError("--max-skip caps the argmax derivation; leave it out with --select perturbation")
    return cfg


# The fields that must match for a checkpoint to be resumed (everything but presentation, the selection, which
# runs after the last epoch: one trained supernet can be read with argmax and with perturbation, `fused`, which
# computes the same function faster, and the arithmetic: a run may go on in another precision or memory layout).
RESUME_KEYS = tuple(f.name for f in fields(SearchConfig)
                    if f.name not in ("device", "select", "select_images", "fused", "precision", "channels_last"))
