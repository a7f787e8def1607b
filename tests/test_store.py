"""The measurement store and the measurement profiles."""

import sqlite3

import numpy as np
import pytest
import torch

from lpm_zoo.encoding import cell_key
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import get_profile, list_profiles
from lpm_zoo.published import DARTS_V2
from lpm_zoo.sampler import sample_genotypes
from lpm_zoo.store import Measurement, MeasurementStore, Target, load_dataset
from lpm_zoo.store.analysis import repeatability


def _m(g, lat, backend="ort", device="cpu", profile="cifar-b1"):
    return Measurement(g, backend, device, profile, lat, 0.1, [lat, lat + 0.2, lat + 0.1], {"statistic": "median"})


def test_add_keys_and_dataset(tmp_path):
    db = tmp_path / "m.db"
    gs = sample_genotypes(5, seed=1)
    with MeasurementStore(db) as s:
        s.add_many([_m(g, 10.0 + k) for k, g in enumerate(gs)])
        s.add(_m(gs[0], 12.0))  # a repeat of the first architecture
        s.add(_m(gs[1], 99.0, backend="torch"))
        assert s.keys(Target("ort", "cpu", "cifar-b1")) == {cell_key(g) for g in gs}
        assert s.count(Target("ort", "cpu", "cifar-b1")) == 5 and s.count(Target("ort", "cpu", "cifar-b1"), unique=False) == 6
        rows = {(r["backend"], r["n"], r["n_unique"]) for r in s.summary()}
        assert rows == {("ort", 6, 5), ("torch", 1, 1)}
        rec = next(s.measurements(backend="torch"))
        assert rec["runs_ms"] == [99.0, 99.2, 99.1] and rec["genotype"]["normal"] == gs[1].to_dict()["normal"]
    data = load_dataset(db, Target("ort", "cpu", "cifar-b1"))
    assert len(data) == 5 and data.ops.shape == (5, 8)
    assert data.latency_ms[0] == pytest.approx(11.0)  # median of 10 and 12
    assert data.genotypes()[2].normal == gs[2].normal and data.genotypes()[2].reduce == DARTS_V2.reduce


def test_repeatability_of_architectures_measured_twice(tmp_path):
    gs = sample_genotypes(4, seed=2)
    with MeasurementStore(tmp_path / "m.db") as s:
        s.add_many([_m(g, 10.0) for g in gs])
        assert repeatability(s, Target("ort", "cpu", "cifar-b1")) is None  # nothing measured twice yet
        s.add(_m(gs[0], 10.0))  # 0% apart
        s.add(_m(gs[1], 11.0))  # |10 - 11| / 10.5 = 9.52%
        s.add(_m(gs[1], 50.0))  # a third measurement is not used
        s.add(_m(gs[2], 15.0, backend="torch"))  # another backend
        rep = repeatability(s, Target("ort", "cpu", "cifar-b1"))
    assert rep["n"] == 2
    assert rep["mean_pct"] == pytest.approx(100 / 21) and rep["median_pct"] == pytest.approx(100 / 21)
    assert rep["p90_pct"] == pytest.approx(0.9 * 100 / 10.5) and rep["within10_pct"] == 100
    assert "kendall_tau" not in rep  # too few pairs for a ranking


def test_missing_data_errors_say_how_to_make_it(tmp_path):
    with pytest.raises(LpmError, match="lpm profile --backend ort"):
        load_dataset(tmp_path / "none.db", Target("ort", "cpu", "cifar-b1"))
    with MeasurementStore(tmp_path / "m.db") as s:
        s.add(_m(DARTS_V2, 5.0, backend="torch"))
    with pytest.raises(LpmError, match="torch/cpu/cifar-b1"):
        load_dataset(tmp_path / "m.db", Target("ort", "cpu", "cifar-b1"))


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("hello, not sqlite" * 100)
    with pytest.raises(LpmError, match="not a usable"):
        MeasurementStore(bad)


def test_wal_mode_and_commit_visible_to_another_connection(tmp_path):
    db = tmp_path / "m.db"
    s = MeasurementStore(db)
    s.add(_m(DARTS_V2, 5.0))
    other = sqlite3.connect(db)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 1
    other.close()
    s.close()


def test_profiles():
    assert list_profiles() == ["cifar-b1", "small-b1", "cifar-b8", "cifar-b32", "imagenet-b32", "cifar-b1-both",
                               "small-b1-both", "cifar-b32-both", "imagenet-b32-both"]
    p = get_profile("cifar-b32")
    assert p.input_shape == (32, 3, 32, 32)
    g = sample_genotypes(1, seed=4)[0]
    assert p.genotype(g.normal).reduce == DARTS_V2.reduce
    a, b = p.build(g.normal, seed=1), p.build(g.normal, seed=1)
    assert not a.training
    x = get_profile("cifar-b1").example_input()
    assert torch.equal(a(x), b(x))  # same seed, same weights
    with pytest.raises(LpmError, match="cifar-b1"):
        get_profile("cifar-b64")
    assert get_profile("imagenet-b32").input_shape == (32, 3, 224, 224)
    assert np.isfinite(a(x).detach().numpy()).all()


def test_bundled_stores_open_by_name(tmp_path, monkeypatch):
    from lpm_zoo.store import list_bundled, resolve_db

    monkeypatch.setenv("LPM_ZOO_CACHE", str(tmp_path))
    assert "ort-cpu-cifar-b1" in list_bundled() and "torch-cpu-cifar-b1" in list_bundled()
    data = load_dataset("bundled:ort-cpu-cifar-b1", Target("ort", "cpu", "cifar-b1"))
    assert len(data) >= 10_000 and (data.latency_ms > 0).all()  # the shipped sizes the predictor zoo promises
    assert data.repeatability["n"] >= 100  # rechecked: the data's noise floor ships with it
    assert len(load_dataset("bundled:torch-cpu-cifar-b1", Target("torch", "cpu", "cifar-b1"))) >= 3_000
    assert resolve_db("bundled:ort-cpu-cifar-b1").parent == tmp_path / "data"
    with pytest.raises(LpmError, match="bundled: .*ort-cpu-cifar-b1"):
        resolve_db("bundled:nope")
