"""Predictor registry, types, persistence and the fit / compare / zoo / predict commands.

All latencies here are synthetic (a known additive-plus-interaction function of the cell plus
noise), never real timings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lpm_zoo.cli import main
from lpm_zoo.encoding import cells_to_arrays, encode_arrays
from lpm_zoo.errors import LpmError
from lpm_zoo.notes import LpmNote
from lpm_zoo.predictors import (
    Predictor,
    create_predictor,
    get_predictor,
    list_predictor_types,
    list_predictors,
    load_predictor,
    predictor_class,
    register_predictor,
)
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.space import PRIMITIVES, Genotype
from lpm_zoo.store import Measurement, MeasurementStore, Target
from lpm_zoo.synthetic import OP_COST, make_synthetic_store, synthetic_latency

FAST = {"mlp": {"epochs": 150}, "mlp-plus": {"epochs": 150}, "mlp-split": {"epochs": 150}, "rf": {"n_estimators": 30},
        "gbrt": {"max_iter": 40}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One BLAS/OpenMP/torch thread: these fits are tiny, and busy-waiting thread pools on a shared
    2-core machine make them 10x slower (throughput is measured in BENCHMARKS.md, not here)."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    ops, inputs, _ = sample_unique_arrays(1500, seed=3)
    return ops, inputs, synthetic_latency(ops, inputs)


def _mre(y, p):
    return float(np.mean(np.abs(p - y) / y))


# --- registry -------------------------------------------------------------------------------------
def test_registry_lists_the_types_and_rejects_unknown_names():
    assert {"mlp", "ridge", "rf", "gbrt", "knn", "lut", "flops"} <= set(list_predictor_types())
    with pytest.raises(LpmError, match="unknown predictor type 'nope'.*known: .*mlp"):
        create_predictor("nope")
    with pytest.raises(LpmError, match="no parameter.*bogus"):
        create_predictor("ridge", bogus=1)


def test_register_a_third_party_type(data):
    @register_predictor("test-mean-op")
    class MeanPerOp(Predictor):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale
            self._mean = None

        def _fit(self, ops, inputs, y):
            self._mean = float(y.mean())

        def _predict(self, ops, inputs):
            return np.full(len(ops), self._mean * self.scale)

        @property
        def fitted(self):
            return self._mean is not None

    ops, inputs, y = data
    p = create_predictor("test-mean-op", scale=2.0).fit((ops, inputs), y)
    assert np.allclose(p.predict((ops[:3], inputs[:3])), 2 * y.mean())
    assert p.get_params() == {"scale": 2.0}
    with pytest.raises(NotImplementedError, match="not differentiable"):
        p.predict_torch(torch.zeros(1, 112))
    with pytest.raises(ValueError, match="already registered"):
        register_predictor("ridge")(MeanPerOp)


def test_unfitted_predict_says_fit_first():
    with pytest.raises(LpmError, match="not fitted"):
        create_predictor("ridge").predict([])


def test_unknown_fitted_name_lists_and_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path))
    with pytest.raises(LpmError) as e:
        get_predictor("trt-p100")
    msg = str(e.value)
    assert "no fitted predictor named 'trt-p100'" in msg and "have:" in msg
    assert "lpm profile --backend trt --device cuda --device-name p100" in msg
    assert "lpm fit --db lpm.db --backend trt --device-name p100" in msg
    from lpm_zoo.hardware import cpu_model, cpu_slug

    here = cpu_slug(cpu_model())  # this CPU's own name is profiled on the CPU
    with pytest.raises(LpmError, match=f"lpm profile --backend ort --device cpu --device-name {here} "):
        get_predictor(f"ort-{here}")


# --- every type fits and beats a constant predictor ----------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "mlp-plus", "mlp-split", "ridge", "rf", "gbrt", "knn", "lut", "flops"])
def test_each_type_beats_a_constant_predictor(name, data):
    ops, inputs, y = data
    tr, te = slice(0, 1200), slice(1200, None)
    p = create_predictor(name, **FAST.get(name, {})).fit((ops[tr], inputs[tr]), y[tr])
    pred = p.predict((ops[te], inputs[te]))
    assert pred.shape == (300,) and np.isfinite(pred).all()
    const = _mre(y[te], np.full(300, y[tr].mean()))
    assert _mre(y[te], pred) < 0.8 * const, (name, _mre(y[te], pred), const)
    assert p.meta["type"] == name and p.meta["train_size"] == 1200 and len(p.meta["train_hash"]) == 64


def test_input_forms_agree(data):
    ops, inputs, y = data
    p = create_predictor("ridge").fit((ops, inputs), y)
    from lpm_zoo.encoding import arrays_to_cell
    from lpm_zoo.profiles import get_profile

    cells = [arrays_to_cell(o, i) for o, i in zip(ops[:20], inputs[:20])]
    genos = [get_profile("cifar-b1").genotype(c) for c in cells]
    a = p.predict((ops[:20], inputs[:20]))
    assert np.allclose(a, p.predict(encode_arrays(ops[:20], inputs[:20])))
    assert np.allclose(a, p.predict(cells))
    assert np.allclose(a, p.predict(genos))
    with pytest.raises(LpmError, match="shape"):
        p.predict(np.zeros((2, 100)))


# --- the paper's MLP ---------------------------------------------------------------------------------
def test_mlp_is_the_papers_lpm():
    p = create_predictor("mlp")
    assert (p.hidden, p.epochs, p.batch_size, p.lr, p.momentum, p.weight_decay) == ((256, 64), 1000, 200, 0.01, 0.9, 1e-5)
    net = p.build_module()
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    shapes = [(m.in_features, m.out_features) for m in net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(112, 256), (256, 64), (64, 1)]
    opt = p.make_optimizer(net.parameters())
    assert isinstance(opt, torch.optim.SGD)
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["nesterov"], g["dampening"]) == (0.01, 0.9, 1e-5, False, 0)
    assert p.differentiable


def test_mlp_fast_training_equals_torch_autograd_sgd(data):
    """The hand-written training loop computes exactly what torch.optim.SGD + autograd would."""
    ops, inputs, y = data
    X, Y = (ops[:450], inputs[:450]), y[:450]
    fast = create_predictor("mlp", epochs=3, seed=5).fit(X, Y)

    class Slow(predictor_class("mlp")):
        def _fast_path(self):
            return False

    slow = Slow(epochs=3, seed=5)
    slow.fit(X, Y)
    for (Wf, bf), (Ws, bs) in zip(fast._weights, slow._weights):
        assert np.allclose(Wf, Ws, atol=1e-5) and np.allclose(bf, bs, atol=1e-5)
    # and training moved the weights (the comparison is not between two untrained nets)
    untrained = create_predictor("mlp", epochs=0, seed=5).fit(X, Y)
    assert not np.allclose(fast._weights[0][0], untrained._weights[0][0], atol=1e-4)


def test_mlp_is_deterministic_given_a_seed(data):
    ops, inputs, y = data
    a = create_predictor("mlp", epochs=2, seed=1).fit((ops, inputs), y).predict((ops[:50], inputs[:50]))
    b = create_predictor("mlp", epochs=2, seed=1).fit((ops, inputs), y).predict((ops[:50], inputs[:50]))
    c = create_predictor("mlp", epochs=2, seed=2).fit((ops, inputs), y).predict((ops[:50], inputs[:50]))
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("name", ["mlp", "mlp-plus", "mlp-split", "ridge", "lut", "flops"])
def test_predict_torch_matches_predict_and_has_gradients(name, data):
    ops, inputs, y = data
    p = create_predictor(name, **{k: 2 for k in ("epochs",) if "epochs" in FAST.get(name, {})})
    p.fit((ops[:600], inputs[:600]), y[:600])
    assert p.differentiable
    enc = torch.from_numpy(encode_arrays(ops[600:700], inputs[600:700])).requires_grad_()
    out = p.predict_torch(enc)
    assert out.shape == (100,)
    assert np.allclose(out.detach().numpy(), p.predict((ops[600:700], inputs[600:700])), rtol=1e-4, atol=1e-4)
    out.sum().backward()
    assert enc.grad is not None and enc.grad.abs().sum() > 0
    # relaxed (softmax-like) encodings are accepted too, and stay differentiable
    soft = torch.full((3, 112), 1 / 8, requires_grad=True)
    p.predict_torch(soft).sum().backward()
    assert torch.isfinite(soft.grad).all()


@pytest.mark.parametrize("name", ["rf", "gbrt", "knn"])
def test_tree_and_neighbour_types_are_not_differentiable(name):
    p = create_predictor(name)
    assert not p.differentiable
    with pytest.raises(NotImplementedError):
        p.predict_torch(torch.zeros(1, 112))


# --- multiply-adds ------------------------------------------------------------------------------------
def test_cell_madds_matches_count_madds():
    from lpm_zoo.complexity import cell_madds, genotype_complexity
    from lpm_zoo.sampler import sample_genotypes

    gs = sample_genotypes(3, seed=11)
    ops, _ = cells_to_arrays(gs)
    fast = cell_madds(ops, "cifar")
    slow = [round(genotype_complexity(g, "cifar")["madds_M"] * 1e6) for g in gs]
    assert fast.tolist() == slow
    assert len(set(slow)) > 1


def test_lut_table_recovers_an_additive_cost():
    ops, inputs, _ = sample_unique_arrays(400, seed=4)
    y = 2.0 + OP_COST[ops].sum(1)
    table = create_predictor("lut").fit((ops, inputs), y).table()
    assert table["base"] + 8 * table["skip_connect"] == pytest.approx(2.0 + 8 * OP_COST[3], abs=1e-6)
    diffs = [table[op] - table["skip_connect"] for op in PRIMITIVES[1:]]
    assert np.allclose(diffs, OP_COST[1:] - OP_COST[3], atol=1e-6)


# --- persistence ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "ridge", "rf", "gbrt", "knn", "lut", "flops"])
def test_save_load_round_trip_is_identical(name, data, tmp_path):
    ops, inputs, y = data
    p = create_predictor(name, **({"epochs": 2} if name == "mlp" else FAST.get(name, {})))
    p.fit((ops[:500], inputs[:500]), y[:500])
    p.save(tmp_path / "x")
    files = sorted(f.name for f in (tmp_path / "x").iterdir())
    assert "meta.json" in files and "train.json.gz" in files
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".joblib")) for f in files)
    q = load_predictor(tmp_path / "x")
    assert type(q) is type(p) and q.get_params() == p.get_params()
    assert np.array_equal(q.predict((ops[500:], inputs[500:])), p.predict((ops[500:], inputs[500:])))
    meta = json.loads((tmp_path / "x" / "meta.json").read_text())
    assert meta["type"] == name and meta["encoding"] == "lpm-112" and meta["train_size"] == 500
    assert {"numpy", "python"} <= set(meta["versions"])
    assert "refit" not in q.meta


def test_skops_failure_falls_back_to_a_refit(data, tmp_path, capsys):
    ops, inputs, y = data
    p = create_predictor("rf", n_estimators=20).fit((ops[:400], inputs[:400]), y[:400])
    p.save(tmp_path / "rf")
    (tmp_path / "rf" / "model.skops").write_bytes(b"not a zip file")  # as if a library upgrade broke it
    with pytest.warns(LpmNote, match="refitting"):  # a library call: the note is a warning (the CLI prints it)
        q = load_predictor(tmp_path / "rf")
    assert q.meta["refit"]
    assert np.array_equal(q.predict((ops[400:], inputs[400:])), p.predict((ops[400:], inputs[400:])))


def test_other_sklearn_version_refits(data, tmp_path, capsys):
    ops, inputs, y = data
    p = create_predictor("gbrt", max_iter=20).fit((ops[:300], inputs[:300]), y[:300])
    p.save(tmp_path / "k")
    meta_path = tmp_path / "k" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"]["scikit-learn"] = "0.0.1"
    meta_path.write_text(json.dumps(meta))
    q = load_predictor(tmp_path / "k")
    assert "scikit-learn 0.0.1" in q.meta["refit"]
    assert np.array_equal(q.predict((ops[300:], inputs[300:])), p.predict((ops[300:], inputs[300:])))


def test_tampered_training_set_is_refused(data, tmp_path):
    import gzip

    ops, inputs, y = data
    p = create_predictor("rf", n_estimators=5).fit((ops[:300], inputs[:300]), y[:300])
    p.save(tmp_path / "k")
    (tmp_path / "k" / "model.skops").write_bytes(b"damaged")
    tr = json.loads(gzip.decompress((tmp_path / "k" / "train.json.gz").read_bytes()))
    tr["latency_ms"][0] += 1.0
    (tmp_path / "k" / "train.json.gz").write_bytes(gzip.compress(json.dumps(tr).encode()))
    with pytest.raises(LpmError, match="does not match its recorded hash"):
        load_predictor(tmp_path / "k")


def test_skops_refuses_foreign_types(data, tmp_path, monkeypatch, capsys):
    import skops.io as sio

    ops, inputs, y = data
    p = create_predictor("rf", n_estimators=5).fit((ops[:300], inputs[:300]), y[:300])
    p.save(tmp_path / "r")
    monkeypatch.setattr(sio, "get_untrusted_types", lambda **kw: ["sklearn.tree._tree.Tree", "os.system"])
    with pytest.raises(LpmError, match="refusing the model.*os.system"):
        load_predictor(tmp_path / "r")


@pytest.mark.parametrize("name", ["rf", "gbrt"])
def test_skops_allow_list_is_exactly_what_a_fitted_model_holds(data, tmp_path, name):
    """The checked-in allow-list equals skops' untrusted types of a freshly fitted model of the type."""
    import skops.io as sio

    ops, inputs, y = data
    p = create_predictor(name, **({"n_estimators": 3} if name == "rf" else {"max_iter": 3})).fit(
        (ops[:200], inputs[:200]), y[:200])
    p.save(tmp_path / name)
    assert set(sio.get_untrusted_types(file=tmp_path / name / "model.skops")) == set(predictor_class(name).skops_types)


