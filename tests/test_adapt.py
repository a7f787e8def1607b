"""`lpm adapt` and the adapted predictor: method choice by leave-one-out, persistence with its sources,
gradients, and the command's refusals (nothing measured, nothing saved)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lpm_zoo.adaptation.methods import choose_method
from lpm_zoo.adaptation.predictor import AdaptedPredictor
from lpm_zoo.backends.device import device_name
from lpm_zoo.calibration import calibration_keys, coverage
from lpm_zoo.cli import main
from lpm_zoo.encoding import op_counts
from lpm_zoo.predictors import create_predictor, get_predictor, load_predictor
from lpm_zoo.predictors.files import keys_to_arrays
from lpm_zoo.sampler import sample_arrays
from lpm_zoo.synthetic import OP_COST

HERE = device_name("cpu")  # the name this machine's measurements are filed under (a hardware slug)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A ridge fitted on the synthetic cost table, saved like a zoo entry (the 'other machine')."""
    ops, inputs = sample_arrays(600, seed=0)
    path = tmp_path_factory.mktemp("zoo") / "src"
    create_predictor("ridge").fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(path))
    return path


def _target(ops, factor=1.3, extra=None, noise=0.0):
    y = factor * (5 + OP_COST[ops].sum(1))
    y = y + (0 if extra is None else op_counts(ops) @ extra)
    return y * (1 + noise * np.random.default_rng(len(ops)).standard_normal(len(ops)))


@pytest.mark.parametrize("case,expected", [("faster", {"scale", "affine"}), ("op-change", {"residual", "stack"})])
def test_the_method_is_chosen_by_leave_one_out(source, case, expected):
    src = load_predictor(source)
    ops, inputs = sample_arrays(30, seed=5)
    extra = None if case == "faster" else np.array([0, 0, 0, 0, 0, 2.0, 0, 0])  # sep_conv_5x5 dearer here
    y = _target(ops, extra=extra, noise=0.01)
    S = src.predict((ops, inputs))[:, None]
    design, table = choose_method(S, None, op_counts(ops), y)
    assert design.method in expected
    assert {r["method"] for r in table} >= {"scale", "affine", "residual"}
    assert [(r["method"], r["lambda"]) for r in table if r["chosen"]] == [(design.method, design.lam)]
    if case == "op-change":  # what the source cannot see, only the richer methods fit
        assert min(r["loo_mre_pct"] for r in table if r["method"] in expected) < 0.5 * min(
            r["loo_mre_pct"] for r in table if r["method"] not in expected)


def test_few_cells_leave_only_the_simple_methods(source):
    ops, inputs = sample_arrays(4, seed=6)
    S = load_predictor(source).predict((ops, inputs))[:, None]
    _, table = choose_method(S, None, op_counts(ops), _target(ops))
    assert {r["method"] for r in table} == {"scale", "affine"}


def test_adapted_predictor_round_trips_with_its_sources_and_has_gradients(source, tmp_path):
    src = load_predictor(source)
    ops, inputs = sample_arrays(12, seed=7)
    p = AdaptedPredictor(method="affine", n_sources=1).with_sources([src], [source])
    p.fit((ops, inputs), _target(ops))
    p.save(str(tmp_path / "ad"))
    assert (tmp_path / "ad" / "sources" / "0" / "meta.json").is_file()
    q = load_predictor(tmp_path / "ad")
    test_ops, test_inputs = sample_arrays(50, seed=8)
    assert np.array_equal(q.predict((test_ops, test_inputs)), p.predict((test_ops, test_inputs)))
    assert np.allclose(q.predict((test_ops, test_inputs)), _target(test_ops), rtol=0.02)  # 1.3x the source
    from lpm_zoo.encoding import encode_arrays

    e = torch.tensor(encode_arrays(test_ops[:4], test_inputs[:4], np.float32), requires_grad=True)
    out = q.predict_torch(e)
    assert torch.allclose(out.double(), torch.as_tensor(q.predict((test_ops[:4], test_inputs[:4]))), rtol=1e-4)
    out.sum().backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()


def test_calibration_set_is_ordered_for_coverage():
    keys = calibration_keys()
    assert len(keys) == 100 and len(set(keys)) == 100
    assert coverage(keys[:20]) == 1.0 and coverage(keys[:10]) > 0.7
    ops, _ = keys_to_arrays(keys[:10])
    assert len(ops) == 10


