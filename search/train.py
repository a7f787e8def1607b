"""Evaluation training of a genotype (§4.1): cutout, drop path, auxiliary head, cosine schedule, grad clip 5.

CIFAR-10 defaults are the paper's (600 epochs, batch 128, C=36, 20 cells, cutout 16); the
built-in digits dataset gets small-data defaults (`TRAIN_DEFAULTS`). Checkpointed per epoch in
`out`, so an interrupted training resumes at the last finished epoch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lpm_zoo.cli import check_seed
from lpm_zoo.errors import LpmError
from lpm_zoo.hardware import cpu_fingerprint, describe
from lpm_zoo.search.checkpoint import check_checkpoint_path, check_device, check_number, load_checkpoint, restoring, save_checkpoint
from lpm_zoo.search.data import iterate
from lpm_zoo.search.datasets import check_resolution, load_data
from lpm_zoo.search.loop import StopFlag, allocated, checkpoint_state, cosine_schedule, evaluate, restore_state, run_epochs
from lpm_zoo.space import Genotype

TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": dict(epochs=600, batch_size=128, channels=36, layers=20, cutout=16, resolution=32,
                    auxiliary_weight=0.4),
    "digits": dict(epochs=10, batch_size=64, channels=8, layers=5, cutout=4, resolution=16, auxiliary_weight=0.0),
    "textures": dict(epochs=10, batch_size=64, channels=8, layers=5, cutout=4, resolution=16, auxiliary_weight=0.0),
}
"""Per-dataset defaults: the paper's §4.1 for CIFAR-10 (auxiliary weight 0.4); a few-minute CPU run for the
built-in tasks. Digits run at 16x16, where the CIFAR auxiliary head (which needs an 8x8 map after two
reductions) does not fit: pass `--resolution 32 --auxiliary-weight 0.4` to train digits with it."""


@dataclass(frozen=True)
class TrainConfig:
    """An evaluation training run; `None` takes the dataset's default from `TRAIN_DEFAULTS`."""

    dataset: str = "digits"
    data_dir: str | None = None
    resolution: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    channels: int | None = None
    layers: int | None = None
    cutout: int | None = None
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    drop_path: float = 0.2
    auxiliary_weight: float | None = None  # 0 disables the auxiliary head; default 0.4 (paper)
    max_steps: int | None = None
    seed: int = 0
    device: str = "cpu"

    def resolved(self) -> TrainConfig:
        """The settings with the dataset's defaults filled in and checked (what the run uses)."""
        if self.dataset not in TRAIN_DEFAULTS:
            raise LpmError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(TRAIN_DEFAULTS)}")
        out = asdict(self)
        for k, v in TRAIN_DEFAULTS[self.dataset].items():
            if out[k] is None:
                out[k] = v
        check_resolution(self.dataset, self.resolution)
        check_seed(self.seed)
        if out["epochs"] < 1 or out["batch_size"] < 2:
            raise LpmError("--epochs must be >= 1 and --batch-size >= 2")
        for key, flag, above in (("lr", "--lr", True), ("lr_min", "lr_min", False), ("drop_path", "--drop-path", False),
                                 ("auxiliary_weight", "--auxiliary-weight", False), ("grad_clip", "grad_clip", True)):
            check_number(flag, out[key], 0.0, above)
        if out["drop_path"] >= 1:
            raise LpmError(f"--drop-path must be below 1 (the share of paths dropped), got {out['drop_path']}")
        if out["cutout"] < 0:
            raise LpmError(f"--cutout must be >= 0 pixels, got {out['cutout']}")
        if out["auxiliary_weight"] > 0 and out["resolution"] < 32:
            raise LpmError(f"the auxiliary head needs 32x32 inputs (8x8 after two reductions); got --resolution "
                           f"{out['resolution']}: use --resolution 32 or --auxiliary-weight 0")
        out["device"] = check_device(out["device"])
        return replace(self, **out)


