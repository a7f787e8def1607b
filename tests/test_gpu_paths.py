"""The CUDA and TensorRT code paths, tested without a GPU (issue 25).

What runs here is real code against FAKES where a GPU would be: tests/fakes_trt.py is a recording stand-in
for the `tensorrt` module (8.6, 10, 11) and `fake_cuda` makes torch report a CUDA device it does not have.
So these tests check version dispatch, flags, the timing cache, refusals and error messages; none of them
times anything on a GPU or claims a GPU result. The tests that need real hardware are marked `gpu` / `trt`
(tests/test_backends.py) and skip with the reason here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes_trt import FakeTrt, fake_cuda

import lpm_zoo.backends.trt_backend as trtb
from lpm_zoo.backends.base import Prepared
from lpm_zoo.backends.protocol import GPU_WARMUP_S, Protocol, default_warmup_s, time_interleaved
from lpm_zoo.cli import main
from lpm_zoo.device import arch_runs_on, cuda_missing, kernel_gap
from lpm_zoo.errors import LpmError

ROOT = Path(__file__).resolve().parents[1]
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # torch's cu126 wheels
CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # 2.8+ cu128: Maxwell to Volta dropped


def _onnx_bytes(dtype: int = 1) -> bytes:
    """A one-node ONNX graph (Relu) whose tensors are of `dtype` (1 float32, 10 float16)."""
    from onnx import helper

    x = helper.make_tensor_value_info("x", dtype, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", dtype, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _build(trt: FakeTrt, tmp_path: Path, monkeypatch, fp16: bool = False, data: bytes | None = None,
           name: str = "t.cache") -> tuple:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trtb.build_engine(trt, data or _onnx_bytes(), fp16=fp16, workspace_mb=64, cache_path=tmp_path / name)


# --- the usable-GPU check: compute capability against torch.cuda.get_arch_list() --------------------------------
@pytest.mark.parametrize("arch,cap,runs", [
    ("sm_60", (6, 0), True), ("sm_60", (6, 1), True), ("sm_61", (6, 0), False), ("sm_70", (6, 0), False),
    ("sm_75", (8, 6), False), ("compute_75", (8, 6), True), ("compute_90", (8, 9), False),
    ("sm_90a", (9, 0), True), ("sm_90a", (9, 1), False), ("sm_100", (10, 0), True), ("sm_120", (12, 1), True),
    ("sm_100f", (10, 3), True), ("compute_120", (12, 0), True), ("nonsense", (6, 0), False),
])
def test_which_kernels_run_on_which_gpu(arch, cap, runs):
    assert arch_runs_on(arch, cap) is runs


def test_a_p100_with_a_cu128_torch_is_refused_and_named(monkeypatch):
    assert kernel_gap((6, 0), CU126) == "" and kernel_gap((8, 0), CU128) == ""
    assert kernel_gap((6, 0), []) == ""  # a build that names no arch list (CPU torch) is judged elsewhere
    gap = kernel_gap((6, 0), CU128)
    assert "compute capability 6.0 (sm_60)" in gap and "get_arch_list() names sm_60" in gap and "\n" not in gap
    fake_cuda(monkeypatch, arch_list=tuple(CU128))
    why = cuda_missing(0)
    assert why.startswith("cuda:0 (Tesla P100-PCIE-16GB) is compute capability 6.0") and "no kernel image" in why
    fake_cuda(monkeypatch, arch_list=tuple(CU126))
    assert cuda_missing(0) == ""


@pytest.mark.parametrize("cmd", [
    ["search", "--device", "cuda", "--out", "{tmp}/s"],
    ["train", "--genotype", "DARTS_V2", "--device", "cuda", "--out", "{tmp}/t"],
    ["measure", "--backend", "torch", "--device", "cuda", "--genotype", "DARTS_V2"],
])
def test_commands_refuse_a_gpu_torch_has_no_kernels_for_in_one_line(cmd, monkeypatch, capsys, tmp_path):
    fake_cuda(monkeypatch, arch_list=tuple(CU128))
    assert main([c.format(tmp=tmp_path) for c in cmd]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lpm {cmd[0]}: error:") and "sm_60" in err, err
    assert not any(tmp_path.iterdir())  # refused before any work


# --- TensorRT: one backend for 8.6, 10 and 11 ----------------------------------------------------------------
@pytest.mark.parametrize("version,flags", [("8.6.1", 1 << 0), ("10.16.1.11", 0), ("11.4.0.106", 0)])
def test_network_flag_follows_the_version(version, flags, tmp_path, monkeypatch):
    trt = FakeTrt(version)
    _, info = _build(trt, tmp_path, monkeypatch)
    assert ("create_network", flags) in trt.calls and info["tensorrt"] == version
    assert ("clear_flag", trt.BuilderFlag.TF32) in trt.calls and info["tf32"] is False
    assert info["precision"] == "fp32" and not any(c[0] == "set_flag" for c in trt.calls)


@pytest.mark.parametrize("version", ["8.6.1", "10.16.1.11"])
def test_fp16_sets_the_flag_where_it_exists(version, tmp_path, monkeypatch):
    trt = FakeTrt(version)
    _, info = _build(trt, tmp_path, monkeypatch, fp16=True)
    assert ("set_flag", trt.BuilderFlag.FP16) in trt.calls and info["precision"] == "fp16"


def test_tensorrt_11_refuses_fp16_and_fp16_graphs_in_one_line(tmp_path, monkeypatch):
    trt = FakeTrt("11.4.0.106")
    assert not hasattr(trt.BuilderFlag, "FP16")  # as in TensorRT 11: the old code raised AttributeError here
    for kwargs in ({"fp16": True}, {"data": _onnx_bytes(10)}):
        with pytest.raises(LpmError, match=r"TensorRT 11.4 removed BuilderFlag.FP16 .*fp16 with TensorRT 8.6 or 10"):
            _build(trt, tmp_path, monkeypatch, **kwargs)
    assert not any(c[0] == "build_serialized_network" for c in trt.calls)
    _, info = _build(FakeTrt("10.16.1.11"), tmp_path, monkeypatch, data=_onnx_bytes(10))
    assert info["precision"] == "fp16"  # an fp16 graph is recorded as what it computes in


def test_one_logger_per_process(tmp_path, monkeypatch):
    trt = FakeTrt("10.16.1.11")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for _ in range(3):
        serialized, _ = _build(trt, tmp_path, monkeypatch)
        trtb.load_engine(trt, serialized)
    assert trt.loggers == 1


def test_timing_cache_new_reused_rejected_and_unsaved(tmp_path, monkeypatch):
    trt = FakeTrt("10.16.1.11", gpu="p100")
    cache = tmp_path / "t.cache"
    assert _build(trt, tmp_path, monkeypatch)[1]["timing_cache_state"] == "new"
    assert cache.read_bytes().startswith(trt.cache_key)
    assert _build(trt, tmp_path, monkeypatch)[1]["timing_cache_state"] == "reused"
    other = FakeTrt("10.16.1.11", gpu="t4")  # the same file read on another GPU: TensorRT refuses it
    _, info = _build(other, tmp_path, monkeypatch)
    assert info["timing_cache_state"] == "rejected" and info["timing_cache_saved"]
    assert [c[3] for c in other.calls if c[0] == "set_timing_cache"] == [False, True]
    assert cache.read_bytes().startswith(other.cache_key)  # replaced by a cache this GPU can use
    gone = FakeTrt("10.16.1.11", gpu="t4")
    gone.fail.add("get_timing_cache")  # TensorRT may give no cache back: no crash, nothing written
    _, info = _build(gone, tmp_path, monkeypatch, name="none.cache")
    assert info["timing_cache_saved"] is False and not (tmp_path / "none.cache").exists()


def test_timing_cache_writes_through_a_temp_file_of_its_own(tmp_path, monkeypatch):
    """The old code wrote '<cache>.tmp', one name for every process: here that name is taken by a folder."""
    (tmp_path / "t.tmp").mkdir()
    trt = FakeTrt("8.6.1")
    _, info = _build(trt, tmp_path, monkeypatch)
    assert info["timing_cache_saved"] and (tmp_path / "t.cache").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.cache", "t.tmp"]  # no temporary file left over


def test_default_timing_cache_is_one_file_per_tensorrt_and_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("LPM_TRT_TIMING_CACHE", str(tmp_path))
    a = trtb.default_timing_cache("8.6.1", "Tesla P100-PCIE-16GB", (6, 0))
    assert a == tmp_path / "trt-timing-8.6.1-p100-sm60.cache"
    others = {trtb.default_timing_cache("10.16.1.11", "Tesla P100-PCIE-16GB", (6, 0)),
              trtb.default_timing_cache("8.6.1", "Tesla T4", (7, 5))}
    assert a not in others and len(others) == 2


@pytest.mark.parametrize("failing,message", [
    ("builder", "could not create its builder"),
    ("parse", r"could not parse the ONNX graph: In node 3 \(Conv\): unsupported"),
    ("build", "failed to build an engine"),
    ("create_timing_cache", "could not create an empty timing cache"),
])
def test_build_failures_are_one_line_errors(failing, message, tmp_path, monkeypatch):
    trt = FakeTrt("10.16.1.11")
    trt.fail.add(failing)
    with pytest.raises(LpmError, match=message):
        _build(trt, tmp_path, monkeypatch)


@pytest.mark.parametrize("failing,message", [
    ("deserialize", "could not deserialize the engine"),
    ("context", "could not create an execution context"),
    ("set_tensor_address", "refused the address of I/O tensor 'input'"),
])
def test_engine_failures_are_one_line_errors(failing, message, monkeypatch):
    trt = FakeTrt("8.6.1")
    trt.fail.add(failing)
    with pytest.raises(LpmError, match=message):
        _, engine, context = trtb.load_engine(trt, b"engine")
        trtb.bind_io(trt, engine, context, torch.zeros(1, 3, 8, 8), torch.device("cpu"))


def test_io_buffers_are_bound_by_name(monkeypatch):
    trt = FakeTrt("11.4.0.106")
    _, engine, context = trtb.load_engine(trt, b"engine")
    buffers, out = trtb.bind_io(trt, engine, context, torch.ones(1, 3, 8, 8), torch.device("cpu"))
    assert out == "output" and buffers["output"].shape == (1, 10)
    assert context.addresses == {name: buf.data_ptr() for name, buf in buffers.items()}
    with pytest.raises(LpmError, match=r"expects input \(1, 3, 8, 8\), the example input is \(2, 3, 8, 8\)"):
        trtb.bind_io(trt, engine, context, torch.ones(2, 3, 8, 8), torch.device("cpu"))


@pytest.mark.parametrize("version,capability,ok,named", [
    ("8.6.1", (6, 0), True, ""), ("10.16.1.11", (6, 0), False, "(the last: 8.6): pip install 'lpm-zoo[trt-pascal]'"),
    ("11.4.0.106", (6, 0), False, "(the last: 8.6)"), ("11.4.0.106", (7, 0), False, "(the last: 10.4)"),
    ("10.2.0", (7, 0), True, ""), ("11.4.0.106", (7, 5), True, ""), ("8.6.1", (12, 0), False, "lpm-zoo[trt]"),
    ("9.3.0", (8, 0), False, "TensorRT 9.3 is not supported here"),
])
def test_available_refuses_a_gpu_the_installed_tensorrt_does_not_run_on(version, capability, ok, named, monkeypatch):
    fake_cuda(monkeypatch, capability=capability, arch_list=("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_90",
                                                             "compute_90"))
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTrt(version))
    got, why = trtb.TrtBackend().available("cuda")
    assert got is ok and named in why and "\n" not in why


def test_lpm_measure_on_a_p100_with_tensorrt_10_says_to_use_8_6(monkeypatch, capsys):
    fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTrt("10.16.1.11"))
    assert main(["measure", "--backend", "trt", "--device", "cuda", "--genotype", "DARTS_V2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lpm measure: error: backend 'trt' is not usable on cuda" in err
    assert "TensorRT 10.16 runs on compute capability 7.5+, not 6.0" in err and "8.6" in err


def test_two_tensorrt_bindings_installed_together_are_refused(monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTrt("8.6.1"))
    monkeypatch.setattr("lpm_zoo.backends.installs.installed_distributions",
                        lambda names: ["tensorrt-bindings", "tensorrt-cu12-bindings"])
    ok, why = trtb.TrtBackend().available("cuda")
    assert not ok and "installed together" in why and "pip uninstall -y tensorrt-bindings tensorrt-cu12-bindings" in why


class _FakeStream:
    """A torch.cuda.Stream stand-in recording what it waited on and what ran on it (FAKE: runs nothing)."""

    made: list[_FakeStream] = []

    def __init__(self, device=None):
        self.waited, self.cuda_stream = [], 1234
        _FakeStream.made.append(self)

    def wait_stream(self, other):
        self.waited.append(other)

    def synchronize(self):
        pass


def test_trt_prepare_waits_for_the_input_copy_and_records_what_it_built(tmp_path, monkeypatch):
    """prepare() end to end on the fakes: the side stream waits on the current stream before any run."""
    from lpm_zoo.backends.onnx_export import to_onnx

    fake_cuda(monkeypatch, capability=(7, 5), name="Tesla T4")
    trt = FakeTrt("10.16.1.11", gpu="t4")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: "the current stream")
    real_bind = trtb.bind_io
    monkeypatch.setattr(trtb, "bind_io", lambda t, e, c, x, dev: real_bind(t, e, c, x, torch.device("cpu")))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 8), torch.nn.Flatten()).eval()
    _FakeStream.made.clear()
    p = trtb.TrtBackend().prepare(to_onnx(model, torch.zeros(1, 3, 8, 8)), torch.zeros(1, 3, 8, 8), "cuda",
                                  timing_cache=str(tmp_path / "c.cache"))
    assert [s.waited for s in _FakeStream.made] == [["the current stream"]]
    assert p.info["tensorrt"] == "10.16.1.11" and p.info["precision"] == "fp32" and p.info["tf32"] is False
    p.run()
    assert ("execute_async_v3", 1234) in trt.calls
    trt.fail.add("execute")
    with pytest.raises(LpmError, match="execute_async_v3 failed"):
        p.run()


def test_torch_cuda_precision_is_ieee_fp32():
    from lpm_zoo.backends.torch_backend import set_tf32

    settings = [torch.backends.cudnn.conv, torch.backends.cuda.matmul]
    before = [s.fp32_precision for s in settings]
    try:
        set_tf32(False)
        assert [s.fp32_precision for s in settings] == ["ieee", "ieee"]
        set_tf32(True)
        assert [s.fp32_precision for s in settings] == ["tf32", "tf32"]
    finally:
        for s, value in zip(settings, before):
            s.fp32_precision = value


def test_side_stream_waits_on_the_current_stream(monkeypatch):
    from lpm_zoo.backends.timing import side_stream

    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: ("current", device))
    assert side_stream("cuda:1").waited == [("current", "cuda:1")]


# --- ONNX Runtime ---------------------------------------------------------------------------------------------
def test_ort_cuda_session_forbids_cpu_fallback_and_tf32(monkeypatch):
    """What the CUDA session is asked for (recorded by a fake InferenceSession that reports the CUDA EP)."""
    import onnxruntime as ort

    from lpm_zoo.backends.ort_backend import _session

    seen = {}

    class Session:
        def __init__(self, data, so, providers):
            seen.update(so=so, providers=providers)

        def get_providers(self):
            return ["CUDAExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", Session)
    _session(ort, b"graph", "cuda", 1, 1)
    assert seen["so"].get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
    (name, opts), = seen["providers"]  # the CPU EP is not listed: ORT refuses that with the fallback off
    assert name == "CUDAExecutionProvider" and opts["device_id"] == "1" and opts["use_tf32"] == "0"
    _session(ort, b"graph", "cpu", 0, 1)
    assert seen["providers"] == ["CPUExecutionProvider"]


def test_node_providers_counts_the_nodes_each_provider_ran():
    from lpm_zoo.backends.ort_backend import node_providers

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    counts = node_providers(model, torch.randn(1, 3, 8, 8), "cpu")
    assert set(counts) == {"CPUExecutionProvider"} and counts["CPUExecutionProvider"] >= 2


def test_onnxruntime_and_onnxruntime_gpu_together_are_refused(monkeypatch, capsys):
    import lpm_zoo.backends.ort_backend as ortb

    monkeypatch.setattr("lpm_zoo.backends.installs.installed_distributions", lambda names: ["onnxruntime", "onnxruntime-gpu"])
    ok, why = ortb.OrtBackend().available("cpu")
    assert not ok and "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'lpm-zoo[gpu]'" in why
    assert main(["measure", "--backend", "ort", "--genotype", "DARTS_V2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overwrite each other's onnxruntime module" in err


def test_packaging_never_installs_both_onnxruntimes():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+ (tomllib)")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ort_dists = {"onnxruntime", "onnxruntime-gpu"}

    def names(reqs):
        return {r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip() for r in reqs}

    assert not names(meta["dependencies"]) & ort_dists  # the core takes neither
    extras = meta["optional-dependencies"]
    assert names(extras["cpu"]) == {"onnxruntime"} and names(extras["gpu"]) == {"onnxruntime-gpu"}
    assert all(len(names(reqs) & ort_dists) <= 1 for reqs in extras.values())
    assert extras["gpu"] == ["onnxruntime-gpu>=1.19,<1.27"]  # the CUDA 12 builds on PyPI
    assert extras["trt"] == ["tensorrt-cu12>=10.0,<12"] and extras["trt-pascal"] == ["tensorrt==8.6.1.post1"]
    makefile = (ROOT / "Makefile").read_text()
    assert "EXTRAS ?= test,cpu" in makefile and "-e '.[$(EXTRAS)]'" in makefile


# --- the time-based warm-up ---------------------------------------------------------------------------------
class _Clocked:
    """A backend whose runs take 20 ms of sleep, recording when each timed call happened."""

    def __init__(self):
        self.calls = []

    def run_timed(self, prepared, n, clock="wall"):
        self.calls.append((time.perf_counter(), n))
        time.sleep(0.02 * n)
        return [20.0] * n


def test_time_based_warm_up_runs_until_its_seconds_have_passed():
    backend, group = _Clocked(), [Prepared(lambda: None), Prepared(lambda: None)]
    t0 = time.perf_counter()
    runs = time_interleaved(backend, group, Protocol(warmup=1, warmup_s=0.3, rounds=1, reps=1))
    first_timed = backend.calls[-2][0]  # the one round: one call per model
    assert first_timed - t0 >= 0.3 and len(backend.calls) > 2 + 2 and runs == [[20.0], [20.0]]
    backend = _Clocked()
    time_interleaved(backend, group, Protocol(warmup=1, rounds=1, reps=1))
    assert len(backend.calls) == 4  # no time-based warm-up on CPUs: 2 warm-up calls, 2 timed


def test_warm_up_defaults_and_bounds(capsys):
    assert default_warmup_s("cuda:1") == GPU_WARMUP_S > 0 and default_warmup_s("cpu") == 0
    for bad in (-1, float("nan"), 601, True):
        with pytest.raises(LpmError, match="--warmup-s must be"):
            Protocol(warmup_s=bad)
    assert main(["measure", "--backend", "ort", "--genotype", "DARTS_V2", "--warmup-s", "-2"]) == 2
    assert "--warmup-s must be a number of seconds from 0 to 600" in capsys.readouterr().err
    assert Protocol(warmup_s=1.5).to_dict()["warmup_s"] == 1.5


# --- the search on CUDA ---------------------------------------------------------------------------------------
def test_checkpoints_keep_and_restore_the_cuda_rng_state(monkeypatch):
    """With CUDA in use (faked: the generator calls are recorded), its state goes into the checkpoint and back."""
    from lpm_zoo.search.loop import checkpoint_state, cosine_schedule, restore_state

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched, gen = cosine_schedule(opt, 3, 0.0), torch.Generator().manual_seed(0)
    assert "cuda_rng" not in checkpoint_state(model, {"opt": opt}, sched, gen)  # CUDA never used: nothing to keep
    saved = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    ck = checkpoint_state(model, {"opt": opt}, sched, gen)
    assert ck["cuda_rng"] is saved
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, index: restored.append((index, state.tolist())))
    restore_state(ck, model, {"opt": opt}, sched, gen, 0)
    assert restored == [(0, [1, 2, 3]), (1, [4, 5])]


def test_latency_timer_waits_for_queued_gpu_work(monkeypatch):
    from lpm_zoo.search.loop import sync_device

    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    sync_device(torch.device("cpu"))
    sync_device(torch.device("cuda", 1))
    assert synced == [torch.device("cuda", 1)]


# --- scripts/gpu_acceptance.py ---------------------------------------------------------------------------------
def test_gpu_acceptance_exits_2_in_one_line_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the acceptance run would start")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_acceptance.py")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gpu_acceptance: error: no CUDA device")


@pytest.mark.parametrize("args,says", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--budget-s", "abc"], "argument --budget-s: 'abc' is not a number of seconds from 1 to 86400"),
    (["--budget-s", "nan"], "argument --budget-s: 'nan' is not a number of seconds"),
    (["--budget-s", "inf"], "argument --budget-s: 'inf' is not a number of seconds"),
    (["--json", "/nonexistent-dir/r.json"], "--json '/nonexistent-dir/r.json' is in a folder that does not exist"),
    (["--json", "/"], "--json '/' is a folder"),
])
def test_gpu_acceptance_refuses_bad_flags_in_one_line_before_the_cuda_check(args, says):
    """Checked first, whether or not there is a GPU: the CUDA check (and its own error) never comes before."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_acceptance.py"), *args], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("scripts/gpu_acceptance.py: error: " if args[0] != "--json"
                                  else "gpu_acceptance: error: ") and says in proc.stderr, proc.stderr


