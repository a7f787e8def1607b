"""The backend interface: `Backend` (prepare a model for a device, time forward passes) and `Prepared`.

A backend turns a model (a `torch.nn.Module` or an ONNX graph) and an example input into
something it can run (`prepare`), then times it (`run_timed`). Backends know nothing about
DARTS. `backends.testing.check_backend` checks a subclass against this contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError


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
    library: ClassVar[tuple[str, ...]] = ()  # pip distributions of the runtime: `lpm backends` shows the installed version
    #: the `prepare` options that change what is measured, settable with `--backend-option NAME=VALUE` and recorded
    #: in every row's protocol (`backend_options`): name -> (type: bool, int, float or str; what it does)
    options: ClassVar[dict[str, tuple[type, str]]] = {}

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
        kind, _ = parse_device(device)
        if kind not in self.devices:
            raise LpmError(f"backend {self.name!r} does not run on {kind}; it supports: {', '.join(self.devices)}")
        ok, why = self.available(device)
        if not ok:
            raise LpmError(f"backend {self.name!r} is not usable on {device}: {why}")
