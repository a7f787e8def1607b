"""The OpenVINO backend plugin: the conformance kit, output equal to PyTorch's, the recorded settings, one-line errors,
and that lpm-zoo finds it through its entry point alone."""

from __future__ import annotations

import importlib.metadata as md
import json

import numpy as np
import pytest
import torch

from lpm_zoo.backends.onnx_builder import build_onnx
from lpm_zoo.backends.registry import get_backend, list_backends
from lpm_zoo.backends.testing import CHECKS, randomize_batchnorm, run_check
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.networks import build_network
from lpm_zoo.published import DARTS_V2
from lpm_zoo.sampler import sample_cells
from lpm_zoo.space import Genotype

ov = pytest.importorskip("openvino", reason="openvino is not installed (pip install -e plugins/lpm-openvino)")

from lpm_openvino.backend import OpenVinoBackend  # noqa: E402

OK, WHY = OpenVinoBackend().available("cpu")
needs_ov = pytest.mark.skipif(not OK, reason=f"openvino not usable here: {WHY}")


# --- the conformance kit -------------------------------------------------------------------------------
@needs_ov
@pytest.mark.parametrize("check", list(CHECKS))
def test_conformance(check):
    run_check(check, OpenVinoBackend, "cpu")


# --- output equals PyTorch's ---------------------------------------------------------------------------


def _compare(g: Genotype, setting: str, batch: int, res: int, seed: int = 0, **kw) -> None:
    torch.manual_seed(seed)
    model = build_network(g, setting, **kw).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    proto = build_onnx(g, setting, batch=batch, resolution=res, state_dict=model.state_dict(), **kw)
    x = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(seed))
    p = OpenVinoBackend().prepare(proto, x, "cpu")
    try:
        got = p.output()
    finally:
        p.close()
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1.0), np.abs(got - want).max()


@needs_ov
@pytest.mark.parametrize("seed", [0, 1])
def test_random_cifar_networks_match_pytorch(seed):
    cells = sample_cells(2, seed=100 + seed)
    _compare(Genotype(cells[0], reduce=cells[1]), "cifar", 2, 32, seed=seed, C=8, layers=5, num_classes=10)


@needs_ov
@pytest.mark.parametrize("seed", [0, 1])
def test_random_imagenet_networks_match_pytorch(seed):
    cells = sample_cells(2, seed=200 + seed)
    _compare(Genotype(cells[0], reduce=cells[1]), "imagenet", 1, 224, seed=seed, C=8, layers=3, num_classes=7)


@needs_ov
def test_the_cifar_b1_profile_network_matches_pytorch():
    _compare(Genotype(sample_cells(1, seed=3)[0], reduce=DARTS_V2.reduce), "cifar", 1, 32)


# --- the settings that are part of the measurement, as recorded ----------------------------------------
def _tiny():
    cells = sample_cells(1, seed=5)
    return build_onnx(Genotype(cells[0], reduce=DARTS_V2.reduce), "cifar", batch=1, resolution=32, C=4, layers=2)


def _bf16_native() -> bool:
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@needs_ov
def test_default_settings_are_recorded_as_the_compiled_model_reports_them():
    p = OpenVinoBackend().prepare(_tiny(), torch.zeros(1, 3, 32, 32), "cpu")
    try:
        assert p.info == {"device_kind": "cpu", "threads": 1, "num_streams": 1, "performance_hint": "LATENCY",
                          "cpu_pinning": False, "inference_precision": "f32", "inference_precision_requested": "f32"}
    finally:
        p.close()
    p = OpenVinoBackend().prepare(_tiny(), torch.zeros(1, 3, 32, 32), "cpu", threads=2)
    assert p.info["threads"] == 2
    p.close()
    info = OpenVinoBackend().runtime_info("cpu")
    assert info["openvino"] == md.version("openvino") and info["inference_precision_default"] == "f32"
    assert {"num_streams": 1, "performance_hint": "LATENCY", "cpu_pinning": False}.items() <= info.items()
    json.dumps(info)


@needs_ov
def test_bf16_is_explicit_and_the_precision_used_is_recorded():
    """bf16 only when asked; what is recorded is what the plugin reports (f32 on a CPU without native bf16)."""
    p = OpenVinoBackend().prepare(_tiny(), torch.zeros(1, 3, 32, 32), "cpu", precision="bf16")
    try:
        assert p.info["inference_precision_requested"] == "bf16"
        assert p.info["inference_precision"] == ("bf16" if _bf16_native() else "f32")
    finally:
        p.close()


