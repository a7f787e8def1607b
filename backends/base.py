"""The backend interface: `Backend` (prepare a model for a device, time forward passes) and `Prepared`.

A backend turns a model (a `torch.nn.Module` or an ONNX graph) and an example input into
something it can run (`prepare`), then times it (`run_timed`). Backends know nothing about
DARTS. `lpm_zoo.backends.testing.check_backend` checks a subclass against this contract.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError, printable
from lpm_zoo.timeouts import seconds_from_env

#: seconds a backend's `available()` may take before it counts as hung (a plugin's import of its runtime included)
PROBE_TIMEOUT_VAR, PROBE_TIMEOUT_S = "LPM_PLUGIN_TIMEOUT_S", 20.0


class Option(NamedTuple):
    """A `--backend-option` a backend declares: its type, what it does, the values it takes (empty: any of the
    type) and the device kinds it applies to (empty: every kind the backend runs on). Checked when parsed."""

    type: type
    help: str
    choices: tuple[Any, ...] = ()
    devices: tuple[str, ...] = ()


class Probe(NamedTuple):
    """What `Backend.probe` found: usable or not, why not, and whether `available()` itself failed (raised,
    hung or answered nonsense: a broken backend, to be reported, not just an absent runtime)."""

    ok: bool
    reason: str
    fault: bool = False


def probe_timeout() -> float:
    """`PROBE_TIMEOUT_VAR` seconds (0.1 to 600), else PROBE_TIMEOUT_S."""
    return seconds_from_env(PROBE_TIMEOUT_VAR, PROBE_TIMEOUT_S, 0.1, 600.0)


class Prepared:
    """A model made ready to run on one device by one backend; `close()` frees what it holds.

    `run` is one forward pass, not synchronised (the backend's `run_timed` does that); `stream`
    is the device stream a GPU backend times on (None on CPUs); `keep` holds objects that must
    live as long as the prepared model (sessions, bindings, engines, buffers). `info` holds the
    settings the backend really used (recorded with each measurement as its runtime identity: rows
    that differ in them are different measurements); `network` holds facts about this one prepared
    network (a program's size, what a delegate took), recorded with its row but never a setting.
    """

    __slots__ = ("run", "info", "network", "stream", "keep", "_output", "_close")

    def __init__(self, run: Callable[[], Any], output: Callable[[], Any] | None = None, info: dict | None = None,
                 close: Callable[[], None] | None = None, stream: Any = None, keep: tuple = (),
                 network: dict | None = None):
        self.run = run
        self.info: dict[str, Any] = dict(info or {})
        self.network: dict[str, Any] = dict(network or {})
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
    #: in every row's protocol (`backend_options`): name -> `Option` (or a (type, help) pair: any value, any device);
    #: type is bool, int, float or str
    options: ClassVar[dict[str, Option | tuple[type, str]]] = {}

    @classmethod
    def option_specs(cls) -> dict[str, Option]:
        """`options` as `Option`s (a (type, help) pair becomes one with no choices and every device)."""
        return {k: v if isinstance(v, Option) else Option(*v) for k, v in cls.options.items()}

    def check_options(self, options: dict[str, Any], device: str) -> None:
        """Refuse, in one LpmError line, an option this backend does not declare, a value not of its type or not
        one of its choices, or one for a device kind it does not apply to (`--backend-option`, a stored row's)."""
        specs = self.option_specs()
        kind, _ = parse_device(device)
        for name, value in options.items():
            spec = specs.get(name)
            if spec is None:
                known = ", ".join(f"{k} ({o.type.__name__})" for k, o in specs.items()) or "none"
                raise LpmError(f"backend {self.name!r} has no option {printable(name, 40)!r}; its options: {known}")
            said = printable(f"{name}={value}", 60)
            if type(value) is not spec.type and not (spec.type is float and type(value) is int):
                raise LpmError(f"backend option {said}: {name} takes a {spec.type.__name__}")
            if spec.choices and value not in spec.choices:
                raise LpmError(f"backend option {said}: {name} is one of {', '.join(map(str, spec.choices))}")
            if spec.devices and kind not in spec.devices:
                raise LpmError(f"backend option {said}: {name} applies to {', '.join(spec.devices)} devices only, "
                               f"not {kind}; leave it out on {kind}")

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
        ok, why, _ = self.probe(device)
        if not ok:
            raise LpmError(f"backend {self.name!r} is not usable on {device}: {why}")

    def probe(self, device: str = "cpu") -> Probe:
        """`available(device)`, isolated: run in a daemon thread with a timeout (`probe_timeout`), so a backend
        (a plugin) that raises, hangs or answers nonsense is a `Probe` with `fault` set, never a crash or a hang."""
        answer: list[Any] = []

        def ask() -> None:
            try:
                answer.append(self.available(device))
            except BaseException as e:  # noqa: BLE001 - a plugin's failure of any kind is reported, not raised
                answer.append(e)

        thread = threading.Thread(target=ask, name=f"lpm-available-{self.name}", daemon=True)
        thread.start()
        timeout = probe_timeout()
        thread.join(timeout)
        if not answer:
            return Probe(False, f"its available() gave no answer in {timeout:g} s ({PROBE_TIMEOUT_VAR})", True)
        got = answer[0]
        if isinstance(got, BaseException):
            return Probe(False, f"its available() raised {type(got).__name__}: {printable(got, 160)}", True)
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], bool)):
            return Probe(False, "its available() did not return (bool, reason)", True)
        return Probe(got[0], printable(got[1], 200))
