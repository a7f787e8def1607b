"""`--backend-option NAME=VALUE`: only options a backend declares, of their type, one of their choices, for a device
they apply to, in one line otherwise (before anything is created); carried by the protocol (sorted pairs, recorded in
rows) to `prepare`; part of a series' identity (a series never mixes options); listed by `lpm backends --options`."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from lpm_zoo.backends import registry
from lpm_zoo.backends.base import Option
from lpm_zoo.backends.commands.options import backend_options
from lpm_zoo.backends.device import check_same_options
from lpm_zoo.backends.profiling import Measurer
from lpm_zoo.backends.protocol import Protocol, check_backend_options
from lpm_zoo.backends.torch_backend import TorchBackend
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.published import DARTS_V2
from lpm_zoo.store import Measurement, MeasurementStore


class PrecisionTorch(TorchBackend):
    """torch on the CPU with a CPU option of fixed choices (what OpenVINO's precision is), so options are tried fast."""

    options = {"precision": Option(str, "a precision (recorded, not applied)", choices=("f32", "bf16"))}

    def prepare(self, model, example_input, device="cpu", threads=1, precision=None, **opts):
        return super().prepare(model, example_input, device, threads, **opts)


@pytest.fixture
def torchopt():
    registry.register_backend("torchopt")(PrecisionTorch)
    yield "torchopt"
    registry._REGISTRY.unregister("torchopt")


@pytest.mark.parametrize("backend,items,want", [
    ("torch", ["cuda_graph=yes"], (("cuda_graph", True),)),
    ("torch", ["cuda_graph=0"], (("cuda_graph", False),)),
    ("trt", ["workspace_mb=512", "fp16=true"], (("fp16", True), ("workspace_mb", 512))),  # sorted by name
    ("trt", [], ()),
])
def test_declared_options_are_parsed_by_their_type(backend, items, want):
    assert backend_options(backend, items, "cuda") == want


@pytest.mark.parametrize("backend,item,device,message", [
    ("torch", "cuda_graph=true", "cpu", "cuda_graph applies to cuda devices only, not cpu"),  # L9
    ("torch", "cuda_graph=false", "cpu", "cuda_graph applies to cuda devices only, not cpu"),
    ("openvino", "precision=int8", "cpu", "precision is one of f32, bf16"),  # L8
])
def test_an_option_outside_its_choices_or_devices_is_refused_when_parsed(backend, item, device, message):
    with pytest.raises(LpmError, match=re.escape(message)) as e:
        backend_options(backend, [item], device)
    assert "\n" not in str(e.value)


def test_a_cuda_only_option_on_a_cpu_is_one_line(capsys):
    assert main(["measure", "--backend", "torch", "--genotype", "DARTS_V2", "--backend-option", "cuda_graph=true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cuda_graph applies to cuda devices only, not cpu" in err


def test_adapt_refuses_an_invalid_choice_before_its_store_or_pilot(tmp_path, capsys):
    db = tmp_path / "a.db"
    assert main(["adapt", "--from", "ort-xeon-small", "--backend", "openvino", "--profile", "small-b1", "--samples",
                 "3", "--db", str(db), "--name", "x", "--zoo-dir", str(tmp_path / "zoo"), "--device-name", "ovx",
                 "--backend-option", "precision=int8", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "precision is one of f32, bf16" in captured.err, captured.err
    assert "pilot" not in captured.err + captured.out and not db.exists()


@pytest.mark.parametrize("backend,item,message", [
    ("ort", "threads=2", "the ort backend's options are: none"),
    ("torch", "graph=1", "the torch backend's options are: cuda_graph (bool)"),
    ("torch", "cuda_graph=maybe", "cuda_graph takes a bool"),
    ("trt", "workspace_mb=lots", "workspace_mb takes a int"),
    ("trt", "fp16", "the trt backend's options are: fp16 (bool), workspace_mb (int)"),
])
def test_an_undeclared_option_or_a_wrong_value_is_one_line(backend, item, message):
    with pytest.raises(LpmError, match=re.escape(message)) as e:
        backend_options(backend, [item])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("options,message", [
    ([("a", 1)] * 17, "at most 16"),
    ([("Bad-Name", 1)], "a short identifier"),
    ([("x", "y" * 65)], "at most 64 characters"),
    ([("x", [1])], "a boolean, a number or a string"),
    ([("x", float("nan"))], "a boolean, a number or a string"),
    ([("x", 2**60)], "a boolean, a number or a string"),
    ([("x", 1), ("x", 2)], "given twice"),
    ("x=1", "at most 16 name=value pairs"),
])
def test_the_protocol_takes_only_small_plain_options(options, message):
    with pytest.raises(LpmError, match=message):
        check_backend_options(options)


def test_options_travel_sorted_and_are_recorded_only_when_given():
    p = Protocol(backend_options={"workspace_mb": 64, "fp16": True})
    assert p.backend_options == (("fp16", True), ("workspace_mb", 64)) and hash(p)
    assert p.to_dict()["backend_options"] == {"fp16": True, "workspace_mb": 64}
    assert "backend_options" not in Protocol().to_dict()  # rows of the default settings are as they were


def test_the_measurer_refuses_an_option_its_backend_does_not_declare():
    with pytest.raises(LpmError, match="backend 'ort' has no option 'precision'; its options: none"):
        Measurer("ort", "cpu", "small-b1", Protocol(backend_options=(("precision", "bf16"),)))


def test_the_measurer_refuses_a_stored_value_outside_the_choices(torchopt):
    with pytest.raises(LpmError, match="precision is one of f32, bf16"):  # a row's options, as `lpm recheck` reads them
        Measurer(torchopt, "cpu", "small-b1", Protocol(backend_options=(("precision", "int8"),)))


def test_the_measurer_hands_the_options_to_prepare(monkeypatch, torchopt):
    seen = []
    m = Measurer(torchopt, "cpu", "small-b1", Protocol(warmup=0, rounds=1, reps=1, interleave=1, reference=False,
                                                       statistic="median", backend_options=(("precision", "bf16"),)))
    real = m.backend.prepare

    def spy(model, x, device, threads=1, **opts):
        seen.append(opts)
        return real(model, x, device, threads=threads, **opts)

    monkeypatch.setattr(m.backend, "prepare", spy)
    from lpm_zoo.published import DARTS_V2

    (row,) = m.measure([DARTS_V2])
    m.close()
    assert seen == [{"precision": "bf16"}] and row.protocol["backend_options"] == {"precision": "bf16"}


def test_lpm_measure_refuses_a_bad_option_in_one_line(capsys):
    assert main(["measure", "--backend", "ort", "--genotype", "DARTS_V2", "--backend-option", "fp16=true"]) == 2
    err = capsys.readouterr().err
    assert err == "lpm measure: error: --backend-option 'fp16=true': the ort backend's options are: none\n"


def test_lpm_profile_with_an_option_needs_a_device_name_and_creates_nothing(tmp_path, capsys, torchopt):
    db = tmp_path / "t.db"
    assert main(["profile", "--backend", torchopt, "--samples", "1", "--db", str(db), "--backend-option",
                 "precision=bf16"]) == 2
    err = capsys.readouterr().err
    assert "changes what is measured: file it under a name of its own with --device-name" in err
    assert err.count("\n") == 1 and not db.exists()


def test_lpm_backends_lists_each_backends_options(capsys):
    assert main(["backends", "--options"]) == 0
    out = capsys.readouterr().out
    assert "torch options:\n  --backend-option cuda_graph=<bool>" in out and "(cuda only)" in out
    assert "ort options: none" in out
    assert main(["backends", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    trt = next(r for r in rows if r["backend"] == "trt")
    assert set(trt["options"]) == {"fp16", "workspace_mb"} and trt["options"]["fp16"]["type"] == "bool"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_series_takes_rows_only_with_the_options_its_rows_have(tmp_path, capsys, torchopt):
    """M1: bf16 rows, then default rows, then f32 rows under one name: the second and third are refused, the store
    untouched; the same options continue the series."""
    db = tmp_path / "s.db"
    fast = ["profile", "--backend", torchopt, "--profile", "small-b1", "--device-name", "ovx", "--db", str(db),
            "--warmup", "0", "--rounds", "2", "--reps", "1", "--target-pct", "0", "--no-progress"]
    assert main([*fast, "--samples", "1", "--backend-option", "precision=bf16"]) == 0
    capsys.readouterr()
    before = _digest(db)
    for extra, theirs in (([], "the default options"), (["--backend-option", "precision=f32"], "precision=f32")):
        assert main([*fast, "--samples", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "measured with precision=bf16" in err and f"use {theirs}" in err, err
        assert "never mixes backend options" in err and _digest(db) == before
    assert main([*fast, "--samples", "2", "--backend-option", "precision=bf16"]) == 0
    with MeasurementStore(db, readonly=True) as store:
        assert {json.dumps(r["protocol"].get("backend_options")) for r in store.measurements()} == \
            {'{"precision": "bf16"}'}


def test_the_last_guard_refuses_rows_of_other_options(tmp_path):
    """What every writer (a Ray worker's rows included) passes through: the series' first row decides."""
    db = tmp_path / "g.db"
    with MeasurementStore(db) as store:
        store.add(Measurement(DARTS_V2, "torch", "t", "small-b1", 1.0, 0.01, [1.0], {"statistic": "min"}))
        check_same_options(store, "torch", "t", "small-b1", {}, str(db))  # the defaults continue
        check_same_options(store, "torch", "other", "small-b1", {"x": 1}, str(db))  # another series: its own
        with pytest.raises(LpmError, match="measured with the default options; these measurements use x=1"):
            check_same_options(store, "torch", "t", "small-b1", {"x": 1}, str(db))
