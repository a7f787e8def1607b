"""Opt-in reduced precision for the search (`lpm search --precision`): bf16 autocast (CUDA with bf16, or a CPU with
native bf16: avx512_bf16 or amx_bf16) and fp16 mixed precision with dynamic loss scaling (CUDA), both through
`torch.autocast` and `torch.amp.GradScaler` (the documented AMP recipe: autocast over forward and loss only, the
backward outside it, gradients unscaled before clipping). fp32, the default, is the original code's arithmetic and
takes none of these paths.

The α step takes its gradient with `torch.autograd.grad` (never `.backward()`), so under fp16 the validation loss is
scaled by the scaler (`GradScaler.scale`) and the gradients divided by its scale by hand; a step whose gradients
overflowed is skipped, as `GradScaler.step` skips a weight step, and backs the scale off as an overflowing weight
step does (the search counts the skipped α steps per epoch)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lpm_zoo.errors import LpmError
from lpm_zoo.hardware import cpu_isa
from lpm_zoo.search.options import PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: CPU flags that make bf16 arithmetic native (without them torch emulates it, slower than fp32)
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
#: the CUDA compute capability from which bf16 is native (Ampere); `torch.cuda.is_bf16_supported()` also says yes
#: to older GPUs that only emulate it
BF16_CAPABILITY = (8, 0)
#: GradScaler.state_dict()'s keys, each checked when a checkpoint is read back
SCALER_KEYS = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}


def check_precision(precision: str, device: str, unrolled: bool, channels_last: bool) -> None:
    """Refuse, in one line, a precision or memory layout the run could not use."""
    if precision not in PRECISIONS:
        raise LpmError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"[:200])
    cuda = device.startswith("cuda")
    if channels_last and not cuda:
        raise LpmError("--channels-last is offered on CUDA only: with torch's CPU kernels it gave wrong gradients "
                       "and a heap corruption (BENCHMARKS.md, issue 32); drop it on a CPU")
    if precision == "fp32":
        return
    if unrolled:
        raise LpmError(f"--precision {precision} needs a first-order method: the second-order step's finite "
                       "differences (ε = 0.01 / ‖∇w‖) are below reduced precision's resolution; use --method darts "
                       "or pc-darts, or fp32")
    if precision == "fp16" and not cuda:
        raise LpmError("--precision fp16 (mixed precision with loss scaling) is for CUDA; on a CPU use bf16 where it "
                       "is native, or fp32")
    if precision == "bf16" and cuda and torch.cuda.is_available() and not cuda_has_bf16(device):
        raise LpmError(f"this GPU ({torch.cuda.get_device_name(device)}, compute capability "
                       f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))}) has no native bf16 (8.0+); "
                       "use --precision fp16 or fp32")


def cuda_has_bf16(device: str | torch.device) -> bool:
    """Whether the CUDA device computes bf16 natively (compute capability 8.0+, Ampere and newer)."""
    return tuple(torch.cuda.get_device_capability(device)) >= BF16_CAPABILITY


def precision_note(precision: str, device: str) -> str | None:
    """What to tell the user about this precision here: bf16 on a CPU that only emulates it."""
    if precision != "bf16" or device.startswith("cuda"):
        return None
    if set(NATIVE_BF16) & set(cpu_isa()):
        return None
    return ("this CPU has no native bf16 (avx512_bf16 or amx_bf16): torch emulates bf16 here, which is slower than "
            "fp32; --precision bf16 pays off only where it is native")


class Precision:
    """The autocast context, the weight step with loss scaling, and α's scaled gradients of one run."""

    def __init__(self, name: str, device: torch.device):
        self.name = name
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")

    @property
    def reduced(self) -> bool:
        return self.name != "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward and loss's context: autocast to the run's dtype, or nothing in fp32."""
        if not self.reduced:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.name])

    def weight_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor],
                    clip: float) -> None:
        """Backward, unscale, clip the gradient norm, step (skipped by the scaler on overflow), update the scale."""
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def grads(self, loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor | None] | None:
        """∇loss with respect to `params` (None where unused), unscaled; None when a scaled gradient overflowed
        (and then the scale is backed off, as after an overflowing weight step)."""
        if not self.scaler.is_enabled():
            return list(torch.autograd.grad(loss, params, allow_unused=True))
        scaled = self.scaler.scale(loss)  # also creates the scale before the first weight step
        scale = self.scaler.get_scale()
        grads = torch.autograd.grad(scaled, params, allow_unused=True)
        out = [None if g is None else g.float() / scale for g in grads]
        if any(g is not None and not torch.isfinite(g).all() for g in out):
            self.scaler.update(new_scale=scale * self.scaler.get_backoff_factor())
            return None
        return out

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state (scale, growth tracker), saved with the checkpoint under fp16."""
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: Any) -> None:
        """The loss scaler's state read back from a checkpoint, checked first (ValueError when it is not one)."""
        if self.scaler.is_enabled():
            self.scaler.load_state_dict(check_scaler_state(state))


def check_scaler_state(state: Any) -> dict[str, Any]:
    """A GradScaler state from disk: exactly its keys, a finite positive scale, growth > 1, 0 < backoff < 1, a
    positive integer interval and a tracker in [0, interval); else ValueError."""
    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(state, dict) or set(state) != SCALER_KEYS:
        raise ValueError("the loss scaler's state has other keys")
    ok = (num(state["scale"]) and state["scale"] > 0 and num(state["growth_factor"]) and state["growth_factor"] > 1
          and num(state["backoff_factor"]) and 0 < state["backoff_factor"] < 1 and whole(state["growth_interval"])
          and state["growth_interval"] > 0 and whole(state["_growth_tracker"])
          and 0 <= state["_growth_tracker"] < state["growth_interval"])
    if not ok:
        raise ValueError("the loss scaler's state is out of range")
    return state