def test_lpm_adapt_end_to_end_then_predict_and_zoo_list(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    db = tmp_path / "here.db"
    argv = ["adapt", "--from", "ort-cpu", "--backend", "ort", "--profile", "cifar-b1", "--samples", "3", "--db",
            str(db), "--name", "ort-here", "--no-progress", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 3 and out["method"] in ("scale", "affine") and out["loo_mre_pct"] >= 0
    assert out["hardware"]["model"]
    chosen = [r for r in out["candidates"] if r.get("chosen")]  # the error reported is the chosen method's own
    assert len(chosen) == 1 and chosen[0]["method"] == out["method"] and chosen[0]["loo_mre_pct"] == out["loo_mre_pct"]
    p = get_predictor("ort-here")
    assert p.meta["adapted"]["sources"] == ["ort-cpu"] and p.meta["hardware"] == out["hardware"]
    assert main(["predict", "--predictor", "ort-here", "--genotype", "DARTS_V2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0
    assert main(["zoo", "list"]) == 0
    assert any(line.startswith("ort-here ") and " adapted " in line for line in capsys.readouterr().out.splitlines())
    # measured once: a second run with --force reuses the store's cells
    before = db.stat().st_size
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()
    assert db.stat().st_size == before


@pytest.mark.parametrize("extra,msg", [
    (["--samples", "2"], "needs at least 3 measured cells"),
    (["--from", "nope"], "no fitted predictor named 'nope'"),
    (["--profile", "cifar-b32"], "predicts profile 'cifar-b1'"),
    (["--name", "../x"], "--name '../x': use letters"),
])
def test_adapt_refusals_measure_and_save_nothing(tmp_path, monkeypatch, capsys, extra, msg):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    db = tmp_path / "here.db"
    base = {"--from": "ort-cpu", "--backend": "ort", "--profile": "cifar-b1", "--samples": "10", "--db": str(db),
            "--name": "x"}
    args = dict(base)
    froms = ["ort-cpu"]
    for k, v in zip(extra[::2], extra[1::2]):
        if k == "--from":
            froms = [v]
        else:
            args[k] = v
    argv = ["adapt"] + [a for k, v in args.items() if k != "--from" for a in (k, v)] + [a for f in froms
                                                                                       for a in ("--from", f)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not db.exists() and not (tmp_path / "zoo" / "x").exists()


def test_finetune_starts_from_the_scaled_source_and_keeps_its_shape(tmp_path):
    from lpm_zoo.adaptation.finetune import RECIPES, choose_recipe, finetune

    ops, inputs = sample_arrays(400, seed=0)
    src = create_predictor("mlp-plus", epochs=40).fit((ops, inputs), 5 + OP_COST[ops].sum(1))
    tops, tinputs = sample_arrays(220, seed=9)
    y = _target(tops, factor=1.3, extra=np.array([0, 0, 0, 0, 0, 0.5, 0, 0]))
    scaled = finetune(src, tops[:20], tinputs[:20], y[:20], steps=0)
    tuned = finetune(src, tops[:20], tinputs[:20], y[:20], "head", 1.0)
    err = {name: np.mean(np.abs(p.predict((tops[20:], tinputs[20:])) - y[20:]) / y[20:])
           for name, p in (("source", src), ("scaled", scaled), ("tuned", tuned))}
    assert err["scaled"] < 0.5 * err["source"]  # the 1.3x is taken out before any step
    assert err["tuned"] < err["scaled"]  # and the steps learn some of the dearer sep_conv_5x5
    assert [W.shape for W, _ in tuned._weights] == [W.shape for W, _ in src._weights]
    assert tuned.meta["train_size"] == 20 and src.meta["train_size"] == 400  # the source is untouched
    tuned.save(str(tmp_path / "t"))
    back = load_predictor(tmp_path / "t")
    assert np.allclose(back.predict((tops, tinputs)), tuned.predict((tops, tinputs)))
    best, rows = choose_recipe(src, tops[:20], tinputs[:20], y[:20])
    assert [(r["method"], r["lambda"]) for r in rows] == [(f"finetune-{m}", lam) for m, lam in RECIPES]
    assert best["loo_mre_pct"] == min(r["loo_mre_pct"] for r in rows)


@pytest.mark.parametrize("flag", [[], ["--no-finetune"]])
def test_lpm_adapt_tries_finetuning_an_mlp_source(tmp_path, monkeypatch, capsys, flag):
    """Cells already in the store are reused (nothing measured); an MLP source adds fine-tuning candidates."""
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.store import Measurement, MeasurementStore

    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    db = tmp_path / "here.db"
    keys = calibration_keys(12)
    ops, inputs = keys_to_arrays(keys)
    y = 1.2 * get_predictor("ort-cpu").predict((ops, inputs))
    prof = get_profile("cifar-b1")
    from lpm_zoo.encoding import arrays_to_cell

    with MeasurementStore(db) as s:
        s.add_many([Measurement(prof.genotype(arrays_to_cell(o, i)), "ort", HERE, "cifar-b1", float(v), 0.01,
                                [float(v)] * 3, {"statistic": "min_ratio"}) for o, i, v in zip(ops, inputs, y)])
    argv = ["adapt", "--from", "ort-cpu", "--backend", "ort", "--profile", "cifar-b1", "--samples", "12", "--db",
            str(db), "--name", "ft", "--no-progress", "--json", *flag]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    tried = {r["method"] for r in out["candidates"]}
    assert ("finetune-head" in tried) == (not flag)
    p = get_predictor("ft")
    assert p.type_name == ("mlp-plus" if out["method"].startswith("finetune") else "adapted")
    assert np.allclose(p.predict((ops, inputs)), y, rtol=0.05)  # a 1.2x device is one number away