@needs_ov
@pytest.mark.parametrize("kwargs,message", [
    ({"precision": "f64"}, "openvino backend: precision 'f64' is not one of f32, bf16"),
    ({"precision": 32}, "openvino backend: precision 32 is not one of f32, bf16"),
    ({"fp16": True}, "openvino backend: unknown option.s. 'fp16'; known: precision"),
    ({"threads": 0}, "openvino backend: threads must be an integer from 1 to 1024, got 0"),
    ({"device": "cuda"}, "backend 'openvino' does not run on cuda; it supports: cpu"),
    ({"device": "gpu"}, "unknown device 'gpu'; use cpu, cuda or cuda:N"),
])
def test_bad_options_fail_in_one_line(kwargs, message):
    with pytest.raises(LpmError, match=message) as e:
        OpenVinoBackend().prepare(_tiny(), torch.zeros(1, 3, 32, 32), **kwargs)
    assert "\n" not in str(e.value)


@needs_ov
def test_a_graph_openvino_cannot_read_fails_in_one_line():
    with pytest.raises(LpmError, match="openvino could not compile the model for CPU: ") as e:
        OpenVinoBackend().prepare(b"not an onnx graph", torch.zeros(1, 3, 32, 32))
    assert "\n" not in str(e.value)
    with pytest.raises(LpmError, match="the model expects input .1, 3, 32, 32., the example input is .1, 3, 16, 16."):
        OpenVinoBackend().prepare(_tiny(), torch.zeros(1, 3, 16, 16))


# --- found through the entry point alone ---------------------------------------------------------------
def test_registered_by_its_own_distribution_through_the_entry_point():
    eps = [ep for ep in md.entry_points(group="lpm_zoo.backends") if ep.name == "openvino"]
    assert [ep.value for ep in eps] == ["lpm_openvino.backend:OpenVinoBackend"]
    assert eps[0].dist.name == "lpm-openvino"
    assert "openvino" in list_backends() and isinstance(get_backend("openvino"), OpenVinoBackend)


def test_lpm_backends_lists_openvino_with_its_version(capsys):
    assert main(["backends", "--json"]) == 0
    rows = {r["backend"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    r = rows["openvino"]
    assert r["device"] == "cpu" and r["module"] == "lpm_openvino.backend"
    assert r["version"] == f"openvino {md.version('openvino')}" and r["available"] == OK


@needs_ov
def test_lpm_measure_records_the_settings_in_the_row(capsys):
    argv = ["measure", "--backend", "openvino", "--device", "cpu", "--profile", "small-b1", "--genotype", "DARTS_V2",
            "--warmup", "1", "--rounds", "2", "--reps", "2", "--min-rounds", "2", "--json"]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["backend"] == "openvino" and row["latency_ms"] > 0
    runtime = row["protocol"]["runtime"]
    assert runtime["openvino"] == md.version("openvino")
    assert {"threads": 1, "num_streams": 1, "performance_hint": "LATENCY", "inference_precision": "f32"}.items() \
        <= runtime.items()
    assert row["protocol"]["clock"] == "thread" and row["protocol"]["threads"] == 1


@needs_ov
def test_lpm_measure_on_a_device_it_does_not_run_on_exits_2_in_one_line(capsys):
    assert main(["measure", "--backend", "openvino", "--device", "cuda", "--genotype", "DARTS_V2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lpm measure: error: backend 'openvino' does not run on cuda; it supports: cpu"


@needs_ov
def test_bf16_through_lpm_profile_needs_its_own_name_is_recorded_per_row_and_rechecked_alike(tmp_path, capsys):
    db = str(tmp_path / "ov.db")
    base = ["--backend", "openvino", "--device", "cpu", "--profile", "small-b1", "--db", db]
    fast = ["--warmup", "1", "--rounds", "2", "--reps", "2", "--min-rounds", "2", "--statistic", "median",
            "--interleave", "2", "--no-progress"]
    assert main(["profile", *base, "--samples", "2", *fast, "--backend-option", "precision=bf16"]) == 2
    err = capsys.readouterr().err
    assert "changes what is measured: file it under a name of its own with --device-name" in err
    assert err.count("\n") == 1 and not (tmp_path / "ov.db").exists()
    assert main(["profile", *base, "--samples", "2", *fast, "--backend-option", "precision=bf16",
                 "--device-name", "here-bf16"]) == 0
    assert main(["recheck", *base, "--device-name", "here-bf16", "--samples", "1"]) == 0
    from lpm_zoo.store import MeasurementStore

    with MeasurementStore(db, readonly=True) as store:
        rows = list(store.measurements(backend="openvino", device="here-bf16", profile="small-b1"))
    assert len(rows) == 3  # two cells, one of them measured again
    for r in rows:  # the recheck measured with the option it found in the row
        assert r["protocol"]["backend_options"] == {"precision": "bf16"}
        assert r["protocol"]["runtime"]["inference_precision_requested"] == "bf16"
        assert r["protocol"]["runtime"]["inference_precision"] == ("bf16" if _bf16_native() else "f32")