def test_old_skops_ridge_is_refitted_as_arrays(data, tmp_path, capsys):
    """A ridge stored with skops by an earlier lpm-zoo is refitted from its training set, never unpacked."""
    ops, inputs, y = data
    p = create_predictor("ridge").fit((ops[:300], inputs[:300]), y[:300])
    p.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    meta["persistence"] = "skops"
    (tmp_path / "r" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "r" / "model.safetensors").unlink()
    (tmp_path / "r" / "model.skops").write_bytes(b"never read")
    with pytest.warns(LpmNote, match="refitting"):
        q = load_predictor(tmp_path / "r")
    assert np.allclose(q.predict((ops[300:], inputs[300:])), p.predict((ops[300:], inputs[300:])))


def test_zoo_lookup_user_dir_first(data, tmp_path, monkeypatch):
    ops, inputs, y = data
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    create_predictor("lut").fit((ops, inputs), y).save(tmp_path / "zoo" / "fake-dev")
    assert "fake-dev" in list_predictors()
    q = get_predictor("fake-dev")
    assert q.type_name == "lut" and q.meta["name"] == "fake-dev"
    assert get_predictor(str(tmp_path / "zoo" / "fake-dev")).type_name == "lut"  # a directory works too


# --- the commands -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "lpm.db"
    make_synthetic_store(str(path), 700, seed=9, backend="fake", device="dev")
    return path


