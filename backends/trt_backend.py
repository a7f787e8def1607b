"""TensorRT 10/11: ONNX -> engine (`build_serialized_network`, a timing cache kept on disk across
architectures), timed with `execute_async_v3` between CUDA events on a side stream.

CUDA memory, streams and events come from torch, so no pycuda / cuda-python is needed.
Written from the TensorRT 10 Python API reference; nothing here can run it (no GPU).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from backends.device import cuda_missing, parse_device
from backends.registry import Backend, Prepared, cuda_event_times, register_backend
from lpm_zoo.errors import LpmError
from lpm_zoo.paths import cache_dir

_CACHE_LOCK = threading.Lock()


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise LpmError("tensorrt is not installed (pip install 'lpm-zoo[trt]' on a machine with CUDA)") from None
    return trt


def default_timing_cache() -> Path:
    """Where the timing cache lives between runs ($LPM_TRT_TIMING_CACHE, else in `lpm_zoo.paths.cache_dir()`)."""
    env = os.environ.get("LPM_TRT_TIMING_CACHE")
    return Path(env) if env else cache_dir() / "trt-timing.cache"


@register_backend("trt")
class TrtBackend(Backend):
    """A TensorRT engine built from an ONNX graph (fp32 unless `fp16=True`)."""

    devices = ("cuda",)
    model_format = "onnx"

    def available(self, device: str = "cuda") -> tuple[bool, str]:
        kind, index = parse_device(device)
        if kind != "cuda":
            return False, "TensorRT runs on CUDA devices only"
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return False, "tensorrt not installed"
        try:
            import torch  # noqa: F401  (presence check)
        except ImportError:
            return False, "torch not installed (used for CUDA memory and events)"
        why = cuda_missing(index)
        return not why, why

    def prepare(self, model: Any, example_input: Any, device: str = "cuda", threads: int = 1,
                fp16: bool = False, workspace_mb: int = 1024, timing_cache: str | None = None,
                **opts: Any) -> Prepared:
        if opts:
            raise LpmError(f"trt backend: unknown option(s) {', '.join(opts)}; known: fp16, workspace_mb, timing_cache")
        self.check(device)
        trt = _trt()
        import torch

        from backends.ort_backend import _model_bytes

        _, index = parse_device(device)
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(_model_bytes(model, example_input)):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise LpmError(f"TensorRT could not parse the ONNX graph: {errs}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        cache_path = Path(timing_cache) if timing_cache else default_timing_cache()
        with _CACHE_LOCK:
            blob = cache_path.read_bytes() if cache_path.is_file() else b""
            cache = config.create_timing_cache(blob)
            if cache is None and blob:  # a cache from another TensorRT version or GPU: start afresh
                cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise LpmError("TensorRT failed to build an engine for this graph (see the TensorRT log above)")
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(".tmp")
            tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))
            os.replace(tmp, cache_path)  # atomic: a killed build never leaves a torn cache
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(serialized)
        context = engine.create_execution_context()
        buffers: dict[str, Any] = {}
        out_name = None
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            dtype = _torch_dtype(trt, engine.get_tensor_dtype(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                buf = example_input.to(device=dev, dtype=dtype).contiguous()
                if tuple(buf.shape) != shape:
                    raise LpmError(f"the engine expects input {shape}, the example input is {tuple(buf.shape)}")
            else:
                buf = torch.empty(shape, dtype=dtype, device=dev)
                out_name = name
            buffers[name] = buf
            context.set_tensor_address(name, buf.data_ptr())
        stream = torch.cuda.Stream(dev)

        def run() -> None:
            if not context.execute_async_v3(stream.cuda_stream):
                raise LpmError("TensorRT execute_async_v3 failed")

        def output() -> Any:
            with torch.cuda.stream(stream):
                run()
            stream.synchronize()
            return buffers[out_name].float().cpu().numpy()

        return Prepared(run, output=output, info={"device_kind": "cuda", "fp16": fp16, "timing_cache": str(cache_path),
                                                  "stream": "side"},
                        stream=stream, keep=(engine, context, buffers, runtime))

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        return cuda_event_times(prepared.run, prepared.stream, n)

    def runtime_info(self, device: str = "cuda") -> dict[str, Any]:
        trt = _trt()
        import torch

        return {"tensorrt": trt.__version__, "torch": torch.__version__, "cuda": torch.version.cuda}


def _torch_dtype(trt: Any, dt: Any) -> Any:
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if dt not in table:
        raise LpmError(f"TensorRT I/O tensor type {dt} is not supported here")
    return table[dt]
