"""Device specs without torch: `cpu`, `cuda` or `cuda:N` parsed to (kind, index), and why CUDA is missing.

`backends` (runtimes, profiler) and `search` (search and training) both take a `--device`;
both parse it here, so they accept the same specs.
"""

from __future__ import annotations

import re

from lpm_zoo.errors import LpmError

_SPEC = re.compile(r"(cpu|cuda)(?::(\d+))?")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def plain_name(text: str) -> bool:
    """Whether `text` is a plain word (letters, digits, '.', '_', '-'; at most 64): what may name a
    device or a zoo entry, and so a file or directory."""
    return isinstance(text, str) and _PLAIN.fullmatch(text) is not None


def parse_device(device: str) -> tuple[str, int]:
    """('cpu'|'cuda', index) from 'cpu', 'cuda' or 'cuda:N' (case and surrounding spaces ignored)."""
    m = _SPEC.fullmatch(device.strip().lower())
    if not m or (m.group(1) == "cpu" and m.group(2)):
        raise LpmError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    return m.group(1), int(m.group(2) or 0)


def canonical_device(device: str) -> str:
    """`device` checked and written as torch takes it: lower case, no surrounding spaces."""
    parse_device(device)
    return device.strip().lower()


_ARCH = re.compile(r"(sm|compute)_(\d+)([af]?)")


def _arch_capability(digits: str) -> tuple[int, int]:
    """'60' -> (6, 0), '120' -> (12, 0): the last digit is the minor version."""
    return int(digits[:-1]), int(digits[-1])


def arch_runs_on(arch: str, capability: tuple[int, int]) -> bool:
    """Whether code built for `arch` (torch's `get_arch_list()` entry: sm_60, sm_90a, sm_100f, compute_90) runs
    on a device of `capability`: a cubin (sm_XY) on the same major at minor >= Y, PTX (compute_XY) on any
    capability >= X.Y (JIT-compiled), an arch-specific target (suffix a) on X.Y exactly."""
    m = _ARCH.fullmatch(arch.strip().lower())
    if not m:
        return False
    built = _arch_capability(m.group(2))
    if m.group(3) == "a":
        return built == capability
    if m.group(1) == "compute":
        return capability >= built
    return built[0] == capability[0] and capability[1] >= built[1]


def kernel_gap(capability: tuple[int, int], arch_list: list[str]) -> str:
    """Why a torch build with kernels for `arch_list` cannot run on a device of `capability` ("" when it can)."""
    if not arch_list or any(arch_runs_on(a, capability) for a in arch_list):
        return ""
    sm = f"sm_{capability[0]}{capability[1]}"
    return (f"compute capability {capability[0]}.{capability[1]} ({sm}) and this torch build has kernels for "
            f"{' '.join(arch_list)} only (every kernel would fail with \"no kernel image\"): it needs a torch "
            f"build whose torch.cuda.get_arch_list() names {sm} (README, Support)")


def cuda_missing(index: int = 0) -> str:
    """Why CUDA device `index` cannot be used here ("" when it can), its compute capability checked against
    the kernels torch was built with; imports torch only when called."""
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__})"
    if index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s)"
    gap = kernel_gap(tuple(torch.cuda.get_device_capability(index)), list(torch.cuda.get_arch_list()))
    return f"cuda:{index} ({torch.cuda.get_device_name(index)}) is {gap}; torch {torch.__version__}" if gap else ""
