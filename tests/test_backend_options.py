"""`--backend-option NAME=VALUE`: only options a backend declares, of their type, in one line otherwise; carried by
the protocol (sorted pairs, recorded in rows) to `prepare`; listed by `lpm backends --options`."""

from __future__ import annotations

import json
import re

import pytest

from backends.commands.options import backend_options
from backends.profiling import Measurer
from backends.protocol import Protocol, check_backend_options
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError


@pytest.mark.parametrize("backend,items,want", [
    ("torch", ["cuda_graph=yes"], (("cuda_graph", True),)),
    ("torch", ["cuda_graph=0"], (("cuda_graph", False),)),
    ("trt", ["workspace_mb=512", "fp16=true"], (("fp16", True), ("workspace_mb", 512))),  # sorted by name
    ("trt", [], ()),
])
def test_declared_options_are_parsed_by_their_type(backend, items, want):
    assert backend_options(backend, items) == want


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
    with pytest.raises(LpmError, match="backend 'ort' has no option 'precision' .its options: none."):
        Measurer("ort", "cpu", "small-b1", Protocol(backend_options=(("precision", "bf16"),)))


def test_the_measurer_hands_the_options_to_prepare(monkeypatch):
    seen = []
    m = Measurer("torch", "cpu", "small-b1", Protocol(warmup=0, rounds=1, reps=1, interleave=1, reference=False,
                                                      statistic="median", backend_options=(("cuda_graph", False),)))
    real = m.backend.prepare

    def spy(model, x, device, threads=1, **opts):
        seen.append(opts)
        return real(model, x, device, threads=threads, **opts)

    monkeypatch.setattr(m.backend, "prepare", spy)
    from lpm_zoo.published import DARTS_V2

    (row,) = m.measure([DARTS_V2])
    m.close()
    assert seen == [{"cuda_graph": False}] and row.protocol["backend_options"] == {"cuda_graph": False}


def test_lpm_measure_refuses_a_bad_option_in_one_line(capsys):
    assert main(["measure", "--backend", "ort", "--genotype", "DARTS_V2", "--backend-option", "fp16=true"]) == 2
    err = capsys.readouterr().err
    assert err == "lpm measure: error: --backend-option 'fp16=true': the ort backend's options are: none\n"


def test_lpm_profile_with_an_option_needs_a_device_name_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "t.db"
    assert main(["profile", "--backend", "torch", "--samples", "1", "--db", str(db), "--backend-option",
                 "cuda_graph=false"]) == 2
    err = capsys.readouterr().err
    assert "changes what is measured: file it under a name of its own with --device-name" in err
    assert err.count("\n") == 1 and not db.exists()


def test_lpm_backends_lists_each_backends_options(capsys):
    assert main(["backends", "--options"]) == 0
    out = capsys.readouterr().out
    assert "torch options:\n  --backend-option cuda_graph=<bool>" in out and "ort options: none" in out
    assert main(["backends", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    trt = next(r for r in rows if r["backend"] == "trt")
    assert set(trt["options"]) == {"fp16", "workspace_mb"} and trt["options"]["fp16"]["type"] == "bool"
