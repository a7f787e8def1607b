"""ONNX Runtime: CPU EP with fixed threads, CUDA EP with IO binding on the device; the providers really obtained
are checked, and on CUDA no node may fall back to the CPU (`session.disable_cpu_ep_fallback`), TF32 is off.

`onnxruntime` (CPU, extra `cpu`) and `onnxruntime-gpu` (CUDA, extra `gpu`) install the same module and
overwrite each other's files, so finding both installed is an error that says how to keep one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.device import cuda_missing, parse_device
from lpm_zoo.backends.installs import module_clash
from lpm_zoo.backends.onnx_export import to_onnx
from lpm_zoo.backends.registry import register_backend
from lpm_zoo.backends.timing import cuda_event_times, host_times, side_stream
from lpm_zoo.errors import LpmError

#: distributions that each install the `onnxruntime` module; two of them in one environment break it
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                     "onnxruntime-training")


def ort_clash() -> str:
    """Why the installed onnxruntime cannot be trusted ("" when one distribution provides it)."""
    return module_clash(ORT_DISTRIBUTIONS, "onnxruntime", " && pip install 'lpm-zoo[gpu]' (CUDA) or 'lpm-zoo[cpu]'")


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise LpmError("onnxruntime is not installed; pip install 'lpm-zoo[cpu]' (CPU) or 'lpm-zoo[gpu]' (CUDA 12: "
                       "onnxruntime-gpu)") from None
    clash = ort_clash()
    if clash:
        raise LpmError(clash)
    return ort


@register_backend("ort")
class OrtBackend(Backend):
    """An ONNX graph in an `onnxruntime.InferenceSession` (all graph optimisations, sequential execution)."""

    devices = ("cpu", "cuda")
    model_format = "onnx"
    library = ORT_DISTRIBUTIONS

    def available(self, device: str = "cpu") -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "onnxruntime not installed"
        clash = ort_clash()
        if clash:
            return False, clash
        kind, index = parse_device(device)
        if kind == "cpu":
            return True, ""
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return False, f"onnxruntime {ort.__version__} has no CUDA EP (pip install 'lpm-zoo[gpu]': onnxruntime-gpu, CUDA 12)"
        why = cuda_missing(index)
        return not why, why

    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1, **opts: Any) -> Prepared:
        import numpy as np

        if opts:
            raise LpmError(f"ort backend: unknown option(s) {', '.join(opts)}")
        ort = _ort()
        self.check(device)
        kind, index = parse_device(device)
        data = model_bytes(model, example_input)
        x = np.ascontiguousarray(_to_numpy(example_input), dtype=np.float32)
        stream = None if kind == "cpu" else _torch_stream(index)
        sess = _session(ort, data, kind, index, threads, stream)
        if kind == "cuda" and stream is None:  # never time a CUDA session with a host clock
            raise LpmError("ort on CUDA times with CUDA events on a torch stream: it needs torch built with CUDA")
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        if list(x.shape) != [d if isinstance(d, int) else -1 for d in inp.shape] and all(
                isinstance(d, int) for d in inp.shape):
            raise LpmError(f"the model expects input {inp.shape}, the example input is {list(x.shape)}")
        where, dev_id = ("cpu", 0) if kind == "cpu" else ("cuda", index)
        x_val = ort.OrtValue.ortvalue_from_numpy(x, where, dev_id)  # input lives on the device: no copy per run
        binding = sess.io_binding()
        binding.bind_ortvalue_input(inp.name, x_val)
        out_shape = out.shape if all(isinstance(d, int) for d in out.shape) else None
        if out_shape is not None:
            y_val = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, where, dev_id)
            binding.bind_ortvalue_output(out.name, y_val)
        else:
            binding.bind_output(out.name, where, dev_id)
        run_opts = ort.RunOptions()
        if kind == "cuda" and stream is not None:
            run_opts.add_run_config_entry("disable_synchronize_execution_providers", "1")

        def run() -> None:
            sess.run_with_iobinding(binding, run_opts)

        def output() -> Any:
            sess.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]

        info = {"providers": sess.get_providers(), "device_kind": kind, "threads": threads, "io_binding": True,
                "denormal_as_zero": True}
        if kind == "cuda":
            info.update(cpu_ep_fallback=False, precision="fp32", tf32=False)
        return Prepared(run, output=output, info=info,
                        stream=stream, keep=(sess, x_val, binding))

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        if prepared.stream is not None:
            return cuda_event_times(prepared.run, prepared.stream, n)
        return host_times(prepared.run, n, clock)

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        ort = _ort()
        return {"onnxruntime": ort.__version__, "ort_build_device": ort.get_device(),
                "ort_available_providers": ort.get_available_providers()}


def _session(ort: Any, data: bytes, kind: str, index: int, threads: int, stream: Any = None,
             profile_prefix: str | None = None) -> Any:
    """An InferenceSession of `data` on `kind`/`index`: sequential, all graph optimisations, denormals as zero; on
    CUDA the EP computes on `stream` with TF32 off, and a node the CUDA EP cannot run is an error, not a CPU node."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if kind == "cpu":
        providers: list[Any] = ["CPUExecutionProvider"]
    else:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        cuda_opts = {"device_id": str(index), "use_tf32": "0"}
        if stream is not None:  # ORT computes on our stream, so CUDA events recorded on it time the run
            cuda_opts.update(has_user_compute_stream="1", user_compute_stream=str(stream.cuda_stream))
        providers = [("CUDAExecutionProvider", cuda_opts)]  # listing the CPU EP too is refused with the fallback off
    try:
        sess = ort.InferenceSession(data, so, providers=providers)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(e)
        if "fallback to CPU EP has been explicitly disabled" in text or "disable_cpu_ep_fallback" in text:
            raise LpmError(f"onnxruntime would run nodes of this graph on the CPU instead of cuda:{index} (its CUDA EP "
                           "is missing or cannot run them): refusing to time a CPU run as a CUDA one; check the "
                           "onnxruntime-gpu, CUDA and cuDNN versions (README, Support)") from None
        raise
    got = sess.get_providers()
    if kind == "cuda" and (not got or got[0] != "CUDAExecutionProvider"):
        raise LpmError(f"asked onnxruntime for CUDA on cuda:{index} but the session got {got}: refusing to time "
                       "a CPU run as a CUDA one; check the onnxruntime-gpu, CUDA and cuDNN versions (README, Support)")
    return sess


