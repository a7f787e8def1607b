"""Whole-network profiles: both cells encoded (224 bits), sampled, stored, measured and predicted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lpm_zoo.backends.device import device_name
from lpm_zoo.calibration import calibration_cells, calibration_keys
from lpm_zoo.cli import main
from lpm_zoo.encoding import (
    arrays_to_genotype,
    decode_arrays,
    encode_arrays,
    genotype_key,
    genotype_to_arrays,
    keys_from_arrays,
)
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors import create_predictor, load_predictor
from lpm_zoo.profiles import get_profile, list_profiles
from lpm_zoo.published import DARTS_V2, PC_DARTS_cifar
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.store import MeasurementStore, Target, load_dataset
from lpm_zoo.synthetic import OP_COST, make_synthetic_store

HERE = device_name("cpu")  # the name this machine's measurements are filed under (a hardware slug)

BOTH = get_profile("cifar-b1-both")


def test_the_224_bit_encoding_is_the_two_112_bit_ones():
    ops, inputs, keys = sample_unique_arrays(50, seed=3, cells=2)
    assert ops.shape == (50, 16) and len(set(keys)) == 50
    bits = encode_arrays(ops, inputs)
    assert bits.shape == (50, 224) and (bits.sum(1) == 16).all()
    assert np.array_equal(bits[:, :112], encode_arrays(ops[:, :8], inputs[:, :8]))
    assert np.array_equal(bits[:, 112:], encode_arrays(ops[:, 8:], inputs[:, 8:]))
    assert keys_from_arrays(*decode_arrays(bits)) == keys  # canonical: decoding and keying round-trip
    g = arrays_to_genotype(ops[0], inputs[0])
    assert keys[0] == genotype_key(g) == BOTH.key(g)
    o, i = genotype_to_arrays(PC_DARTS_cifar)
    assert arrays_to_genotype(o, i) == PC_DARTS_cifar


def test_both_cell_profiles_measure_the_genotype_as_given():
    assert {"cifar-b1-both", "cifar-b32-both", "imagenet-b32-both"} <= set(list_profiles())
    assert BOTH.encoding == "lpm-224" and get_profile("cifar-b1").encoding == "lpm-112"
    assert BOTH.genotype(PC_DARTS_cifar) == PC_DARTS_cifar
    assert get_profile("cifar-b1").genotype(PC_DARTS_cifar).reduce == DARTS_V2.reduce
    with pytest.raises(LpmError, match="whole genotypes"):
        BOTH.genotype(PC_DARTS_cifar.normal)
    ops, inputs = BOTH.arrays([DARTS_V2, PC_DARTS_cifar])
    assert ops.shape == (2, 16) and BOTH.from_arrays(ops[1], inputs[1]) == PC_DARTS_cifar


@pytest.fixture(scope="module")
def both_store(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("both") / "b.db")
    make_synthetic_store(db, 400, profile="cifar-b1-both")
    return db


def test_a_store_keeps_both_cells(both_store):
    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    assert data.ops.shape == (400, 16) and all(":" in k for k in data.keys)
    g = data.genotypes()
    assert len({x.reduce for x in g}) > 300  # the reduction cells vary, unlike a normal-cell profile
    with MeasurementStore(both_store) as s:
        row = next(iter(s.measurements("synth", "cpu", "cifar-b1-both")))
        assert len(row["encoding"]) == 224 and row["cell_key"] == genotype_key(g[0])


@pytest.mark.parametrize("kind,params", [("ridge", {}), ("lut", {}), ("mlp-plus", {"epochs": 60}),
                                         ("mlp-split", {"epochs": 60}), ("knn", {})])
def test_every_predictor_type_reads_224_bits_and_round_trips(both_store, kind, params, tmp_path):
    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    X, y = (data.ops[:300], data.inputs[:300]), data.latency_ms[:300]
    p = create_predictor(kind, **params).fit(X, y)
    assert p.meta["encoding"] == "lpm-224"
    pred = p.predict((data.ops[300:], data.inputs[300:]))
    err = np.mean(np.abs(pred - data.latency_ms[300:]) / data.latency_ms[300:])
    assert err < 0.15, (kind, err)  # the reduction cell's operations are learnt, not ignored
    p.save(str(tmp_path / kind))
    back = load_predictor(tmp_path / kind)
    assert np.allclose(back.predict([PC_DARTS_cifar]), p.predict([PC_DARTS_cifar]))
    with pytest.raises(LpmError, match="reads whole genotypes .* given normal cells"):
        back.predict((data.ops[:3, :8], data.inputs[:3, :8]))
    if p.differentiable:
        enc = torch.tensor(encode_arrays(data.ops[:4], data.inputs[:4]), requires_grad=True)
        out = p.predict_torch(enc)
        assert np.allclose(out.detach().numpy(), p.predict((data.ops[:4], data.inputs[:4])), rtol=1e-4, atol=1e-4)
        out.sum().backward()
        assert enc.grad.shape == (4, 224) and enc.grad[:, 112:].abs().sum() > 0


def test_mlp_split_prices_the_reduction_cell_linearly_and_is_mlp_plus_on_normal_cells(both_store):
    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    p = create_predictor("mlp-split", epochs=30).fit((data.ops, data.inputs), data.latency_ms)
    a, b = (PC_DARTS_cifar.__class__(normal=DARTS_V2.normal, reduce=r) for r in
            ([("skip_connect", 0), ("skip_connect", 1)] * 4, [("sep_conv_5x5", 0), ("sep_conv_5x5", 1)] * 4))
    ops, inputs = BOTH.arrays([a, b])
    diff = p.predict((ops, inputs))[1] - p.predict((ops, inputs))[0]
    dense = encode_arrays(ops, inputs)[:, 112:].astype(np.float64)
    assert diff == pytest.approx((dense[1] - dense[0]) @ p._state()["reduce.weight"], rel=1e-4)  # the linear term
    normal = create_predictor("mlp-split", epochs=30).fit((data.ops[:, :8], data.inputs[:, :8]), data.latency_ms)
    plus = create_predictor("mlp-plus", epochs=30, weight_decay=0.05, loss="huber", members=5).fit(
        (data.ops[:, :8], data.inputs[:, :8]), data.latency_ms)
    assert "reduce.weight" not in normal._state() and normal.meta["encoding"] == "lpm-112"
    assert np.allclose(normal.predict([DARTS_V2.normal]), plus.predict([DARTS_V2.normal]))


def test_the_reduction_cell_changes_the_prediction(both_store):
    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    p = create_predictor("lut").fit((data.ops, data.inputs), data.latency_ms)
    cheap = PC_DARTS_cifar.__class__(normal=DARTS_V2.normal, reduce=[("skip_connect", 0), ("skip_connect", 1)] * 4)
    dear = PC_DARTS_cifar.__class__(normal=DARTS_V2.normal, reduce=[("sep_conv_5x5", 0), ("sep_conv_5x5", 1)] * 4)
    a, b = p.predict([cheap, dear])
    assert b - a == pytest.approx(8 * (OP_COST[5] - OP_COST[3]), rel=0.1)  # what the synthetic device charges


def test_a_normal_cell_predictor_refuses_whole_genotypes():
    p = create_predictor("ridge").fit(*_normal_data())
    ops, inputs = BOTH.arrays([DARTS_V2])
    with pytest.raises(LpmError, match="reads normal cells .* given whole genotypes"):
        p.predict((ops, inputs))
    with pytest.raises(LpmError, match="counts multiply-adds of normal cells"):
        create_predictor("flops").fit((ops.repeat(3, 0), inputs.repeat(3, 0)), [1.0, 2.0, 3.0])


def test_flops_counts_whole_genotypes_exactly():
    from lpm_zoo.complexity import genotype_complexity

    ops, inputs, _ = sample_unique_arrays(6, seed=8, cells=2)
    p = create_predictor("flops", profile="small-b1-both")
    got = p.madds(ops, inputs)
    want = [genotype_complexity(BOTH.from_arrays(o, i), "cifar-small")["madds_M"] for o, i in zip(ops, inputs)]
    assert np.allclose(got, want, rtol=0, atol=1e-6)  # additive per edge and stride: exact, not an estimate
    p.fit((ops, inputs), 2 + 0.01 * got)
    enc = torch.tensor(encode_arrays(ops, inputs), dtype=torch.float64)
    assert np.allclose(p.predict_torch(enc).detach().numpy(), p.predict((ops, inputs)))


def _normal_data():
    ops, inputs, _ = sample_unique_arrays(40, seed=1)
    return (ops, inputs), 5 + OP_COST[ops].sum(1)


def test_profile_and_measure_on_a_both_cell_profile(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    fast = ["--warmup", "1", "--rounds", "2", "--reps", "2", "--statistic", "ref_ratio", "--no-progress"]
    assert main(["profile", "--backend", "ort", "--profile", "small-b1-both", "--samples", "3", "--db", db, *fast]) == 0
    data = load_dataset(db, Target("ort", HERE, "small-b1-both"))
    assert data.ops.shape == (3, 16) and any(g.reduce != DARTS_V2.reduce for g in data.genotypes())
    capsys.readouterr()
    g = json.dumps(PC_DARTS_cifar.to_dict())
    assert main(["measure", "--backend", "ort", "--profile", "small-b1-both", "--genotype", g, "--json", *fast[:-1]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key"] == genotype_key(PC_DARTS_cifar) and out["latency_ms"] > 0
    pairs = ", ".join(["('sep_conv_3x3', 0), ('sep_conv_3x3', 1)"] * 4)
    normal_only = f"Genotype(normal=[{pairs}], normal_concat=[2, 3, 4, 5])"
    assert main(["measure", "--backend", "ort", "--profile", "small-b1-both", "--genotype", normal_only]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reduce" in err
    assert main(["profile", "--backend", "ort", "--profile", "small-b1-both", "--samples", "2", "--db", db,
                 "--cells", "calibration", "--rounds", "2", "--reps", "1", "--no-progress"]) == 0
    keys, _, _ = calibration_cells("small-b1-both", 2)  # whole genotypes: a calibration cell in each role
    calib = calibration_keys()
    assert keys == [f"{calib[0]}:{calib[50]}", f"{calib[1]}:{calib[51]}"]
    with MeasurementStore(db) as s:
        assert set(keys) <= s.keys(Target("ort", HERE, "small-b1-both"))


def test_lpm_adapt_on_a_whole_network_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path / "zoo"))
    argv = ["adapt", "--from", "ort-cpu-small-both", "--backend", "ort", "--profile", "small-b1-both", "--samples",
            "5", "--db", str(tmp_path / "here.db"), "--name", "both-here", "--no-progress", "--json"]
    assert main([*argv, "--cells", "random"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 5 and out["profile"] == "small-b1-both"
    p = load_predictor(tmp_path / "zoo" / "both-here")
    assert p.predict([PC_DARTS_cifar])[0] > 0
    assert main(["adapt", "--from", "ort-cpu", "--backend", "ort", "--profile", "small-b1-both", "--cells", "random",
                 "--samples", "5", "--db", str(tmp_path / "other.db"), "--name", "x"]) == 2
    assert "(lpm-224)" in capsys.readouterr().err


def test_an_ensemble_is_one_network_whose_output_is_the_members_mean(both_store, tmp_path):
    from safetensors.numpy import load_file

    from lpm_zoo.adaptation.finetune import finetune

    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    X, y = (data.ops[:, :8], data.inputs[:, :8]), data.latency_ms
    ens = create_predictor("mlp-plus", epochs=15, members=3, seed=4).fit(X, y)
    alone = [create_predictor("mlp-plus", epochs=15, seed=s).fit(X, y).predict(X) for s in (4, 5, 6)]
    assert np.allclose(ens.predict(X), np.mean(alone, axis=0), rtol=1e-5, atol=1e-5)
    enc = torch.tensor(encode_arrays(*X)[:5])
    assert np.allclose(ens.predict_torch(enc).numpy(), ens.predict((X[0][:5], X[1][:5])), rtol=1e-4, atol=1e-4)
    ens.save(str(tmp_path / "ens"))
    stored = load_file(str(tmp_path / "ens" / "model.safetensors"))
    assert {k for k in stored if k.startswith("member")} == {f"member{j}.layer{i}.{part}" for j in range(3)
                                                             for i in range(3) for part in ("weight", "bias")}
    assert np.array_equal(load_predictor(tmp_path / "ens").predict(X), ens.predict(X))
    tuned = finetune(ens, X[0][:10], X[1][:10], 1.3 * y[:10], mode="all")  # an ensemble fine-tunes as one network
    tuned.save(str(tmp_path / "tuned"))
    assert not any(k.startswith("member") for k in load_file(str(tmp_path / "tuned" / "model.safetensors")))
    assert np.allclose(load_predictor(tmp_path / "tuned").predict(X), tuned.predict(X))
    assert not np.allclose(tuned.predict(X), ens.predict(X))


def test_huber_loss_and_members_are_checked_and_change_the_fit(both_store):
    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    X, y = (data.ops[:, :8], data.inputs[:, :8]), data.latency_ms.copy()
    y[:20] *= 3.0  # twenty cells measured far off
    mse = create_predictor("mlp-plus", epochs=30).fit(X, y)
    huber = create_predictor("mlp-plus", epochs=30, loss="huber", huber_delta=0.2).fit(X, y)
    clean = data.latency_ms[20:]
    err = {k: np.mean(np.abs(p.predict((X[0][20:], X[1][20:])) - clean) / clean) for k, p in
           (("mse", mse), ("huber", huber))}
    assert err["huber"] < err["mse"]  # the outliers pull a Huber fit less
    for bad, match in (({"loss": "l1"}, "loss must be one of mse, huber"), ({"huber_delta": 0}, "huber_delta must be > 0"),
                       ({"members": 17}, "members must be from 1 to 16")):
        with pytest.raises((LpmError, ValueError), match=match):
            create_predictor("mlp-split", **bad)


@pytest.mark.parametrize("case", ["too many", "a gap", "other shapes", "too big"])
def test_a_tampered_ensemble_file_is_refused_in_one_line(both_store, tmp_path, case):
    from safetensors.numpy import load_file, save_file

    data = load_dataset(both_store, Target("synth", "cpu", "cifar-b1-both"))
    p = create_predictor("mlp-plus", epochs=2, members=2, hidden=(8, 4)).fit((data.ops[:, :8], data.inputs[:, :8]),
                                                                             data.latency_ms)
    p.save(str(tmp_path / "e"))
    f = tmp_path / "e" / "model.safetensors"
    state = load_file(str(f))
    one = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("member0.")}
    if case == "too many":
        state.update({f"member{j}.{k}": v for j in range(2, 17) for k, v in one.items()})
    elif case == "a gap":
        state.update({f"member3.{k}": v for k, v in one.items()})
    elif case == "other shapes":
        state["member1.layer1.weight"] = np.zeros((8, 5), np.float32)
    else:  # small on disk, a 16-member block-diagonal stack of 72M weights once built
        state = {"target.mean_std": state["target.mean_std"]}
        for j in range(16):
            state.update({f"member{j}.layer0.weight": np.zeros((112, 1), np.float32),
                          f"member{j}.layer0.bias": np.zeros(1, np.float32),
                          f"member{j}.layer1.weight": np.zeros((1, 14000), np.float32),
                          f"member{j}.layer1.bias": np.zeros(14000, np.float32),
                          f"member{j}.layer2.weight": np.zeros((14000, 20), np.float32),
                          f"member{j}.layer2.bias": np.zeros(20, np.float32),
                          f"member{j}.layer3.weight": np.zeros((20, 1), np.float32),
                          f"member{j}.layer3.bias": np.zeros(1, np.float32)})
    save_file(state, str(f))
    with pytest.raises(LpmError) as e:
        load_predictor(tmp_path / "e")
    assert "\n" not in str(e.value) and ("ensemble" in str(e.value) or "member" in str(e.value))
