"""Timing helpers the backends share: host clocks (wall or thread CPU time) and CUDA events on a side stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lpm_zoo.errors import LpmError

CLOCKS = ("wall", "thread")


def host_times(run: Callable[[], Any], n: int, clock: str = "wall") -> list[float]:
    """Milliseconds of each of `n` calls of `run`, on the wall clock or the calling thread's CPU clock."""
    if clock not in CLOCKS:
        raise LpmError(f"unknown clock {clock!r}; known: {', '.join(CLOCKS)}")
    now = time.perf_counter_ns if clock == "wall" else time.thread_time_ns
    times = []
    for _ in range(n):
        t0 = now()
        run()
        times.append((now() - t0) / 1e6)
    return times


def side_stream(device: Any) -> Any:
    """A new CUDA stream on `device` that first waits for the work queued on the device's current stream (the
    copies of weights and inputs made there), so nothing run on it can read them half-copied."""
    import torch

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    return stream


def cuda_event_times(run: Callable[[], Any], stream: Any, n: int) -> list[float]:
    """Per-run milliseconds between CUDA events recorded on `stream` around each of `n` calls of `run`."""
    import torch

    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    with torch.cuda.stream(stream):
        for start, end in events:
            start.record(stream)
            run()
            end.record(stream)
    stream.synchronize()
    return [start.elapsed_time(end) for start, end in events]