def node_providers(model: Any, example_input: Any, device: str = "cpu") -> dict[str, int]:
    """How many of the graph's nodes each execution provider ran in one profiled run (the session as `prepare`
    makes it, Memcpy nodes included): on CUDA, any CPUExecutionProvider count is a node that left the GPU."""

    import numpy as np

    ort = _ort()
    kind, index = parse_device(device)
    x = np.ascontiguousarray(_to_numpy(example_input), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        sess = _session(ort, model_bytes(model, example_input), kind, index, 1,
                        profile_prefix=str(Path(tmp) / "ort-profile"))
        sess.run(None, {sess.get_inputs()[0].name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    nodes: dict[str, str] = {}
    for ev in events:
        args = ev.get("args") or {}
        if ev.get("cat") == "Node" and "provider" in args:
            nodes[str(args.get("node_index", ev.get("name")))] = args["provider"]
    counts: dict[str, int] = {}
    for provider in nodes.values():
        counts[provider] = counts.get(provider, 0) + 1
    return counts


def _torch_stream(index: int) -> Any:
    try:
        import torch

        return side_stream(torch.device("cuda", index)) if torch.cuda.is_available() else None
    except ImportError:
        return None


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def model_bytes(model: Any, example_input: Any) -> bytes:
    """Serialised ONNX from a ModelProto, bytes, or (slowly, via torch.onnx.export) an nn.Module."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()

    return to_onnx(model, example_input).SerializeToString()
