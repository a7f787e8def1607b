"""The backend conformance kit: `check_backend(BackendClass)` checks a `lpm_zoo.backends.base.Backend` against its contract.

Like scikit-learn's `check_estimator`: a plugin's own tests call it, and each check that fails raises
`ConformanceError` (an AssertionError) with one line naming the check and what was wrong, e.g.

    check_backend[timing] openvino on cpu: run_timed returned 4 times for n=5

Without pytest, `lpm backends --check NAME` runs every check (`run_checks`) and prints one line each.
A class that sets no `name` is named as the registry names it: by its installed entry point.

The checks, in order (`CHECKS`; `run_check(name, ...)` runs one, for pytest parametrisation):

- `interface`: `name` non-empty, `devices` a non-empty tuple of known device kinds, `model_format`
  "torch" or "onnx";
- `available`: `available(device)` returns (bool, str), with a non-empty reason when False;
- `runtime_info`: a non-empty, JSON-serialisable dict naming the runtime's version (a value such
  as "2026.4.1"; where the class names its `library` distributions, that installed version);
- `bad_device`: `prepare` on a device kind it does not support, and on a device that does not
  exist, fails with `lpm_zoo.errors.LpmError` in one non-empty line;
- `unknown_option`: `prepare(..., no_such_option=1)` fails with an LpmError in one line;
- `equivalence_cifar`, `equivalence_imagenet`: the output of a fixed small random DARTS network
  (NetworkCIFAR C=8, 5 cells, 32x32, batch 2; NetworkImageNet C=8, 3 cells, 224x224, batch 1;
  random weights and BatchNorm statistics) equals PyTorch eager's on the same weights within fp32
  tolerance (largest difference <= 1e-4 x the largest output magnitude, at least 1e-4);
- `timing`: on a fixed network, `run_timed(prepared, n)` returns n positive, finite milliseconds,
  and two medians of 9 runs are within `REPEAT_TOLERANCE` (3x) of each other in at least one of
  `REPEAT_ATTEMPTS` (3) tries, on the clock the protocol uses (a CPU thread's clock on a CPU, with one
  thread; the wall clock elsewhere). This is deliberately generous: the kit must never flake on a
  noisy shared 2-core VM (there, two wall-clock medians of the same network a second apart were once
  1.7 and 7.8 ms), and it catches a clock that is wrong (zero, negative, NaN, the wrong count, a
  value that jumps between calls), not one that is slow; timings are never compared with fixed numbers.
  On a CPU with one thread it also checks that the thread clock sees the run: the calling thread's
  CPU time is at least `THREAD_SHARE` (5%) of the wall time of the same runs (a backend that runs the
  graph on a worker thread must time on the wall clock whatever `clock` says, or the protocol's thread
  clock would measure nothing);
- `identity`: `Prepared.info` is a JSON-serialisable dict with `device_kind` and, on a CPU, the
  `threads` asked for: with `runtime_info` it is the runtime identity stored in every measurement;
  `Prepared.network` (facts of one prepared network, stored as the row's `network`) is JSON-serialisable
  and shares no key with `info`.

Checks that run a model need the backend usable on `device`: where `available()` says it is not,
`check_backend` runs the static checks, then raises `BackendUnavailable` with the backend's reason
(not a failure: a test can `pytest.skip(str(e))`). Extra keyword arguments go to every `prepare`.
"""

from __future__ import annotations

import copy
import json
import math
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.onnx_builder import build_onnx
from lpm_zoo.backends.protocol import OPTION_NAME
from lpm_zoo.backends.registry import GROUP
from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.registry import entry_points
from lpm_zoo.sampler import sample_cells
from lpm_zoo.space import Genotype

#: the device kinds a backend may list in `devices`
KNOWN_DEVICE_KINDS = ("cpu", "cuda")
#: the model formats a backend may ask for
MODEL_FORMATS = ("torch", "onnx")
#: two medians of the same network's runs may differ by at most this factor (generous on purpose: no flakes)
REPEAT_TOLERANCE = 3.0
#: attempts at two agreeing medians before the repeatability check fails (a slow spell may hit one attempt)
REPEAT_ATTEMPTS = 3
#: single-threaded CPU runs: the calling thread's CPU time must be at least this share of the wall time
THREAD_SHARE = 0.05
#: fp32 equivalence: largest |backend - torch| <= this x max(largest |torch output|, 1)
FP32_TOLERANCE = 1e-4
#: timed runs per median in the `timing` check
TIMING_RUNS = 9

