"""The backend conformance kit (`lpm_zoo.backends.testing`): the built-in CPU backends pass it check by check, and a
deliberately broken toy backend fails it with one line naming the check, for each way of breaking it."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.backends.testing import (
    CHECKS,
    REPEAT_TOLERANCE,
    BackendUnavailable,
    ConformanceError,
    check_backend,
    run_check,
)
from lpm_zoo.backends.timing import host_times
from lpm_zoo.errors import LpmError


# --- the built-in backends ---------------------------------------------------------------------------
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("backend", ["torch", "ort"])
def test_builtin_cpu_backends_pass_each_check(backend, check):
    cls = type(get_backend(backend))
    ok, why = cls().available("cpu")
    if not ok:
        pytest.skip(f"{backend} not usable here: {why}")
    run_check(check, cls, "cpu")


def test_check_backend_runs_every_check_and_accepts_an_instance():
    check_backend(type(get_backend("ort")))
    check_backend(get_backend("torch"), "cpu")


def test_unknown_check_and_non_backend_are_refused():
    with pytest.raises(LpmError, match="unknown conformance check 'nope'; known: interface"):
        run_check("nope", type(get_backend("torch")))
    with pytest.raises(ConformanceError, match=r"check_backend\[interface\] .* is not a lpm_zoo.backends.base.Backend subclass"):
        check_backend(object)


# --- a toy backend that passes, and broken variants of it ------------------------------------------------
class Toy(Backend):
    """A minimal correct backend: eager torch on the CPU (what a plugin author writes first)."""

    name = "toy"
    devices = ("cpu",)
    model_format = "torch"
    library = ()

    def available(self, device: str = "cpu") -> tuple[bool, str]:
        return True, ""

    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1, **opts: Any) -> Prepared:
        import torch

        if opts:
            raise LpmError(f"toy backend: unknown option(s) {', '.join(opts)}")
        self.check(device)
        torch.set_num_threads(threads)

        def run() -> Any:
            with torch.inference_mode():
                return model(example_input)

        return Prepared(run, output=lambda: self.transform(run().numpy()),
                        info={"device_kind": "cpu", "threads": threads})

    def transform(self, y: np.ndarray) -> np.ndarray:
        return y

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        return host_times(prepared.run, n, clock)

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        return {"toy": "1.0.0"}


def test_the_correct_toy_backend_passes():
    check_backend(Toy)


class _Unnamed(Toy):
    name = ""


class _UnknownDevice(Toy):
    devices = ("tpu",)


class _DeviceList(Toy):
    devices = ["cpu"]


class _BadFormat(Toy):
    model_format = "tflite"


class _PathOption(Toy):
    options = {"cache_file": (Path, "a path is not an option")}


class _NotATuple(Toy):
    def available(self, device="cpu"):
        return "yes"


class _NoReason(Toy):
    def available(self, device="cpu"):
        return False, ""


class _Unavailable(Toy):
    def available(self, device="cpu"):
        return False, "toy accelerator not plugged in"


class _SetInInfo(Toy):
    def runtime_info(self, device="cpu"):
        return {"toy": "1.0.0", "ops": {"conv"}}


class _NoVersion(Toy):
    def runtime_info(self, device="cpu"):
        return {"toy": "installed"}


class _WrongLibraryVersion(Toy):
    library = ("numpy",)  # installed, but runtime_info records another version


class _AcceptsAnyDevice(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        return Toy.prepare(self, model, example_input, "cpu", threads, **opts)


class _ValueErrorOnDevice(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        if device != "cpu":
            raise ValueError("bad device")
        return Toy.prepare(self, model, example_input, device, threads, **opts)


class _TracebackOnDevice(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        if device != "cpu":
            raise LpmError("Exception from src/core.cpp:117:\nno such device\n")
        return Toy.prepare(self, model, example_input, device, threads, **opts)


class _IgnoresOptions(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        return Toy.prepare(self, model, example_input, device, threads)


class _Inexact(Toy):
    def transform(self, y):
        return y + 1e-2 * max(float(np.abs(y).max()), 1.0)


class _InexactImagenet(Toy):
    def transform(self, y):  # only the ImageNet network's 7 classes
        return y + 1e-2 * max(float(np.abs(y).max()), 1.0) if y.shape[-1] == 7 else y


class _NaNOutput(Toy):
    def transform(self, y):
        return y * np.nan


class _WrongShape(Toy):
    def transform(self, y):
        return y[:, :-1]


class _NoOutput(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        p = Toy.prepare(self, model, example_input, device, threads, **opts)
        return Prepared(p.run, info=p.info)


class _ShortTimes(Toy):
    def run_timed(self, prepared, n, clock="wall"):
        return host_times(prepared.run, n - 1, clock)


class _ZeroTimes(Toy):
    def run_timed(self, prepared, n, clock="wall"):
        return [0.0] * n


class _NaNTimes(Toy):
    def run_timed(self, prepared, n, clock="wall"):
        return [math.nan] * n


class _Unrepeatable(Toy):
    calls = 0

    def run_timed(self, prepared, n, clock="wall"):
        type(self).calls += 1
        return [1.0 if type(self).calls % 2 else 10.0] * n


class _WorkerThread(Toy):
    """Runs the model on another thread and waits: the calling thread's CPU clock sees nothing."""

    def run_timed(self, prepared, n, clock="wall"):
        def run():
            t = threading.Thread(target=lambda: [prepared.run() for _ in range(3)])
            t.start()
            t.join()

        return host_times(run, n, clock)


