"""Backend registry, plugins, device naming, the protocol, and the torch / ort / trt backends on what a CPU reaches."""

import importlib.metadata as md
import json
import sys
import textwrap

import numpy as np
import pytest
import torch

import lpm_zoo.backends.registry as registry
import lpm_zoo.registry as core_registry
from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.device import device_name, parse_device, short_gpu_name
from lpm_zoo.backends.protocol import Protocol, spread_of, statistic_of, time_interleaved
from lpm_zoo.backends.registry import get_backend, list_backends, register_backend
from lpm_zoo.backends.timing import host_times
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.hardware import cpu_model, cpu_slug
from lpm_zoo.published import DARTS_V2, get_genotype

HAS_CUDA = torch.cuda.is_available()
try:
    import tensorrt  # noqa: F401

    HAS_TRT = True
except ImportError:
    HAS_TRT = False


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 5)).eval()


# --- registry ------------------------------------------------------------------------------
def test_builtin_backends_registered_and_unknown_names_listed():
    assert {"torch", "ort", "trt"} <= set(list_backends())
    assert get_backend("ort").model_format == "onnx" and get_backend("torch").model_format == "torch"
    with pytest.raises(LpmError, match="unknown backend 'nope'; known: .*ort.*torch"):
        get_backend("nope")


def test_register_backend_decorator_and_type_check():
    @register_backend("test-echo")
    class Echo(Backend):
        def available(self, device="cpu"):
            return True, ""

        def prepare(self, model, example_input, device="cpu", threads=1, **opts):
            return Prepared(lambda: model(example_input))

        def run_timed(self, prepared, n, clock="wall"):
            return host_times(prepared.run, n, clock)

    try:
        b = get_backend("test-echo")
        assert isinstance(b, Echo) and b.name == "test-echo"
        assert len(b.run_timed(b.prepare(lambda x: x * 2, 3), 4)) == 4
        with pytest.raises(TypeError):
            register_backend("bad")(object)
        with pytest.raises(ValueError, match="already registered"):
            register_backend("test-echo")(type("Other", (Echo,), {}))
    finally:
        registry._REGISTRY.unregister("test-echo")