_VERSION = re.compile(r"\d+\.\d+")


class ConformanceError(AssertionError):
    """A backend broke its contract: one line naming the check and what was wrong."""


class BackendUnavailable(Exception):
    """The backend is not usable on the device here, so the checks that run a model could not run (not a failure)."""


def _fail(check: str, backend: Any, device: str, what: str) -> ConformanceError:
    name = getattr(backend, "name", "") or type(backend).__name__
    line = " ".join(f"check_backend[{check}] {name} on {device}: {what}".split())
    return ConformanceError(line)


def _instance(backend_cls: type[Backend] | Backend) -> Backend:
    if isinstance(backend_cls, Backend):
        b = backend_cls
    elif isinstance(backend_cls, type) and issubclass(backend_cls, Backend):
        b = backend_cls()
    else:
        raise ConformanceError(f"check_backend[interface] {clip(backend_cls, 80)} is not a lpm_zoo.backends.base.Backend subclass")
    if not getattr(b, "name", ""):  # as the registry names it: the entry point's name (the class needs none)
        b.name = entry_point_name(type(b))
    return b


def entry_point_name(cls: type) -> str:
    """The name an installed `lpm_zoo.backends` entry point gives class `cls` ("" when none names it)."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    return next((ep.name for ep in entry_points(GROUP) if ep.value.replace(" ", "") == target), "")


def _one_line(e: BaseException) -> bool:
    text = str(e)
    return bool(text.strip()) and "\n" not in text.strip()


def _usable(b: Backend, device: str) -> None:
    ok, why = b.available(device)
    if not ok:
        raise BackendUnavailable(f"backend {b.name!r} is not usable on {device} here: {why}")


# --- static checks -------------------------------------------------------------------------------
def check_interface(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`name`, `devices` and `model_format` are what the profiler and the registry expect."""
    if not isinstance(b.name, str) or not b.name.strip():
        raise _fail("interface", b, device, f"name is empty: no installed entry point in group {GROUP} names "
                                             f"{type(b).__module__}:{type(b).__qualname__} (install its distribution, "
                                             "e.g. pip install -e ., or set the class attribute `name`)")
    devices = b.devices
    if not isinstance(devices, tuple) or not devices or not all(isinstance(d, str) for d in devices):
        raise _fail("interface", b, device, f"devices must be a non-empty tuple of device kinds, got {clip(devices, 80)}")
    unknown = [d for d in devices if d not in KNOWN_DEVICE_KINDS]
    if unknown:
        raise _fail("interface", b, device, f"devices lists unknown kind(s) {clip(unknown, 80)}; known: "
                                             f"{', '.join(KNOWN_DEVICE_KINDS)}")
    if b.model_format not in MODEL_FORMATS:
        raise _fail("interface", b, device, f"model_format must be one of {', '.join(MODEL_FORMATS)}, got "
                                             f"{clip(b.model_format, 40)}")
    if not isinstance(b.options, dict):
        raise _fail("interface", b, device, f"options must be a dict of name: (type, help), got {clip(b.options, 60)}")
    for name, spec in b.options.items():
        if not (isinstance(name, str) and OPTION_NAME.fullmatch(name) and isinstance(spec, tuple)
                and len(spec) in (2, 4) and spec[0] in (bool, int, float, str) and isinstance(spec[1], str)
                and spec[1].strip() and (len(spec) == 2 or (
                    isinstance(spec[2], tuple) and all(type(c) is spec[0] for c in spec[2])
                    and isinstance(spec[3], tuple) and all(d in devices for d in spec[3])))):
            raise _fail("interface", b, device, f"options[{clip(name, 40)}] must be (bool|int|float|str, help) or "
                                                 "an Option (choices of that type, devices the backend runs on), "
                                                 f"got {clip(spec, 60)}")


