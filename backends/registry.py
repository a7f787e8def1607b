"""The backend registry: `@register_backend("name")`, `get_backend`, `list_backends`, plus entry-point plugins.

A backend turns a model (a `torch.nn.Module` or an ONNX graph) and an example input into
something it can run (`prepare`), then times it (`run_timed`). Backends know nothing about
DARTS. Third-party packages add a backend without touching this repo by naming a `Backend`
subclass in the entry-point group `lpm_zoo.backends`; torch, ort and trt register the same way.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from lpm_zoo.errors import LpmError
from lpm_zoo.registry import Registry

GROUP = "lpm_zoo.backends"

B = TypeVar("B", bound=type)


class Prepared:
    """A model made ready to run on one device by one backend; `close()` frees what it holds.

    `run` is one forward pass, not synchronised (the backend's `run_timed` does that); `stream`
    is the device stream a GPU backend times on (None on CPUs); `keep` holds objects that must
    live as long as the prepared model (sessions, bindings, engines, buffers).
    """

    __slots__ = ("run", "info", "stream", "keep", "_output", "_close")

    def __init__(self, run: Callable[[], Any], output: Callable[[], Any] | None = None, info: dict | None = None,
                 close: Callable[[], None] | None = None, stream: Any = None, keep: tuple = ()):
        self.run = run
        self.info: dict[str, Any] = dict(info or {})
        self.stream = stream
        self.keep = keep
        self._output = output
        self._close = close

    def output(self) -> Any:
        """The output of one forward pass as a numpy array (for checks, never timed)."""
        if self._output is None:
            raise LpmError("this prepared model cannot return its output")
        return self._output()

    def close(self) -> None:
        """Free what the prepared model holds (idempotent)."""
        if self._close is not None:
            self._close()
            self._close = None
        self.keep = ()


class Backend(ABC):
    """A runtime that prepares a model for a device and times forward passes (milliseconds)."""

    name: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # device kinds it supports: "cpu", "cuda"
    model_format: ClassVar[str] = "torch"  # what `prepare` wants best: "torch" (nn.Module) or "onnx" (ModelProto)

    @abstractmethod
    def available(self, device: str = "cpu") -> tuple[bool, str]:
        """(usable on `device` here?, the reason when not)."""

    @abstractmethod
    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1, **opts: Any) -> Prepared:
        """Make `model` ready to run `example_input` on `device` (export, build, compile, upload)."""

    @abstractmethod
    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        """Run `prepared` `n` times; each run's time in ms, synchronised with the device.

        `clock` is "wall" or, for single-threaded CPU runs, "thread" (CPU time of the calling
        thread: time spent descheduled by other processes on a shared machine is not counted).
        Device backends time with device events whatever `clock` says.
        """

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        """Library versions and what the runtime really uses on `device` (recorded with each measurement)."""
        return {}

    def check(self, device: str) -> None:
        """Raise LpmError, with the reason, when this backend cannot run on `device` here."""
        from backends.device import parse_device

        kind, _ = parse_device(device)
        if kind not in self.devices:
            raise LpmError(f"backend {self.name!r} does not run on {kind}; it supports: {', '.join(self.devices)}")
        ok, why = self.available(device)
        if not ok:
            raise LpmError(f"backend {self.name!r} is not usable on {device}: {why}")


CLOCKS = ("wall", "thread")


# the built-ins are also entry points; importing them directly keeps them there without pip install
_REGISTRY: Registry[type[Backend]] = Registry(
    "backend", group=GROUP, accepts=Backend, attr="name",
    builtins=("backends.ort_backend", "backends.torch_backend", "backends.trt_backend"))


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


def installed_distributions(names: tuple[str, ...]) -> list[str]:
    """Which of the distributions `names` are installed (several that ship one module overwrite each other's files)."""
    from importlib import metadata

    found = []
    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def module_clash(names: tuple[str, ...], module: str, fix: str) -> str:
    """Why the installed `module` cannot be trusted when several of the distributions `names` ship it ("" when
    at most one does), with `fix` after the uninstall of all of them."""
    found = installed_distributions(names)
    if len(found) < 2:
        return ""
    return (f"{' and '.join(found)} are installed together and overwrite each other's {module} module; keep one: "
            f"pip uninstall -y {' '.join(found)}{fix}")


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator: register a `Backend` subclass under `name`."""
    return _REGISTRY.register(name)


def list_backends() -> list[str]:
    """Names of every registered backend (built-in and plugins)."""
    return _REGISTRY.names()


def get_backend(name: str) -> Backend:
    """A fresh instance of backend `name`; an unknown name gets an error listing the known ones."""
    return _REGISTRY.get(name)()