def test_third_party_backend_through_entry_point(tmp_path, monkeypatch, capsys):
    (tmp_path / "lpm_fake_plugin.py").write_text(textwrap.dedent("""
        from lpm_zoo.backends.base import Backend, Prepared
        from lpm_zoo.backends.timing import host_times

        class FakeAccel(Backend):
            devices = ("cpu",)
            def available(self, device="cpu"):
                return False, "fake accelerator not plugged in"
            def prepare(self, model, example_input, device="cpu", threads=1, **opts):
                return Prepared(lambda: None)
            def run_timed(self, prepared, n, clock="wall"):
                return host_times(prepared.run, n, clock)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [md.EntryPoint("fakeaccel", "lpm_fake_plugin:FakeAccel", registry.GROUP),
           md.EntryPoint("broken", "lpm_no_such_module:X", registry.GROUP)]
    monkeypatch.setattr(core_registry, "entry_points", lambda group: eps if group == registry.GROUP else [])
    fresh = registry._REGISTRY.copy()
    fresh._discovered = False
    monkeypatch.setattr(registry, "_REGISTRY", fresh)
    assert "fakeaccel" in list_backends()  # the broken plugin is reported, not fatal
    assert "'broken' (lpm_no_such_module:X) failed to load" in capsys.readouterr().err
    b = get_backend("fakeaccel")
    assert b.available("cpu") == (False, "fake accelerator not plugged in")
    with pytest.raises(LpmError, match="not usable on cpu: fake accelerator not plugged in"):
        b.check("cpu")


def test_lpm_backends_lists_availability_and_reasons(capsys):
    assert main(["backends", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {(r["backend"], r["device"]): r for r in rows}
    assert by[("torch", "cpu")]["available"] and by[("ort", "cpu")]["available"]
    if not HAS_TRT:
        assert by[("trt", "cuda")] ["reason"] == "tensorrt not installed"
    if not HAS_CUDA:
        assert not by[("torch", "cuda")]["available"] and "no CUDA device" in by[("torch", "cuda")]["reason"]
    assert main(["backends"]) == 0
    assert "unavailable" in capsys.readouterr().out or HAS_CUDA


# --- device naming ---------------------------------------------------------------------------
@pytest.mark.parametrize("full,short", [
    ("Tesla P100-PCIE-16GB", "p100"), ("Tesla V100-SXM2-32GB", "v100"), ("NVIDIA A100-SXM4-80GB", "a100"),
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA GeForce RTX 3090", "rtx3090"), ("NVIDIA L4", "l4"),
    ("Quadro RTX 8000", "rtx8000"), ("NVIDIA GeForce GTX 1080 Ti", "gtx1080"),
])
def test_short_gpu_names(full, short):
    assert short_gpu_name(full) == short


def test_device_specs_and_names():
    assert parse_device("cpu") == ("cpu", 0) and parse_device("cuda") == ("cuda", 0)
    assert parse_device("cuda:3") == ("cuda", 3)
    for bad in ("gpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(LpmError, match="unknown device"):
            parse_device(bad)
    assert device_name("cpu") == cpu_slug(cpu_model()) and device_name("cpu", "xeon-8c") == "xeon-8c"
    with pytest.raises(LpmError, match="--device-name"):
        device_name("cpu", "bad name/../x")
    if not HAS_CUDA:
        with pytest.raises(LpmError, match="no CUDA device"):
            device_name("cuda")


# --- protocol --------------------------------------------------------------------------------
def test_statistics_on_known_runs():
    runs = [5.0, 9.0, 7.0, 6.0, 6.5, 6.0, 8.0, 20.0, 4.5]  # 3 rounds of 3: medians 7, 6, 8
    assert statistic_of(runs, 3, "min_round_median") == 6.0
    assert statistic_of(runs, 3, "median") == 6.5
    assert statistic_of(runs, 3, "min") == 4.5
    assert statistic_of(runs, 3, "p10") == pytest.approx(np.percentile(runs, 10))
    assert spread_of(runs) == pytest.approx(np.percentile(runs, 75) - np.percentile(runs, 25))
    ref = [2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 40.0]  # round medians 2, 3, 4: ratios 3.5, 2, 2
    assert statistic_of(runs, 3, "ref_ratio", ref) == 2.0
    with pytest.raises(LpmError, match="reference"):
        statistic_of(runs, 3, "ref_ratio")
    with pytest.raises(LpmError, match="equal rounds"):
        statistic_of(runs, 2, "min_round_median")
    with pytest.raises(LpmError, match="needs the reference"):
        Protocol(reference=False)
    with pytest.raises(LpmError, match="unknown statistic"):
        Protocol(statistic="mean")
    with pytest.raises(LpmError, match="thread clock"):
        Protocol(threads=2, clock="thread")
    assert Protocol().host_clock() == "thread" and Protocol(threads=2).host_clock() == "wall"
    assert Protocol().to_dict()["clock"] == "thread"


def test_models_are_timed_in_turns_after_warmup():
    calls = []

    class Recorder(Backend):
        def available(self, device="cpu"):
            return True, ""

        def prepare(self, model, example_input, device="cpu", threads=1, **opts):
            return Prepared(lambda: None, info={"id": model})

        def run_timed(self, prepared, n, clock="wall"):
            calls.append((prepared.info["id"], n, clock))
            return [float(len(calls))] * n

    b = Recorder()
    ps = [b.prepare(k, None) for k in "ABC"]
    runs = time_interleaved(b, ps, Protocol(warmup=2, rounds=3, reps=4))
    assert calls[:3] == [("A", 2, "thread"), ("B", 2, "thread"), ("C", 2, "thread")]
    assert [c[0] for c in calls[3:]] == list("ABC" * 3) and all(c[1] == 4 for c in calls[3:])
    assert [len(r) for r in runs] == [12, 12, 12] and runs[0][:4] == [4.0] * 4 and runs[0][4:8] == [7.0] * 4


def test_thread_clock_ignores_time_asleep():
    import time

    wall = host_times(lambda: time.sleep(0.02), 2, "wall")
    cpu = host_times(lambda: time.sleep(0.02), 2, "thread")
    assert min(wall) >= 19.0 and max(cpu) < 5.0
    with pytest.raises(LpmError, match="unknown clock"):
        host_times(lambda: None, 1, "tsc")


# --- torch and ort on the CPU -------------------------------------------------------------------
def test_torch_cpu_times_and_outputs_the_model():
    b = get_backend("torch")
    model, x = _tiny_model(), torch.randn(2, 3, 8, 8)
    p = b.prepare(model, x, "cpu", threads=1)
    assert torch.get_num_threads() == 1
    times = b.run_timed(p, 5)
    assert len(times) == 5 and all(t > 0 for t in times)
    with torch.no_grad():
        np.testing.assert_allclose(p.output(), model(x).numpy(), rtol=1e-6)
    assert b.runtime_info("cpu")["torch"] == torch.__version__
    with pytest.raises(LpmError, match="nn.Module"):
        b.prepare(b"onnx bytes", x)
    with pytest.raises(LpmError, match="unknown option"):
        b.prepare(model, x, fp17=True)


def test_ort_cpu_from_onnx_bytes_and_module_match_torch():
    from lpm_zoo.backends.onnx_export import to_onnx

    b = get_backend("ort")
    model, x = _tiny_model(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    proto = to_onnx(model, x)
    for form in (proto, proto.SerializeToString(), model):
        p = b.prepare(form, x, "cpu", threads=1)
        assert p.info["providers"] == ["CPUExecutionProvider"] and p.info["io_binding"]
        np.testing.assert_allclose(p.output(), want, rtol=1e-5, atol=1e-6)
        assert len(b.run_timed(p, 3)) == 3
    info = b.runtime_info("cpu")
    assert info["onnxruntime"] and "CPUExecutionProvider" in info["ort_available_providers"]


def test_ort_cuda_request_that_falls_back_to_cpu_is_an_error(monkeypatch):
    """Pretend the CUDA EP is usable: the session falls back to CPU, and that must never become a 'CUDA' timing."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and HAS_CUDA:
        pytest.skip("a real CUDA EP is present: nothing falls back here")
    from lpm_zoo.backends.onnx_export import to_onnx
    from lpm_zoo.backends.ort_backend import OrtBackend

    monkeypatch.setattr(OrtBackend, "available", lambda self, device="cpu": (True, ""))
    model, x = _tiny_model(), torch.randn(1, 3, 8, 8)
    with pytest.raises(LpmError, match="refusing to time a CPU run as a CUDA one"):
        OrtBackend().prepare(to_onnx(model, x), x, "cuda")


def test_unusable_backends_say_why():
    x = torch.randn(1, 3, 8, 8)
    if not HAS_CUDA:
        with pytest.raises(LpmError, match="not usable on cuda: no CUDA device"):
            get_backend("torch").prepare(_tiny_model(), x, "cuda")
    if not HAS_TRT:
        with pytest.raises(LpmError, match="not usable on cuda: tensorrt not installed"):
            get_backend("trt").prepare(b"", x, "cuda")
    with pytest.raises(LpmError, match="does not run on cpu"):
        get_backend("trt").prepare(b"", x, "cpu")


# --- GPU paths (skipped here: no CUDA, no TensorRT) ---------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_torch_cuda_matches_cpu(cuda_graph):
    b = get_backend("torch")
    model, x = _tiny_model(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    p = b.prepare(model, x, "cuda", cuda_graph=cuda_graph)
    np.testing.assert_allclose(p.output(), want, rtol=1e-3, atol=1e-4)
    assert all(t > 0 for t in b.run_timed(p, 5))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_ort_cuda_matches_cpu():
    from lpm_zoo.backends.onnx_export import to_onnx

    ok, why = get_backend("ort").available("cuda")
    if not ok:
        pytest.skip(why)
    b = get_backend("ort")
    model, x = _tiny_model(), torch.randn(2, 3, 8, 8)
    p = b.prepare(to_onnx(model, x), x, "cuda")
    assert p.info["providers"][0] == "CUDAExecutionProvider"
    with torch.no_grad():
        np.testing.assert_allclose(p.output(), model(x).numpy(), rtol=1e-3, atol=1e-4)
    assert all(t > 0 for t in b.run_timed(p, 5))


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.skipif(not (HAS_CUDA and HAS_TRT), reason="needs TensorRT and a CUDA device")
def test_trt_engine_matches_cpu_and_keeps_a_timing_cache(tmp_path):
    from lpm_zoo.backends.onnx_export import to_onnx

    b = get_backend("trt")
    model, x = _tiny_model(), torch.randn(2, 3, 8, 8)
    cache = tmp_path / "timing.cache"
    p = b.prepare(to_onnx(model, x), x, "cuda", timing_cache=str(cache))
    assert cache.is_file() and cache.stat().st_size > 0
    with torch.no_grad():
        np.testing.assert_allclose(p.output(), model(x).numpy(), rtol=1e-3, atol=1e-4)
    assert all(t > 0 for t in b.run_timed(p, 5))


def test_measure_command_prints_latency_and_json(capsys):
    args = ["measure", "--backend", "ort", "--profile", "cifar-b1", "--genotype", "DARTS_V2",
            "--warmup", "1", "--rounds", "2", "--reps", "2"]
    assert main(args + ["--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["backend"] == "ort" and rec["device"] == cpu_slug(cpu_model()) and rec["latency_ms"] > 0
    assert len(rec["runs_ms"]) == 4 and rec["protocol"]["threads"] == 1 and rec["protocol"]["clock"] == "thread"
    assert main(args) == 0
    assert " ms  (IQR " in capsys.readouterr().out
    assert main(["measure", "--backend", "ort", "--genotype", "NOT_A_CELL"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lpm measure: error:" in err
    assert main(["measure", "--backend", "nope", "--genotype", "DARTS_V2"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_help_does_not_import_torch():
    import subprocess

    code = ("import sys; from lpm_zoo.cli import main\n"
            "try:\n main(['profile', '--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


@pytest.mark.parametrize("backend", ["torch", "ort"])
def test_single_thread_runs_on_the_calling_thread(backend):
    """The thread clock is valid only if a 1-thread run does its work on the timing thread: the process's
    CPU time during the runs must be (almost) all that thread's."""
    import time

    from lpm_zoo.backends.profiling import model_for
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.published import DARTS_V2

    b, prof = get_backend(backend), get_profile("cifar-b1")
    p = b.prepare(model_for(b, prof, DARTS_V2), prof.example_input(), "cpu", threads=1)
    b.run_timed(p, 2)
    proc0, thr0 = time.process_time(), time.thread_time()
    thread_ms = sum(b.run_timed(p, 5, "thread"))
    proc, thr = time.process_time() - proc0, time.thread_time() - thr0
    assert thread_ms / 1e3 <= thr * 1.01 + 1e-3
    assert proc <= thr * 1.15 + 0.01, (proc, thr)


def test_measure_times_several_genotypes_together_in_order(capsys):
    """Repeated --genotype: one group timed in turns, one JSON line per genotype in the order given."""
    from lpm_zoo.profiles import get_profile

    pc = get_genotype("PC_DARTS_cifar")
    args = ["measure", "--backend", "ort", "--profile", "small-b1", "--warmup", "1", "--rounds", "2", "--reps", "1",
            "--genotype", "PC_DARTS_cifar", "--genotype", "DARTS_V2", "--json"]
    assert main(args) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    prof = get_profile("small-b1")
    assert [r["key"] for r in recs] == [prof.key(pc), prof.key(DARTS_V2)]
    assert all(r["latency_ms"] > 0 and len(r["runs_ms"]) == 2 for r in recs)
    assert main(["measure", "--backend", "ort", *(a for _ in range(17) for a in ("--genotype", "DARTS_V2"))]) == 2
    assert "at most 16" in capsys.readouterr().err
    assert main(["measure", "--backend", "ort", "--genotype", "DARTS_V2", "--genotype", "NOT_A_CELL"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--genotype 'NOT_A_CELL'" in err


def test_measure_db_rescales_to_the_stores_baseline(tmp_path, capsys):
    from lpm_zoo.published import DARTS_V2
    from lpm_zoo.store import Measurement, MeasurementStore

    db = tmp_path / "m.db"
    proto = {"statistic": "ref_ratio", "ratio": 1.0, "reference_ms": 5.0, "reference_baseline_ms": 5.0}
    with MeasurementStore(db) as s:
        s.add(Measurement(DARTS_V2, "ort", "cpu", "cifar-b1", 5.0, 0.1, [5.0], proto))
    args = ["measure", "--backend", "ort", "--profile", "cifar-b1", "--genotype", "DARTS_V2",
            "--warmup", "1", "--rounds", "2", "--reps", "2", "--json"]
    assert main(args + ["--db", str(db)]) == 0
    rec = json.loads(capsys.readouterr().out)
    # the store's baseline is 5 ms for the reference (DARTS_V2 itself), so the result is ratio x 5 ms
    assert rec["protocol"]["reference_baseline_ms"] == 5.0
    assert rec["latency_ms"] == pytest.approx(rec["protocol"]["ratio"] * 5.0)
    assert main(args + ["--db", str(tmp_path / "none.db")]) == 2
    assert "no measurement database" in capsys.readouterr().err