class _NoThreads(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        p = Toy.prepare(self, model, example_input, device, threads, **opts)
        p.info.pop("threads")
        return p


class _NotJsonInfo(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        p = Toy.prepare(self, model, example_input, device, threads, **opts)
        p.info["handle"] = object()
        return p


class _NotJsonNetwork(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        p = Toy.prepare(self, model, example_input, device, threads, **opts)
        p.network["program"] = object()
        return p


class _SettingAsNetworkFact(Toy):
    def prepare(self, model, example_input, device="cpu", threads=1, **opts):
        p = Toy.prepare(self, model, example_input, device, threads, **opts)
        p.network["threads"] = p.info["threads"]
        return p


BROKEN = [  # (toy variant, the check that must fail, what its one line must say)
    (_Unnamed, "interface", "name is empty"),
    (_UnknownDevice, "interface", r"devices lists unknown kind\(s\) \['tpu'\]"),
    (_DeviceList, "interface", "devices must be a non-empty tuple"),
    (_BadFormat, "interface", "model_format must be one of torch, onnx, got 'tflite'"),
    (_PathOption, "interface", r"options\['cache_file'\] must be \(bool\|int\|float\|str, help\)"),
    (_NotATuple, "available", r"available\(\) must return \(bool, str\), got 'yes'"),
    (_NoReason, "available", "returned False without a reason"),
    (_SetInInfo, "runtime_info", "not JSON-serialisable"),
    (_NoVersion, "runtime_info", "names no version"),
    (_WrongLibraryVersion, "runtime_info", "does not record the installed .* of numpy"),
    (_AcceptsAnyDevice, "bad_device", r"prepare\(device='npu'\) did not fail"),
    (_ValueErrorOnDevice, "bad_device", "raised ValueError, not lpm_zoo.errors.LpmError: 'bad device'"),
    (_TracebackOnDevice, "bad_device", "failed in more than one line"),
    (_IgnoresOptions, "unknown_option", "accepted an option it does not know"),
    (_Inexact, "equivalence_cifar", r"output differs from torch eager by .* \(fp32 tolerance"),
    (_InexactImagenet, "equivalence_imagenet", "output differs from torch eager"),
    (_NaNOutput, "equivalence_cifar", "NaN or infinite"),
    (_WrongShape, "equivalence_cifar", r"output shape \[2, 9\], torch's is \[2, 10\]"),
    (_NoOutput, "equivalence_cifar", r"Prepared.output\(\) is not available"),
    (_ShortTimes, "timing", r"returned 8 times, not a list of 9"),
    (_ZeroTimes, "timing", "returned 0.0: every time must be a positive finite number"),
    (_NaNTimes, "timing", "returned nan"),
    (_Unrepeatable, "timing", f"differ by more than {REPEAT_TOLERANCE:g}x"),
    (_WorkerThread, "timing", "the run happens on another thread"),
    (_NoThreads, "identity", r"must record the threads asked for \(1\), got None"),
    (_NotJsonInfo, "identity", "Prepared.info is not JSON-serialisable"),
    (_NotJsonNetwork, "identity", "Prepared.network is not JSON-serialisable"),
    (_SettingAsNetworkFact, "identity", "Prepared.network repeats the settings 'threads' of Prepared.info"),
]


@pytest.mark.parametrize("cls,check,message", BROKEN, ids=[f"{c.__name__}-{k}" for c, k, _ in BROKEN])
def test_a_broken_toy_backend_fails_the_kit_at_its_check_in_one_line(cls, check, message):
    for runner in (lambda: run_check(check, cls), lambda: check_backend(cls)):
        with pytest.raises(ConformanceError) as e:
            runner()
        line = str(e.value)
        assert "\n" not in line
        who = cls.__name__ if cls is _Unnamed else "toy"
        assert line.startswith(f"check_backend[{check}] {who} on cpu: "), line  # check_backend stops at this one too
        assert e.match(message)
    assert isinstance(e.value, AssertionError)  # a failed check reads as a test failure in pytest


def test_every_check_has_a_broken_toy():
    assert {check for _, check, _ in BROKEN} == set(CHECKS)


def test_an_unavailable_backend_runs_the_static_checks_then_says_why_it_cannot_run_the_rest():
    with pytest.raises(BackendUnavailable, match="not usable on cpu here: toy accelerator not plugged in"):
        check_backend(_Unavailable)
    run_check("interface", _Unavailable)
    run_check("available", _Unavailable)
    with pytest.raises(BackendUnavailable):
        run_check("timing", _Unavailable)
    with pytest.raises(ConformanceError, match=r"check_backend\[interface\]"):  # static failures still come first
        check_backend(type("_BadAndAbsent", (_Unavailable,), {"model_format": "x"}))


def test_options_reach_every_prepare():
    seen = []

    class Optioned(Toy):
        def prepare(self, model, example_input, device="cpu", threads=1, flavour=None, **opts):
            if device == "cpu":
                seen.append(flavour)
            return Toy.prepare(self, model, example_input, device, threads, **opts)

    check_backend(Optioned, flavour="sour")
    assert seen and set(seen) == {"sour"}
