"""OpenVINO's CPU plugin as an lpm-zoo backend: the project's ONNX graph, compiled for `CPU` with fixed settings.

The settings are part of what is measured, so each is set explicitly (never left to the plugin's
defaults, which depend on the CPU) and recorded with every measurement (`Prepared.info`, which the
profiler stores in each row's `runtime`): inference threads (default 1, like `ort`), streams (1),
performance hint (LATENCY), CPU pinning (off: the OS schedules the one thread, as for `ort` and
`torch`) and the inference precision. On CPUs with native bf16 (AMX, AVX512_BF16) the CPU plugin
runs fp32 models in bf16 unless told otherwise, so the default here is `f32`; `bf16` is an explicit
option (`prepare(..., precision="bf16")`; for the `lpm` commands `--backend-option precision=bf16`, which also
records it in every row's protocol and needs a `--device-name` of its own), and
what is recorded is the precision the compiled model *reports* (`inference_precision`), beside the one
asked for (`inference_precision_requested`): on a CPU without bf16 a bf16 request compiles to f32.

Timing: with one inference thread and one stream, `InferRequest.infer()` runs the graph on the calling
thread (checked in the plugin's tests: its thread CPU time is the bulk of the wall time), so the
project's thread clock (`--clock auto` with one thread) measures it; with more threads the protocol
times on the wall clock.
"""

from __future__ import annotations

from typing import Any

from lpm_zoo.backends.base import Backend, Option, Prepared
from lpm_zoo.backends.device import parse_device
from lpm_zoo.backends.timing import host_times
from lpm_zoo.errors import LpmError, clip

#: inference precisions this backend accepts (INFERENCE_PRECISION_HINT); the first is the default
PRECISIONS = ("f32", "bf16")
DEFAULT_PRECISION = PRECISIONS[0]
#: fixed compile settings (besides threads and precision), recorded with every measurement
STREAMS = 1
HINT = "LATENCY"
PINNING = False


def _ov() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise LpmError("openvino is not installed; pip install -e plugins/lpm-openvino (or: pip install openvino)") from None
    return ov


def ov_version() -> str:
    """The installed OpenVINO's version ("2026.4.1"), without importing it ("" when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return ""


def _check_precision(value: Any, where: str = "precision") -> str:
    if not isinstance(value, str) or value not in PRECISIONS:
        raise LpmError(f"openvino backend: {where} {clip(value, 40)} is not one of {', '.join(PRECISIONS)}")
    return value


class OpenVinoBackend(Backend):
    """An ONNX graph compiled by OpenVINO for its CPU plugin (one stream, LATENCY hint, fixed threads and precision)."""

    name = "openvino"
    devices = ("cpu",)
    model_format = "onnx"
    library = ("openvino",)
    options = {"precision": Option(str, "INFERENCE_PRECISION_HINT: f32 (default) or bf16 (CPUs with native bf16)",
                                   choices=PRECISIONS)}

    def available(self, device: str = "cpu") -> tuple[bool, str]:
        try:
            kind, _ = parse_device(device)
        except LpmError as e:
            return False, str(e)
        if kind not in self.devices:
            return False, f"the openvino backend runs on cpu only (OpenVINO's CPU plugin), not {kind}"
        if not ov_version():
            return False, "openvino not installed (pip install -e plugins/lpm-openvino)"
        try:
            import openvino as ov

            if "CPU" not in ov.Core().available_devices:
                return False, f"openvino {ov.__version__} finds no CPU device here"
        except Exception as e:  # noqa: BLE001 - a broken install raises its own types; say it in one line
            return False, f"openvino does not load: {clip(str(e).splitlines()[0] if str(e) else type(e).__name__, 160)}"
        return True, ""

    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1,
                precision: str | None = None, **opts: Any) -> Prepared:
        import numpy as np

        if opts:
            raise LpmError(f"openvino backend: unknown option(s) {clip(', '.join(map(str, opts)), 120)}; "
                           "known: precision")
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
            raise LpmError(f"openvino backend: threads must be an integer from 1 to 1024, got {clip(threads, 40)}")
        asked = DEFAULT_PRECISION if precision is None else _check_precision(precision)
        self.check(device)
        ov = _ov()
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": STREAMS, "PERFORMANCE_HINT": HINT,
                  "INFERENCE_PRECISION_HINT": asked, "ENABLE_CPU_PINNING": PINNING}
        try:
            compiled = core.compile_model(core.read_model(model=_model_bytes(model, example_input)), "CPU", config)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with a multi-line trace
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from")]
            raise LpmError(f"openvino could not compile the model for CPU: {clip(lines[-1] if lines else e, 200)}") from None
        x = np.ascontiguousarray(_to_numpy(example_input), dtype=np.float32)
        want = [d.get_length() if d.is_static else -1 for d in compiled.input(0).get_partial_shape()]
        if len(want) != x.ndim or any(w not in (-1, s) for w, s in zip(want, x.shape)):
            raise LpmError(f"the model expects input {want}, the example input is {list(x.shape)}")
        request = compiled.create_infer_request()
        tensor = ov.Tensor(x, shared_memory=True)  # the input lives in `x`: no copy per run
        request.set_input_tensor(tensor)

        def run() -> None:
            request.infer()

        def output() -> Any:
            request.infer()
            return np.array(request.get_output_tensor().data, copy=True)

        got = compiled.get_property("INFERENCE_PRECISION_HINT")
        info = {"device_kind": "cpu", "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                "num_streams": int(compiled.get_property("NUM_STREAMS")),
                "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
                "cpu_pinning": bool(compiled.get_property("ENABLE_CPU_PINNING")),
                "inference_precision": got.get_type_name() if hasattr(got, "get_type_name") else str(got),
                "inference_precision_requested": asked}
        return Prepared(run, output=output, info=info, keep=(core, compiled, request, tensor, x))

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        return host_times(prepared.run, n, clock)

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        ov = _ov()
        core = ov.Core()
        return {"openvino": ov_version(), "openvino_build": ov.get_version(),
                "ov_device_name": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
                "ov_capabilities": sorted(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
                "num_streams": STREAMS, "performance_hint": HINT, "cpu_pinning": PINNING,
                "inference_precision_default": DEFAULT_PRECISION}


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _model_bytes(model: Any, example_input: Any) -> bytes:
    """Serialised ONNX from a ModelProto or bytes (an nn.Module is exported with torch.onnx, slowly)."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    if hasattr(model, "forward"):
        from lpm_zoo.backends.onnx_export import to_onnx

        return to_onnx(model, example_input).SerializeToString()
    raise LpmError(f"the openvino backend takes an ONNX ModelProto or its bytes, not {type(model).__name__}")