def trained_on(device: torch.device) -> str:
    """The machine a network was trained on, in one phrase: the GPU's name, or the CPU's model, cores and top ISA
    (training arithmetic differs between CPU models: BENCHMARKS.md, issue 34)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)[:80]
    fp = cpu_fingerprint()
    return describe(fp) + (" (a stated identity, LPM_HOST_IDENTITY)" if fp.get("stated") else "")


def train_genotype(genotype: Genotype, config: TrainConfig, out: str | Path | None = None,
                   log: Callable[[str], None] = print, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Train `genotype`'s evaluation network from scratch and return params, test accuracy and the log."""
    from lpm_zoo.complexity import count_params
    from lpm_zoo.networks import NetworkCIFAR

    cfg = config.resolved()
    if out:
        check_checkpoint_path(Path(out) / "train_checkpoint.pt")
    device = torch.device(cfg.device)
    data = load_data(cfg.dataset, cfg.data_dir, cfg.resolution)
    data_sha256, machine = data.fingerprint(), trained_on(device)
    torch.manual_seed(cfg.seed)
    aux = cfg.auxiliary_weight > 0
    model = allocated(lambda: NetworkCIFAR(cfg.channels, data.num_classes, cfg.layers, aux, genotype).to(device),
                      f"a network of C={cfg.channels} and {cfg.layers} cells")
    params_m = count_params(model) / 1e6
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(opt, cfg.epochs, cfg.lr_min)
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.arange(len(data.y_train))
    n_steps = math.ceil(len(idx) / cfg.batch_size)
    if cfg.max_steps:
        n_steps = min(n_steps, cfg.max_steps)
    ck_path = Path(out) / "train_checkpoint.pt" if out else None
    ck_config = {"genotype": genotype.to_darts(), **{k: v for k, v in asdict(cfg).items() if k != "device"}}
    epoch, history = 0, []
    if ck_path and ck_path.is_file() and not restart:
        ck = load_checkpoint(ck_path, device, ck_config)
        with restoring(ck_path):
            epoch, history = int(ck["epoch"]), json.loads(ck["history_json"])
            restore_state(ck, model, {"opt": opt}, scheduler, gen, epoch)
        log(f"resuming training from {ck_path} at epoch {epoch + 1}")
    stop = StopFlag()

    def run_epoch(bar) -> None:
        nonlocal epoch
        lr = opt.param_groups[0]["lr"]  # this epoch's, set by the cosine schedule
        model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs
        model.train()
        tot, correct, n = 0.0, 0, 0
        batches = iterate(data, idx, cfg.batch_size, cfg.seed * 100003 + epoch, gen, cutout=cfg.cutout)
        for _ in range(n_steps):
            if stop:
                return
            x, y = next(batches)
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            out_ = model(x)
            logits, logits_aux = out_ if isinstance(out_, tuple) else (out_, None)
            loss = F.cross_entropy(logits, y)
            if logits_aux is not None:
                loss = loss + cfg.auxiliary_weight * F.cross_entropy(logits_aux, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            tot += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
            bar.update(1)
        if stop:
            return
        n_test = cfg.max_steps * cfg.batch_size if cfg.max_steps else len(data.y_test)
        test_acc = evaluate(model, data.x_test[:n_test], data.y_test[:n_test], device)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": tot / max(n, 1), "train_acc": correct / max(n, 1),
               "test_acc": test_acc, "trained_on": machine}  # per epoch: a resumed training may change machines
        history.append(row)
        log(f"epoch {epoch + 1:3d}  lr {lr:.4f}  train loss {row['train_loss']:.3f}  "
            f"train acc {100 * row['train_acc']:.1f}%  test acc {100 * test_acc:.2f}%")
        epoch += 1
        scheduler.step()
        if ck_path:  # per finished epoch: an interrupted epoch is run again on resume
            save_checkpoint(ck_path, {**checkpoint_state(model, {"opt": opt}, scheduler, gen), "config": ck_config,
                                      "epoch": epoch, "history_json": json.dumps(history)})

    t_start = time.perf_counter()
    run_epochs(run_epoch, lambda: epoch >= cfg.epochs, stop, total=cfg.epochs * n_steps,
               initial=epoch * n_steps, desc="train", progress=progress)
    result = {
        "genotype": genotype.to_darts(),
        "dataset": cfg.dataset,
        "params_M": params_m,
        "test_acc": history[-1]["test_acc"] if history else None,
        "epochs_done": epoch,
        "interrupted": bool(stop),
        "seconds": time.perf_counter() - t_start,
        "config": asdict(cfg),
        "trained_on": " + ".join(dict.fromkeys(r.get("trained_on", "not recorded") for r in history)) or machine,
        "torch": torch.__version__,
        "data_sha256": data_sha256,
        "history": history,
    }
    if out and not stop:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "train_result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