DB = ["--backend", "fake", "--device-name", "dev", "--profile", "cifar-b1"]


def test_cli_fit_zoo_predict(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    assert main(["fit", "--db", str(store), *DB, "--predictor", "mlp", "--epochs", "30", "--train-size", "400"]) == 0
    out = capsys.readouterr().out
    assert "saved fake-dev (mlp" in out and "held-out (140)" in out
    meta = json.loads((tmp_path / "zoo" / "fake-dev" / "meta.json").read_text())
    assert (meta["backend"], meta["device"], meta["profile"], meta["train_size"]) == ("fake", "dev", "cifar-b1", 400)
    assert set(meta["metrics"]) >= {"mae_ms", "mre_pct", "within10_pct", "kendall_tau", "spearman_rho"}
    assert meta["params"]["epochs"] == 30 and meta["params"]["progress"] is False

    other = tmp_path / "elsewhere"
    assert main(["fit", "--db", str(store), *DB, "--predictor", "ridge", "--name", "my-ridge",
                 "--zoo-dir", str(other), "--test-size", "0"]) == 0
    assert (other / "my-ridge" / "model.safetensors").is_file()
    capsys.readouterr()

    assert main(["zoo", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows if r["where"] == "user"] == ["fake-dev"]
    assert main(["zoo", "list"]) == 0
    assert "fake-dev" in capsys.readouterr().out

    assert main(["predict", "--predictor", "fake-dev", "--genotype", "DARTS_V2", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    expected = get_predictor("fake-dev").predict(cells_to_arrays([__import__("lpm_zoo").get_genotype("DARTS_V2")]))[0]
    assert rec["latency_ms"] == pytest.approx(expected)

    from lpm_zoo.published import DARTS_V2

    lines = [{"genotype": "DARTS_V2"}, {"genotype": DARTS_V2.to_darts(), "id": 7},
             {"genotype": {"normal": [list(p) for p in DARTS_V2.normal]}}]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["predict", "--predictor", "fake-dev", "--input", str(f), "--json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(recs) == 3 and recs[1]["id"] == 7
    assert recs[0]["latency_ms"] == recs[1]["latency_ms"] == recs[2]["latency_ms"] == pytest.approx(expected)
    assert main(["predict", "--predictor", "fake-dev", "--input", str(f)]) == 0
    assert capsys.readouterr().out.count(" ms ") == 3


def test_cli_zoo_list_empty_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    import lpm_zoo.predictors.zoo as zoo

    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "none"))
    monkeypatch.setattr(zoo, "bundled_zoo_dir", lambda: tmp_path / "no-bundle")
    assert main(["zoo", "list"]) == 0
    assert "no fitted predictors" in capsys.readouterr().out
    assert main(["zoo", "list", "--json"]) == 0 and capsys.readouterr().out == ""


def test_cli_predict_bad_line_is_one_line_exit_2(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    create_predictor("lut").fit(*_xy(store)).save(tmp_path / "zoo" / "fake-dev")
    f = tmp_path / "bad.jsonl"
    f.write_text('{"genotype": "DARTS_V2"}\n\n{"genotype": {"normal": [["sep_conv_3x3", 0]]}}\n')
    assert main(["predict", "--predictor", "fake-dev", "--input", str(f), "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1 and "line 3" in cap.err
    f.write_text('{"genotype": "DARTS_V2"}\nnot json\n')
    assert main(["predict", "--predictor", "fake-dev", "--input", str(f)]) == 2
    assert "line 2: not JSON" in capsys.readouterr().err
    assert main(["predict", "--predictor", "nope-dev", "--genotype", "DARTS_V2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "lpm fit" in err


def _xy(store):
    from lpm_zoo.store import load_dataset

    d = load_dataset(store, Target("fake", "dev", "cifar-b1"))
    return (d.ops, d.inputs), d.latency_ms


def test_cli_compare_table_json_and_plots(store, tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--db", str(store), *DB, "--predictors", "ridge,lut,flops,knn",
               "--train-sizes", "100,400,5000", "--out", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    table = [line for line in cap.out.splitlines() if line.split()[:1] in (["ridge"], ["lut"], ["flops"], ["knn"])]
    assert len(table) == 8  # 4 types x 2 sizes (5000 skipped: more than the pool)
    assert "skipped training sizes [5000]" in cap.err
    assert "repeatability of the data: unknown" in cap.out and "lpm recheck" in cap.out
    summary = json.loads((out / "compare.json").read_text())
    rows = {(r["predictor"], r["train_size"]): r for r in summary["rows"]}
    assert rows[("ridge", 400)]["mre_pct"] < rows[("flops", 400)]["mre_pct"]  # interactions/inputs beat FLOPs
    assert rows[("ridge", 400)]["test_size"] == 140
    for png in ("error_vs_train_size.png", "predicted_vs_measured.png", "latency_vs_madds.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_and_fit_report_the_datas_repeatability(store, tmp_path, capsys):
    import shutil

    from lpm_zoo.store import Measurement, MeasurementStore

    db = tmp_path / "rep.db"
    shutil.copy(store, db)
    with MeasurementStore(db) as s:
        recs = list(s.measurements())[:20]
        s.add_many([Measurement(Genotype.from_dict(r["genotype"]), r["backend"], r["device"], r["profile"],
                                r["latency_ms"] * 1.02, 0.0, r["runs_ms"], r["protocol"]) for r in recs])
    out = tmp_path / "cmp"
    assert main(["compare", "--db", str(db), *DB, "--predictors", "ridge", "--train-sizes", "100",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(20 architectures measured twice): mean |a-b|/mean 1.98%" in text
    assert "Kendall tau of the two 1.000" in text  # the same ranking, 2% apart
    mre = json.loads((out / "compare.json").read_text())["rows"][0]["mre_pct"]
    assert "x the repeatability of the data" in text and f"{mre / (200 / 101):.2f} x" in text
    assert main(["fit", "--db", str(db), *DB, "--predictor", "ridge", "--zoo-dir", str(tmp_path / "zoo"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data_repeatability"]["n"] == 20


def test_cli_compare_resumes_an_interrupted_run(store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    argv = ["compare", "--db", str(store), *DB, "--predictors", "ridge,lut", "--train-sizes", "100,400",
            "--out", str(out)]
    import lpm_zoo.evaluation.compare as base  # where compare() finds create_predictor

    real = base.create_predictor
    calls = []

    def interrupting(name, **kw):
        calls.append(name)
        if name == "lut":
            raise KeyboardInterrupt  # Ctrl-C while the second type is being fitted
        return real(name, **kw)

    monkeypatch.setattr(base, "create_predictor", interrupting)
    assert main(argv) == 130
    saved = json.loads((out / "compare.json").read_text())
    assert sorted((r["predictor"], r["train_size"]) for r in saved["rows"]) == [("ridge", 100), ("ridge", 400)]
    monkeypatch.setattr(base, "create_predictor", lambda name, **kw: calls.append(name) or real(name, **kw))
    calls.clear()
    capsys.readouterr()
    assert main(argv) == 0
    assert calls == ["lut", "lut"]  # ridge's results were reused, not refitted
    cap = capsys.readouterr().out
    assert "reusing 2 result(s)" in cap and cap.count("(reused)") == 2
    rows = json.loads((out / "compare.json").read_text())["table"]
    assert [(r["predictor"], r["train_size"]) for r in rows] == [("ridge", 100), ("ridge", 400), ("lut", 100),
                                                                 ("lut", 400)]
    calls.clear()
    assert main([*argv, "--no-resume"]) == 0
    assert calls == ["ridge", "ridge", "lut", "lut"]


def test_cli_errors_are_one_line(store, tmp_path, capsys):
    assert main(["compare", "--db", str(store), *DB, "--predictors", "ridge,nope", "--out", str(tmp_path)]) == 2
    assert "unknown predictor type 'nope'" in capsys.readouterr().err
    assert main(["fit", "--db", str(tmp_path / "missing.db"), *DB, "--zoo-dir", str(tmp_path)]) == 2
    assert "lpm profile" in capsys.readouterr().err
    assert main(["fit", "--db", str(store), *DB, "--train-size", "100000", "--zoo-dir", str(tmp_path)]) == 2
    assert "--train-size" in capsys.readouterr().err
    assert main(["compare", "--db", str(store), *DB, "--train-sizes", "a,b", "--out", str(tmp_path)]) == 2
    assert "--train-sizes" in capsys.readouterr().err
    assert main(["fit", "--db", str(store), *DB, "--param", "mlp.bogus=1", "--zoo-dir", str(tmp_path)]) == 2
    assert "no parameter 'bogus'" in capsys.readouterr().err


def test_bundled_predictors_load():
    """Whatever the package ships in lpm_zoo/zoo/ loads and predicts DARTS_V2 to a positive latency."""
    from lpm_zoo.predictors.zoo import bundled_zoo_dir
    from lpm_zoo.published import DARTS_V2

    shipped = [d for d in bundled_zoo_dir().glob("*") if (d / "meta.json").is_file()]
    assert {"ort-cpu", "torch-cpu", "ort-cpu-lpm", "torch-cpu-lpm"} <= {d.name for d in shipped}
    for d in shipped:
        p = load_predictor(d)
        assert p.predict([DARTS_V2])[0] > 0
        assert p.meta.get("refit") is None, f"{d.name} did not load without a refit"
        assert p.differentiable  # the search's pathwise estimator can use every shipped predictor
    assert load_predictor(bundled_zoo_dir() / "ort-cpu-lpm").type_name == "mlp"  # the paper's LPM, as published
    assert load_predictor(bundled_zoo_dir() / "ort-cpu").meta["train_size"] <= 10_000


def test_bad_parameter_values_are_user_errors():
    for params in ({"hidden": 256}, {"batch_size": 0}, {"epochs": -1}, {"epochs": "many"}):
        with pytest.raises(LpmError, match="bad parameter value"):
            create_predictor("mlp", **params)


def test_fit_records_the_runtime_settings_the_rows_agree_on_and_warns_when_they_differ(tmp_path, monkeypatch,
                                                                                      capsys):

    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    path = tmp_path / "rt.db"
    make_synthetic_store(str(path), 60, seed=3, backend="fake", device="dev")
    with MeasurementStore(str(path)) as st:  # the same cells' rows, as a runtime plugin would write them
        rows = [m for m in st.measurements(backend="fake", device="dev", profile="cifar-b1")]
    one = {"rt": "1.0", "threads": 1, "precision": "f32"}
    for db, runtimes in (("same.db", [one] * len(rows)),
                         ("mixed.db", [one] * 30 + [{**one, "rt": "1.1"}] * (len(rows) - 30))):
        ms = [Measurement(genotype=Genotype.from_dict(r["genotype"]), backend="fake", device="dev", profile="cifar-b1",
                          latency_ms=r["latency_ms"], spread_ms=r["spread_ms"], runs_ms=[r["latency_ms"]] * 3,
                          protocol={"statistic": "median", "runtime": rt}) for r, rt in zip(rows, runtimes)]
        with MeasurementStore(str(tmp_path / db)) as st:
            st.add_many(ms)
    assert main(["fit", "--db", str(tmp_path / "same.db"), *DB, "--predictor", "lut", "--name", "same"]) == 0
    assert "warning" not in capsys.readouterr().err
    meta = json.loads((tmp_path / "zoo" / "same" / "meta.json").read_text())
    assert meta["runtime"] == one and "runtime_mixed" not in meta
    assert main(["fit", "--db", str(tmp_path / "mixed.db"), *DB, "--predictor", "lut", "--name", "mixed"]) == 0
    assert "warning: the rows differ in runtime settings (rt)" in capsys.readouterr().err
    meta = json.loads((tmp_path / "zoo" / "mixed" / "meta.json").read_text())
    assert meta["runtime"] == {"threads": 1, "precision": "f32"} and meta["runtime_mixed"] == ["rt"]
