"""TensorRT 8.6 through 11: ONNX -> engine (`build_serialized_network`, a timing cache per TensorRT version
and GPU kept on disk), timed with `execute_async_v3` between CUDA events on a side stream.

One backend for every supported release; the installed version decides what differs between them:
the network-creation flag (EXPLICIT_BATCH in 8.x; 10 makes explicit batch the only mode and 11 drops the
flag), precision (BuilderFlag.FP16 in 8.6 and 10; 11 has none, networks are strongly typed, so fp16 is
refused there) and the GPUs it runs on (8.6 is the last release for Pascal). The name-based I/O API
(`set_tensor_address`, `execute_async_v3`) exists from 8.5, so it is the same everywhere. TF32 is switched
off, so an fp32 engine computes in fp32 on Ampere and newer too. Every TensorRT call that reports failure by
returning None or False is checked, and fails in one line.

CUDA memory, streams and events come from torch, so no pycuda / cuda-python is needed. Written from the
TensorRT 8.6, 10 and 11 Python API references and binding sources; its version dispatch, flags and error
paths are tested against recording fakes (tests/fakes_trt.py); nothing here has run it on a GPU.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.device import cuda_missing, parse_device, short_gpu_name
from lpm_zoo.backends.installs import module_clash
from lpm_zoo.backends.ort_backend import model_bytes
from lpm_zoo.backends.registry import register_backend
from lpm_zoo.backends.timing import cuda_event_times, side_stream
from lpm_zoo.errors import LpmError
from lpm_zoo.notes import note
from lpm_zoo.paths import cache_dir

_CACHE_LOCK = threading.Lock()
_LOGGERS: dict[int, Any] = {}  # one trt.Logger per process (keyed by module, so a test's fake gets its own)

#: (first TensorRT version, last one or None for "to date", lowest compute capability, highest or None),
#: from NVIDIA's support matrices: 8.6 runs on SM 5.0 to 9.0 and is the last for Pascal; 10.0 to 10.4 on
#: SM 7.0+; 10.5 drops Volta (7.5+); 10.8 adds Blackwell; 11 keeps 7.5+.
GPU_SUPPORT: tuple[tuple[tuple[int, int], tuple[int, int] | None, tuple[int, int], tuple[int, int] | None], ...] = (
    ((8, 6), (8, 6), (5, 0), (9, 0)),
    ((10, 0), (10, 4), (7, 0), (9, 0)),
    ((10, 5), (10, 7), (7, 5), (9, 0)),
    ((10, 8), None, (7, 5), None),
)
#: what installs each row's TensorRT (pyproject's extras; the CUDA 12 builds)
_INSTALL = {(8, 6): "pip install 'lpm-zoo[trt-pascal]' (TensorRT 8.6)",
            (10, 0): "pip install 'tensorrt-cu12>=10.0,<10.5'",
            (10, 5): "pip install 'tensorrt-cu12>=10.5,<10.8'",
            (10, 8): "pip install 'lpm-zoo[trt]' (TensorRT 10.8+ / 11)"}


#: distributions that each install the `tensorrt` Python module (8.6's, and 10+'s per CUDA major)
TRT_BINDINGS = ("tensorrt-bindings", "tensorrt-cu11-bindings", "tensorrt-cu12-bindings", "tensorrt-cu13-bindings")


def trt_clash() -> str:
    """Why the installed `tensorrt` module cannot be trusted ("" when one distribution provides it)."""
    return module_clash(TRT_BINDINGS, "tensorrt", ", then install one TensorRT (README, Support)")


def _trt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise LpmError("tensorrt is not installed (pip install 'lpm-zoo[trt]' on a CUDA 12 machine with a Turing or "
                       "newer GPU, 'lpm-zoo[trt-pascal]' for Pascal)") from None
    return trt


def trt_version(text: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string such as '8.6.1' or '10.16.1.11'."""
    try:
        major, minor = (int(p) for p in text.split(".")[:2])
    except ValueError:
        raise LpmError(f"cannot read the TensorRT version {text[:40]!r}") from None
    return major, minor


def _fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def version_gap(version: tuple[int, int]) -> str:
    """Why this backend cannot drive TensorRT `version` ("" when it can: 8.6, 10.x, 11.x)."""
    if (8, 6) <= version < (9, 0) or (10, 0) <= version < (12, 0):
        return ""
    return f"TensorRT {_fmt(version)} is not supported here: use 8.6 (Pascal), 10 or 11"


def gpu_gap(version: tuple[int, int], capability: tuple[int, int]) -> str:
    """Why TensorRT `version` does not run on a GPU of compute `capability` ("" when it does), naming the
    TensorRT that would."""
    row = max((r for r in GPU_SUPPORT if r[0] <= version), key=lambda r: r[0])
    if row[2] <= capability and (row[3] is None or capability <= row[3]):
        return ""
    cc = _fmt(capability)
    need = _fmt(row[2]) + ("+" if row[3] is None else f" to {_fmt(row[3])}")
    fits = [r for r in GPU_SUPPORT if r[2] <= capability and (r[3] is None or capability <= r[3])]
    if not fits:
        return f"TensorRT {_fmt(version)} runs on compute capability {need}, not {cc}; no TensorRT this backend drives does"
    best = fits[-1]
    last = "" if best[1] is None else f" (the last: {_fmt(best[1])})"
    return f"TensorRT {_fmt(version)} runs on compute capability {need}, not {cc}; one that does{last}: {_INSTALL[best[0]]}"


