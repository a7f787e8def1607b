"""A recording fake of the `tensorrt` Python module, and fake CUDA facts for torch, for tests without a GPU.

These are FAKES: they run no engine and time nothing. They mirror the parts of the TensorRT 8.6, 10 and
11 Python APIs that backends/trt_backend.py calls (names and signatures from NVIDIA's binding sources,
python/src/infer/pyCore.cpp at v8.6.1, v10.16 and 11.1), and record every call, so tests can check
version dispatch, builder flags, the timing cache and the error paths. What differs between versions
here is what differs there: 8.6 and 10 have BuilderFlag.FP16, 11 does not; 8.x and 10 have
NetworkDefinitionCreationFlag.EXPLICIT_BATCH, 11 does not. Nothing a test of these fakes shows is a
GPU result.
"""

from __future__ import annotations

import types
from typing import Any


class _Enum:
    """Members as attributes with int values (pybind11 enums convert with int())."""

    def __init__(self, **members: int) -> None:
        self.__dict__.update(members)


class FakeCache:
    """An ITimingCache: its bytes say which TensorRT and GPU wrote it."""

    def __init__(self, trt: FakeTrt, blob: bytes) -> None:
        self.trt, self.blob = trt, bytes(blob) or trt.cache_key

    def serialize(self) -> bytes | None:
        return None if "serialize" in self.trt.fail else self.blob + b"+tactics"


class FakeConfig:
    """An IBuilderConfig recording flags, pool limits and the timing cache it is given."""

    def __init__(self, trt: FakeTrt) -> None:
        self.trt, self.cache = trt, None

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.trt.calls.append(("set_memory_pool_limit", pool, size))

    def set_flag(self, flag: int) -> None:
        self.trt.calls.append(("set_flag", flag))

    def clear_flag(self, flag: int) -> None:
        self.trt.calls.append(("clear_flag", flag))

    def create_timing_cache(self, blob: bytes) -> FakeCache | None:
        self.trt.calls.append(("create_timing_cache", bytes(blob)))
        return None if "create_timing_cache" in self.trt.fail else FakeCache(self.trt, blob)

    def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
        ok = cache.blob.startswith(self.trt.cache_key)  # another TensorRT's or GPU's cache is refused
        self.trt.calls.append(("set_timing_cache", cache.blob, ignore_mismatch, ok))
        if ok:
            self.cache = cache
        return ok

    def get_timing_cache(self) -> FakeCache | None:
        return None if "get_timing_cache" in self.trt.fail else self.cache


class FakeParser:
    def __init__(self, trt: FakeTrt) -> None:
        self.trt, self.num_errors = trt, 0

    def parse(self, data: bytes) -> bool:
        self.trt.calls.append(("parse", len(data)))
        if "parse" in self.trt.fail:
            self.num_errors = 1
            return False
        return True

    def get_error(self, i: int) -> str:
        return "In node 3 (Conv): unsupported"


class FakeBuilder:
    def __init__(self, trt: FakeTrt) -> None:
        self.trt = trt

    def create_network(self, flags: int = 0) -> object:
        self.trt.calls.append(("create_network", flags))
        return object()

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self.trt)

    def build_serialized_network(self, network: object, config: FakeConfig) -> bytes | None:
        self.trt.calls.append(("build_serialized_network",))
        return None if "build" in self.trt.fail else b"engine"


class FakeContext:
    def __init__(self, trt: FakeTrt) -> None:
        self.trt, self.addresses = trt, {}

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return "set_tensor_address" not in self.trt.fail

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.trt.calls.append(("execute_async_v3", stream_handle))
        return "execute" not in self.trt.fail


class FakeEngine:
    """An engine with one input (1, 3, 8, 8) and one output (1, 10), both float32."""

    io = (("input", (1, 3, 8, 8), "INPUT"), ("output", (1, 10), "OUTPUT"))

    def __init__(self, trt: FakeTrt) -> None:
        self.trt, self.num_io_tensors = trt, len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def _row(self, name: str) -> tuple:
        return next(r for r in self.io if r[0] == name)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._row(name)[1]

    def get_tensor_dtype(self, name: str) -> Any:
        return self.trt.float32

    def get_tensor_mode(self, name: str) -> Any:
        return getattr(self.trt.TensorIOMode, self._row(name)[2])

    def create_execution_context(self) -> FakeContext | None:
        return None if "context" in self.trt.fail else FakeContext(self.trt)


class FakeRuntime:
    def __init__(self, trt: FakeTrt) -> None:
        self.trt = trt

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        return None if "deserialize" in self.trt.fail else FakeEngine(self.trt)


class FakeTrt(types.ModuleType):
    """`tensorrt` of one version: `fail` names calls that return None / False (as TensorRT does on failure)."""

    def __init__(self, version: str, gpu: str = "p100") -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple] = []
        self.fail: set[str] = set()
        self.loggers = 0
        self.cache_key = f"trt{version}/{gpu}".encode()
        major = int(version.split(".")[0])
        flags = {"TF32": 7} if major >= 11 else {"FP16": 0, "TF32": 7}
        self.BuilderFlag = _Enum(**flags)
        creation = {"STRONGLY_TYPED": 1} if major >= 11 else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
        self.NetworkDefinitionCreationFlag = _Enum(**(creation if major >= 10 else {"EXPLICIT_BATCH": 0}))
        self.MemoryPoolType = _Enum(WORKSPACE=0)
        self.TensorIOMode = _Enum(NONE=0, INPUT=1, OUTPUT=2)
        for i, name in enumerate(("float32", "float16", "int8", "int32", "bool")):
            setattr(self, name, f"DataType.{name.upper()}#{i}")
        trt = self

        class Logger:
            WARNING = 2

            def __init__(self, severity: int = 2) -> None:
                trt.loggers += 1

        self.Logger = Logger

    def Builder(self, logger: Any) -> FakeBuilder:  # noqa: N802 - TensorRT's name
        if "builder" in self.fail:  # pybind11 when createInferBuilder returns nullptr
            raise TypeError("pybind11::init(): factory function returned nullptr")
        return FakeBuilder(self)

    def Runtime(self, logger: Any) -> FakeRuntime:  # noqa: N802
        return FakeRuntime(self)

    def OnnxParser(self, network: object, logger: Any) -> FakeParser:  # noqa: N802
        return FakeParser(self)


def fake_cuda(monkeypatch: Any, capability: tuple[int, int] = (6, 0), name: str = "Tesla P100-PCIE-16GB",
              arch_list: tuple[str, ...] = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")) -> None:
    """Make torch report one CUDA device of `capability` and a build with kernels for `arch_list` (a FAKE:
    nothing can run on it; default: a P100 and the arch list of torch's cu126 wheels)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch_list))