def check_available(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`available(device)` returns (bool, str), with the reason when False."""
    got = b.available(device)
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], bool) and isinstance(got[1], str)):
        raise _fail("available", b, device, f"available() must return (bool, str), got {clip(got, 80)}")
    if not got[0] and not got[1].strip():
        raise _fail("available", b, device, "available() returned False without a reason")


def check_runtime_info(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`runtime_info(device)` is a non-empty JSON-serialisable dict naming the runtime's version."""
    _usable(b, device)
    info = b.runtime_info(device)
    if not isinstance(info, dict) or not info:
        raise _fail("runtime_info", b, device, f"runtime_info() must be a non-empty dict, got {clip(info, 80)}")
    try:
        json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _fail("runtime_info", b, device, f"runtime_info() is not JSON-serialisable: {clip(str(e), 120)}") from None
    values = [v for v in info.values() if isinstance(v, str)]
    if not any(_VERSION.search(v) for v in values):
        raise _fail("runtime_info", b, device, "runtime_info() names no version (a value like '1.2.3' of the runtime)")
    installed = _library_versions(b)
    if installed and not any(v in s for v in installed for s in values):
        raise _fail("runtime_info", b, device, f"runtime_info() does not record the installed "
                                                f"{' or '.join(installed)} of {'/'.join(getattr(b, 'library', ()))}")


def _library_versions(b: Backend) -> list[str]:
    found = []
    for dist in getattr(b, "library", ()) or ():
        try:
            found.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            continue
    return found


def check_bad_device(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`prepare` on an unsupported or missing device fails with an LpmError in one line."""
    model, x = _network(b, "cifar")
    bad = ["npu"]
    bad.append("cuda:4095" if "cuda" in b.devices else "cuda")
    for where in bad:
        try:
            p = b.prepare(model, x, where, **opts)
        except LpmError as e:
            if not _one_line(e):
                raise _fail("bad_device", b, device, f"prepare(device={where!r}) failed in more than one line (or none): "
                                                      f"{clip(str(e), 80)}") from None
            continue
        except Exception as e:  # noqa: BLE001 - any other type is the failure being reported
            first = str(e).splitlines()[0] if str(e) else ""
            raise _fail("bad_device", b, device, f"prepare(device={where!r}) raised {type(e).__name__}, not "
                                                  f"lpm_zoo.errors.LpmError: {clip(first, 80)}") from None
        _close(p)
        raise _fail("bad_device", b, device, f"prepare(device={where!r}) did not fail")


def check_unknown_option(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`prepare` with an option it does not know fails with an LpmError in one line."""
    _usable(b, device)
    model, x = _network(b, "cifar")
    try:
        p = b.prepare(model, x, device, **opts, no_such_option=1)
    except LpmError as e:
        if not _one_line(e):
            raise _fail("unknown_option", b, device, "prepare(no_such_option=1) failed in more than one line") from None
        return
    except Exception as e:  # noqa: BLE001
        raise _fail("unknown_option", b, device, f"prepare(no_such_option=1) raised {type(e).__name__}, not "
                                                  "lpm_zoo.errors.LpmError") from None
    _close(p)
    raise _fail("unknown_option", b, device, "prepare(no_such_option=1) accepted an option it does not know")


# --- checks that run a model ---------------------------------------------------------------------
def _check_equivalence(setting: str, b: Backend, device: str, **opts: Any) -> None:
    import numpy as np

    check = f"equivalence_{setting}"
    _usable(b, device)
    model, x = _network(b, setting)
    want = _torch_output(setting)
    p = b.prepare(model, x, device, **opts)
    try:
        got = np.asarray(p.output())
    except LpmError as e:
        raise _fail(check, b, device, f"Prepared.output() is not available: {clip(str(e), 80)}") from None
    finally:
        _close(p)
    if got.shape != want.shape:
        raise _fail(check, b, device, f"output shape {list(got.shape)}, torch's is {list(want.shape)}")
    if not np.all(np.isfinite(got)):
        raise _fail(check, b, device, "output has NaN or infinite values")
    diff = float(np.abs(got.astype(np.float64) - want).max())
    bound = FP32_TOLERANCE * max(float(np.abs(want).max()), 1.0)
    if diff > bound:
        raise _fail(check, b, device, f"output differs from torch eager by {diff:.3g} (fp32 tolerance {bound:.3g})")


def check_equivalence_cifar(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """A fixed random CIFAR DARTS network's output equals torch eager's within fp32 tolerance."""
    _check_equivalence("cifar", b, device, **opts)


def check_equivalence_imagenet(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """A fixed random ImageNet DARTS network's output equals torch eager's within fp32 tolerance."""
    _check_equivalence("imagenet", b, device, **opts)


def check_timing(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """Times are n positive finite ms, two medians agree within REPEAT_TOLERANCE, the thread clock sees the run."""

    _usable(b, device)
    model, x = _network(b, "cifar")
    p = b.prepare(model, x, device, threads=1, **opts)
    clock = "thread" if parse_device(device)[0] == "cpu" else "wall"  # the protocol's clock for one CPU thread
    try:
        b.run_timed(p, 3, "wall")  # warm-up
        if parse_device(device)[0] == "cpu":
            t0 = time.perf_counter_ns()
            times = b.run_timed(p, TIMING_RUNS, "thread")
            wall_ms = (time.perf_counter_ns() - t0) / 1e6
            if _all_positive(times) and sum(times) < THREAD_SHARE * wall_ms:
                raise _fail("timing", b, device, f"with clock='thread' the calling thread's CPU time is {sum(times):.3g} ms "
                                                  f"of {wall_ms:.3g} ms wall: the run happens on another thread, so time "
                                                  "it on the wall clock whatever `clock` says")
            _check_times(b, device, times, TIMING_RUNS, "thread")
        for _attempt in range(REPEAT_ATTEMPTS):
            medians = []
            for _ in range(2):
                times = b.run_timed(p, TIMING_RUNS, clock)
                _check_times(b, device, times, TIMING_RUNS, clock)
                medians.append(statistics.median(times))
            if max(medians) <= REPEAT_TOLERANCE * min(medians):
                break
        else:
            raise _fail("timing", b, device, f"two medians of {TIMING_RUNS} runs of one network differ by more than "
                                              f"{REPEAT_TOLERANCE:g}x in each of {REPEAT_ATTEMPTS} attempts (last: "
                                              f"{medians[0]:.4g} and {medians[1]:.4g} ms, clock={clock!r})")
    finally:
        _close(p)


def _all_positive(times: Any) -> bool:
    return isinstance(times, list) and all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0 for t in times)


def _check_times(b: Backend, device: str, times: Any, n: int, clock: str) -> None:
    if not isinstance(times, list) or len(times) != n:
        count = len(times) if hasattr(times, "__len__") else clip(times, 40)
        raise _fail("timing", b, device, f"run_timed(n={n}, clock={clock!r}) returned {count} times, not a list of {n}")
    for t in times:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise _fail("timing", b, device, f"run_timed(clock={clock!r}) returned {clip(t, 40)}: every time must be a "
                                              "positive finite number of ms")


def check_identity(b: Backend, device: str = "cpu", **opts: Any) -> None:
    """`Prepared.info` is JSON-serialisable and says the device kind and, on a CPU, the threads asked for."""

    _usable(b, device)
    model, x = _network(b, "cifar")
    p = b.prepare(model, x, device, threads=1, **opts)
    try:
        if not isinstance(p, Prepared):
            raise _fail("identity", b, device, f"prepare() must return a lpm_zoo.backends.base.Prepared, got {type(p).__name__}")
        info, network = p.info, p.network
    finally:
        _close(p)
    try:
        json.dumps({**b.runtime_info(device), **info}, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _fail("identity", b, device, f"Prepared.info is not JSON-serialisable: {clip(str(e), 120)}") from None
    try:
        json.dumps(network, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _fail("identity", b, device, f"Prepared.network is not JSON-serialisable: {clip(str(e), 120)}") from None
    both = sorted(set(network) & set(info))
    if both:
        raise _fail("identity", b, device, f"Prepared.network repeats the settings {clip(', '.join(both), 80)} of "
                                            "Prepared.info: a value is either a setting or a fact of one network")
    kind = parse_device(device)[0]
    if info.get("device_kind") != kind:
        raise _fail("identity", b, device, f"Prepared.info must record device_kind={kind!r}, got "
                                            f"{clip(info.get('device_kind'), 40)}")
    if kind == "cpu" and info.get("threads") != 1:
        raise _fail("identity", b, device, f"Prepared.info must record the threads asked for (1), got "
                                            f"{clip(info.get('threads'), 40)}")


#: every check, in the order `check_backend` runs them: name -> function(backend, device, **opts)
CHECKS: dict[str, Callable[..., None]] = {
    "interface": check_interface,
    "available": check_available,
    "runtime_info": check_runtime_info,
    "bad_device": check_bad_device,
    "unknown_option": check_unknown_option,
    "equivalence_cifar": check_equivalence_cifar,
    "equivalence_imagenet": check_equivalence_imagenet,
    "timing": check_timing,
    "identity": check_identity,
}
#: the checks that need nothing but the class (they run even where the backend is not usable)
STATIC_CHECKS = ("interface", "available")


def run_check(name: str, backend_cls: type[Backend] | Backend, device: str = "cpu", **opts: Any) -> None:
    """Run one named check of `CHECKS`; ConformanceError on failure, BackendUnavailable when it cannot run here."""
    if name not in CHECKS:
        raise LpmError(f"unknown conformance check {clip(name, 40)}; known: {', '.join(CHECKS)}")
    b = _instance(backend_cls)
    if name not in STATIC_CHECKS:
        check_interface(b, device)
    CHECKS[name](b, device, **opts)


def run_checks(backend_cls: type[Backend] | Backend, device: str = "cpu",
               **opts: Any) -> Iterator[tuple[str, str, str]]:
    """Every check of `CHECKS`, each run whatever the others gave: (check, "pass" | "fail" | "not run", why).

    What `lpm backends --check NAME` prints, without pytest. A check that raises something other than
    ConformanceError (a bug in the backend) fails with its type and first line; one that cannot run here
    (the backend not usable on `device`) is "not run", with the backend's reason.
    """
    b = _instance(backend_cls)
    for name, check in CHECKS.items():
        try:
            if name not in STATIC_CHECKS:
                check_interface(b, device)
            check(b, device, **opts)
        except ConformanceError as e:
            yield name, "fail", str(e).partition(": ")[2] or str(e)
        except BackendUnavailable as e:
            yield name, "not run", str(e)
        except Exception as e:  # noqa: BLE001 - a backend's own bug is this check's failure, in one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            yield name, "fail", f"raised {type(e).__name__}: {clip(first, 120)}"
        else:
            yield name, "pass", ""


def check_backend(backend_cls: type[Backend] | Backend, device: str = "cpu", **opts: Any) -> None:
    """Run every check of `CHECKS` on `backend_cls` for `device` (options go to `prepare`); raises on the first failure."""
    b = _instance(backend_cls)
    for name in STATIC_CHECKS:
        CHECKS[name](b, device, **opts)
    _usable(b, device)
    for name, check in CHECKS.items():
        if name not in STATIC_CHECKS:
            check(b, device, **opts)


# --- the fixed networks ----------------------------------------------------------------------------
_SETTINGS = {  # setting -> (network kwargs, batch, resolution)
    "cifar": ({"C": 8, "layers": 5}, 2, 32),
    "imagenet": ({"C": 8, "layers": 3, "num_classes": 7}, 1, 224),
}
_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def randomize_batchnorm(model: Any, generator: Any) -> None:
    """Give every BatchNorm2d of `model` random statistics and affine parameters drawn from `generator` (a
    `torch.Generator`), so that a backend folding BatchNorm into the convolutions is really tested."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)


def _fixed(setting: str) -> tuple[Any, Any, Any]:
    """(torch module, ONNX graph, input) of the fixed network of `setting` (built once per process)."""
    with _LOCK:
        if setting not in _CACHE:
            import torch

            from lpm_zoo.networks import build_network

            normal, reduce = sample_cells(2, seed=26)
            g = Genotype(normal, reduce=reduce)
            kw, batch, res = _SETTINGS[setting]
            torch.manual_seed(26)
            model = build_network(g, setting, **kw).eval()
            gen = torch.Generator().manual_seed(26)
            randomize_batchnorm(model, gen)  # non-trivial statistics: BN folding is really tested
            onnx_model = build_onnx(g, setting, batch=batch, resolution=res, state_dict=model.state_dict(), **kw)
            x = torch.randn(batch, 3, res, res, generator=gen)
            _CACHE[setting] = (model, onnx_model, x)
        return _CACHE[setting]


def _network(b: Backend, setting: str) -> tuple[Any, Any]:
    """The fixed network of `setting` in the backend's format (a fresh copy of the module), and its input."""

    model, onnx_model, x = _fixed(setting)
    return (onnx_model if b.model_format == "onnx" else copy.deepcopy(model)), x.clone()


def _torch_output(setting: str) -> Any:
    import torch

    model, _, x = _fixed(setting)
    with torch.inference_mode():
        return model(x).double().numpy()


def _close(p: Any) -> None:
    close = getattr(p, "close", None)
    if callable(close):
        close()