def default_timing_cache(trt_version_text: str, gpu: str, capability: tuple[int, int]) -> Path:
    """The timing-cache file of one TensorRT version on one GPU model, in $LPM_TRT_TIMING_CACHE (a folder) or
    `lpm_zoo.paths.cache_dir()`: a cache is only valid for the TensorRT and GPU that wrote it."""
    env = os.environ.get("LPM_TRT_TIMING_CACHE")
    folder = Path(env) if env else cache_dir()
    return folder / f"trt-timing-{trt_version_text}-{short_gpu_name(gpu)}-sm{capability[0]}{capability[1]}.cache"


def _logger(trt: Any) -> Any:
    """The process's one TensorRT logger: TensorRT keeps the first it is given, and warns about any other."""
    key = id(trt)
    if key not in _LOGGERS:
        _LOGGERS[key] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[key]


def _made(what: str, factory: Any, *args: Any) -> Any:
    """`factory(*args)`, or one LpmError line when TensorRT returns None (pybind11 raises TypeError for that)."""
    try:
        obj = factory(*args)
    except (TypeError, RuntimeError):
        obj = None
    if obj is None:
        raise LpmError(f"TensorRT could not create its {what} (a CUDA driver or memory problem? see the TensorRT "
                       "log above)")
    return obj