def test_gpu_acceptance_report_lines_are_the_readme_format():
    """The report's lines (made from recorded numbers, no GPU) parse with the format README documents."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_acceptance as acc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    row = acc.RuntimeResult("trt", prepare_s=4.2, rel_err=3e-4, median_ms=41.0, event_wall=0.93,
                            cpu_node_share=None, note="cold 30.1 s, warm 4.0 s")
    line = acc.format_row(row)
    assert line.startswith("trt ") and json.loads(acc.json_line({"runtime": row})) == {"runtime": row.as_dict()}
    assert acc.verdict(row) == "ok" and acc.verdict(acc.RuntimeResult("ort", 1, 0.5, 1, 1, 0.0, "")) == "FAIL"
    readme = (ROOT / "README.md").read_text()
    assert "gpu_acceptance" in readme and acc.HEADER in readme
    assert np.isfinite(row.median_ms)


# --- on real hardware only (skipped here, with the reason) -----------------------------------------------------
HAS_CUDA = torch.cuda.is_available() and not cuda_missing(0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a usable CUDA device")
def test_real_ort_cuda_runs_every_node_on_the_gpu():
    from lpm_zoo.backends.ort_backend import OrtBackend, node_providers

    ok, why = OrtBackend().available("cuda")
    if not ok:
        pytest.skip(why)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    counts = node_providers(model, torch.randn(2, 3, 8, 8), "cuda")
    assert counts.get("CPUExecutionProvider", 0) == 0 and counts.get("CUDAExecutionProvider", 0) >= 2


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.skipif(not HAS_CUDA, reason="needs a usable CUDA device")
def test_real_trt_timing_cache_is_new_then_reused(tmp_path):
    from lpm_zoo.backends.onnx_export import to_onnx

    ok, why = trtb.TrtBackend().available("cuda")
    if not ok:
        pytest.skip(why)
    model, x = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval(), torch.randn(2, 3, 8, 8)
    states = []
    for _ in range(2):
        p = trtb.TrtBackend().prepare(to_onnx(model, x), x, "cuda", timing_cache=str(tmp_path / "c.cache"))
        states.append(p.info["timing_cache_state"])
        with torch.no_grad():
            np.testing.assert_allclose(p.output(), model(x).numpy(), rtol=1e-3, atol=1e-4)
        p.close()
    assert states == ["new", "reused"] and p.info["tf32"] is False


def test_gpu_acceptance_times_the_search_step_per_precision_with_a_recording_fake(tmp_path, monkeypatch):
    """The precision section's dispatch (no GPU): a recording fake stands for `lpm search`, answering a mean step
    time per precision; the flags each run gets, the ratios to fp32, a GPU without bf16, a failed run."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_acceptance as acc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    calls, step = [], {"fp32": 0.2, "fp16": 0.1, "bf16": 0.125}

    def fake_lpm(args, timeout):
        calls.append(args)
        prec = args[args.index("--precision") + 1] if "--precision" in args else "fp32"
        if prec == "bf16" and "fail" in " ".join(args):  # the run whose --out is under fail/
            return subprocess.CompletedProcess(args, 2, "", "lpm search: error: something\n")
        return subprocess.CompletedProcess(args, 0, json.dumps({"mean_step_s": step[prec]}) + "\n", "")

    monkeypatch.setattr(acc, "_lpm", fake_lpm)
    rows = acc.precision_steps("cuda:0", tmp_path, time.perf_counter() + 600, bf16=True)
    assert [r[0] for r in rows] == ["fp32", "fp16 + channels-last", "bf16"] and all(ok for _, ok, _ in rows)
    assert "0.50x fp32" in rows[1][2] and "0.62x fp32" in rows[2][2] and "200.0 ms" in rows[0][2]
    assert all(c[c.index("--device") + 1] == "cuda:0" and "--max-steps" in c for c in calls)
    assert "--channels-last" in calls[1] and "--channels-last" not in calls[2]
    calls.clear()
    rows = acc.precision_steps("cuda", tmp_path, time.perf_counter() + 600, bf16=False)  # a P100: no bf16
    assert len(calls) == 2 and rows[2] == ("bf16", True, "not run: this GPU has no bf16")
    (tmp_path / "fail").mkdir()
    rows = acc.precision_steps("cuda", tmp_path / "fail", time.perf_counter() + 600, bf16=True)
    assert rows[2] == ("bf16", False, "lpm search: error: something")
