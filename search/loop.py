"""What the search and the evaluation training share: the resumable, Ctrl-C-safe epoch loop.

Both runs anneal the weights' learning rate with torch's `CosineAnnealingLR` (stepped once per
finished epoch), checkpoint the same pieces (`checkpoint_state` / `restore_state`), stop on a
first Ctrl-C after the current step (`StopFlag`, `run_epochs`) and measure accuracy with
`evaluate`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR

from lpm_zoo.errors import LpmError
from lpm_zoo.search.checkpoint import sigint_flag

T = TypeVar("T")
CHECKPOINT_FORMAT = 2
"""2: the LR schedule is saved. 1 (or none, train checkpoints): it is replayed to the saved epoch on resume."""


def cosine_schedule(optimizer: Optimizer, epochs: int, lr_min: float) -> CosineAnnealingLR:
    """Cosine annealing from the optimiser's lr to `lr_min` over `epochs` (no restart), as DARTS' scheduler."""
    return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr_min)


def allocated(build: Callable[[], T], what: str) -> T:
    """`build()`, or one line when memory runs out building `what` (a network too large for this machine)."""
    try:
        return build()
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, MemoryError) or "allocate" in str(e) or "out of memory" in str(e):
            raise LpmError(f"not enough memory for {what}; lower --channels or --layers") from None
        raise


def checkpoint_state(model: torch.nn.Module, optimizers: Mapping[str, Optimizer], scheduler: CosineAnnealingLR,
                     gen: torch.Generator) -> dict[str, Any]:
    """The entries every checkpoint holds: format, model, optimisers (by key), LR schedule, the RNG states (the
    data generator's, torch's CPU one and, once CUDA is in use, each CUDA device's: drop path draws from those)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        **{key: opt.state_dict() for key, opt in optimizers.items()},
        "scheduler": scheduler.state_dict(),
        "gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_state(ck: Mapping[str, Any], model: torch.nn.Module, optimizers: Mapping[str, Optimizer],
                  scheduler: CosineAnnealingLR, gen: torch.Generator, epoch: int) -> None:
    """Load what `checkpoint_state` saved; an older checkpoint without the schedule has it replayed to `epoch`."""
    fmt = int(ck.get("format", 1))
    if fmt > CHECKPOINT_FORMAT:
        raise LpmError(f"the checkpoint is format {fmt}, newer than this lpm-zoo reads ({CHECKPOINT_FORMAT}); "
                       "upgrade, use another --out or pass --restart")
    model.load_state_dict(ck["model"])
    for key, opt in optimizers.items():
        opt.load_state_dict(ck[key])
    if "scheduler" in ck:
        scheduler.load_state_dict(ck["scheduler"])
    else:
        _replay(scheduler, epoch)
    gen.set_state(ck["gen"].cpu())  # map_location moved them; RNG states are CPU tensors
    torch.set_rng_state(ck["torch_rng"].cpu())
    if "cuda_rng" in ck and torch.cuda.is_available():  # a CPU run resumed on CPU has none to restore
        for index, cuda_state in enumerate(ck["cuda_rng"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


def sync_device(device: torch.device) -> None:
    """Wait for the work queued on a CUDA `device` (nothing on CPUs), so a host timer started next counts only
    what follows, not GPU work queued before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _replay(scheduler: CosineAnnealingLR, epoch: int) -> None:
    """Step a fresh schedule `epoch` times from the base lr (format-1 checkpoints saved no schedule)."""
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base
    with warnings.catch_warnings():  # "step() before optimizer.step()": intended, nothing is trained here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(epoch):
            scheduler.step()


class StopFlag:
    """Set by a first Ctrl-C, so the run finishes its step, saves and returns; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.set = False

    def __bool__(self) -> bool:
        return self.set

    def on_sigint(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.set:
            raise KeyboardInterrupt
        self.set = True


def run_epochs(run_epoch: Callable[[Any], None], finished: Callable[[], bool], stop: StopFlag, *, total: int,
               initial: int, desc: str, progress: bool) -> None:
    """Call `run_epoch(bar)` until `finished()` or a Ctrl-C (which sets `stop`), under a progress bar of steps."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit="step", desc=desc, disable=not progress, dynamic_ncols=True)
    with sigint_flag(stop.on_sigint):
        try:
            while not finished() and not stop:
                run_epoch(bar)
        finally:
            bar.close()


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch: int = 256, index: torch.Tensor | None = None) -> float:
    """Top-1 accuracy of `model` in eval mode on `x`, `y` (rows `index` only, if given); its mode is restored."""
    was_training = model.training
    model.eval()
    n = len(y) if index is None else len(index)
    correct = 0
    for k in range(0, n, batch):
        b = slice(k, k + batch) if index is None else index[k:k + batch]
        logits = model(x[b].to(device))
        correct += int((logits.argmax(1) == y[b].to(device)).sum())
    model.train(was_training)
    return correct / n
