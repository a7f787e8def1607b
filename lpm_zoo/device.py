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


def cuda_missing(index: int = 0) -> str:
    """Why CUDA device `index` cannot be used here ("" when it can); imports torch only when called."""
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__})"
    if index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s)"
    return ""