def network_flags(trt: Any, version: tuple[int, int]) -> int:
    """`create_network`'s flags: EXPLICIT_BATCH in 8.x (the ONNX parser needs it); 10 and 11 take 0."""
    if version < (10, 0):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def onnx_low_precision(data: bytes) -> bool:
    """Whether an ONNX graph holds fp16 / bf16 tensors (inputs, outputs, weights, casts): it computes in them."""
    import onnx

    low = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    graph = onnx.load_from_string(data).graph
    typed = [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)]
    typed += [t.data_type for t in graph.initializer]
    casts = [a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"]
    return any(t in low for t in (*typed, *casts))


def set_precision(trt: Any, config: Any, version: tuple[int, int], fp16: bool, graph_low: bool) -> dict[str, Any]:
    """Set the builder's precision flags for `version`: FP16 where asked (8.6, 10), TF32 off; what is recorded."""
    if version >= (11, 0) and (fp16 or graph_low):
        what = "fp16=True" if fp16 else "an fp16/bf16 ONNX graph"
        raise LpmError(f"TensorRT {_fmt(version)} removed BuilderFlag.FP16 (networks are strongly typed): {what} is "
                       "not timed here; time fp32, or fp16 with TensorRT 8.6 or 10")
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    config.clear_flag(trt.BuilderFlag.TF32)  # on by default: fp32 convolutions would round to TF32 on Ampere+
    return {"precision": "fp16" if fp16 or graph_low else "fp32", "tf32": False}


def load_timing_cache(config: Any, path: Path) -> str:
    """Give `config` the timing cache in `path`: 'reused', 'new' (no file) or 'rejected' (another TensorRT or GPU
    wrote it: an empty one is used)."""
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return "reused" if blob else "new"
    if not blob:
        raise LpmError("TensorRT could not create an empty timing cache")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise LpmError("TensorRT could not create an empty timing cache")
    return "rejected"


def save_timing_cache(config: Any, path: Path) -> bool:
    """Write `config`'s timing cache to `path` through a temporary file of this process's own and a rename, so
    two builders never write one file at once and a killed build leaves no torn cache; False when not saved."""
    cache = config.get_timing_cache()
    data = cache.serialize() if cache is not None else None
    if data is None:
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        note(f"TensorRT timing cache not saved to {path} ({e.strerror}); the next build times its tactics again")
        return False
    return True


def build_engine(trt: Any, data: bytes, *, fp16: bool, workspace_mb: int, cache_path: Path) -> tuple[Any, dict]:
    """A serialized engine from ONNX bytes, with the timing cache in `cache_path`; (engine bytes, what to record)."""
    version = trt_version(trt.__version__)
    logger = _logger(trt)
    builder = _made("builder", trt.Builder, logger)
    network = _made("network", builder.create_network, network_flags(trt, version))
    parser = _made("ONNX parser", trt.OnnxParser, network, logger)
    if not parser.parse(data):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LpmError(f"TensorRT could not parse the ONNX graph: {errs[:500]}")
    config = _made("builder config", builder.create_builder_config)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    info = set_precision(trt, config, version, fp16, onnx_low_precision(data))
    with _CACHE_LOCK:
        t0 = time.perf_counter()
        state = load_timing_cache(config, cache_path)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise LpmError("TensorRT failed to build an engine for this graph (see the TensorRT log above)")
        build_s = time.perf_counter() - t0
        saved = save_timing_cache(config, cache_path)
    return serialized, {**info, "tensorrt": trt.__version__, "timing_cache": str(cache_path),
                        "timing_cache_state": state, "timing_cache_saved": saved, "build_s": round(build_s, 3)}


def load_engine(trt: Any, serialized: Any) -> tuple[Any, Any, Any]:
    """(runtime, engine, execution context) from a serialized engine, each checked."""
    runtime = _made("runtime", trt.Runtime, _logger(trt))
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise LpmError("TensorRT could not deserialize the engine it built (see the TensorRT log above)")
    context = engine.create_execution_context()
    if context is None:
        raise LpmError("TensorRT could not create an execution context (out of GPU memory?)")
    return runtime, engine, context


def bind_io(trt: Any, engine: Any, context: Any, example_input: Any, device: Any) -> tuple[dict[str, Any], str]:
    """A buffer on `device` for every I/O tensor (the input a copy of `example_input`), its address set in
    `context`; (buffers by name, the output's name)."""
    import torch

    buffers: dict[str, Any] = {}
    out_name = None
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(engine.get_tensor_shape(name))
        dtype = torch_dtype(trt, engine.get_tensor_dtype(name))
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            buf = example_input.to(device=device, dtype=dtype).contiguous()
            if tuple(buf.shape) != shape:
                raise LpmError(f"the engine expects input {shape}, the example input is {tuple(buf.shape)}")
        else:
            buf = torch.empty(shape, dtype=dtype, device=device)
            out_name = name
        buffers[name] = buf
        if not context.set_tensor_address(name, buf.data_ptr()):
            raise LpmError(f"TensorRT refused the address of I/O tensor {name!r}")
    if out_name is None:
        raise LpmError("the TensorRT engine has no output tensor")
    return buffers, out_name


@register_backend("trt")
class TrtBackend(Backend):
    """A TensorRT engine (8.6, 10 or 11) built from an ONNX graph (fp32 unless `fp16=True`, TF32 off)."""

    devices = ("cuda",)
    model_format = "onnx"
    library = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11")
    # timing_cache (a path) is a prepare() argument but not an option: a path is never taken from a stored row
    options = {"fp16": (bool, "let the builder pick FP16 kernels (default off: fp32, TF32 off)"),
               "workspace_mb": (int, "the builder's workspace limit in MiB (default 1024)")}

    def available(self, device: str = "cuda") -> tuple[bool, str]:
        kind, index = parse_device(device)
        if kind != "cuda":
            return False, "TensorRT runs on CUDA devices only"
        try:
            import tensorrt as trt
        except ImportError:
            return False, "tensorrt not installed"
        try:
            import torch
        except ImportError:
            return False, "torch not installed (used for CUDA memory and events)"
        why = trt_clash() or cuda_missing(index)
        if not why:
            version = trt_version(trt.__version__)
            why = version_gap(version) or gpu_gap(version, tuple(torch.cuda.get_device_capability(index)))
        return not why, why

    def prepare(self, model: Any, example_input: Any, device: str = "cuda", threads: int = 1,
                fp16: bool = False, workspace_mb: int = 1024, timing_cache: str | None = None,
                **opts: Any) -> Prepared:
        if opts:
            raise LpmError(f"trt backend: unknown option(s) {', '.join(opts)}; known: fp16, workspace_mb, timing_cache")
        self.check(device)
        trt = _trt()
        import torch


        _, index = parse_device(device)
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
        cache_path = Path(timing_cache) if timing_cache else default_timing_cache(
            trt.__version__, torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))
        serialized, info = build_engine(trt, model_bytes(model, example_input), fp16=fp16,
                                        workspace_mb=workspace_mb, cache_path=cache_path)
        runtime, engine, context = load_engine(trt, serialized)
        buffers, out_name = bind_io(trt, engine, context, example_input, dev)
        stream = side_stream(dev)  # waits for the input's copy, queued on the current stream

        def run() -> None:
            if not context.execute_async_v3(stream.cuda_stream):
                raise LpmError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

        def output() -> Any:
            with torch.cuda.stream(stream):
                run()
            stream.synchronize()
            return buffers[out_name].float().cpu().numpy()

        return Prepared(run, output=output, info={"device_kind": "cuda", **info, "stream": "side"},
                        stream=stream, keep=(engine, context, buffers, runtime))

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        return cuda_event_times(prepared.run, prepared.stream, n)

    def runtime_info(self, device: str = "cuda") -> dict[str, Any]:
        trt = _trt()
        import torch

        return {"tensorrt": trt.__version__, "torch": torch.__version__, "cuda": torch.version.cuda}


def torch_dtype(trt: Any, dt: Any) -> Any:
    """The torch dtype of a TensorRT I/O tensor type (those every supported TensorRT has, and bf16/int64 of 10+)."""
    import torch

    pairs = (("float32", torch.float32), ("float16", torch.float16), ("bf16", torch.bfloat16),
             ("int32", torch.int32), ("int64", torch.int64), ("int8", torch.int8), ("uint8", torch.uint8),
             ("bool", torch.bool))
    for name, tdt in pairs:
        if hasattr(trt, name) and dt == getattr(trt, name):
            return tdt
    raise LpmError(f"TensorRT I/O tensor type {dt} is not supported here")
