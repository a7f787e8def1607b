"""Measurement that repeats: the statistic chosen by a pilot, adaptive rounds, recheck passes, restat, workers."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from lpm_zoo.backends.device import device_name
from lpm_zoo.cli import main
from lpm_zoo.published import DARTS_V2
from lpm_zoo.sampler import sample_cells
from lpm_zoo.statistics import STATISTICS, statistic_of
from lpm_zoo.store import Measurement, MeasurementStore, Target, baseline_key, statistic_key

HERE = device_name("cpu")  # the name this machine's measurements are filed under (a hardware slug)

TINY = ["--warmup", "1", "--rounds", "3", "--reps", "2", "--interleave", "4", "--no-progress"]
WHERE = ("ort", HERE, "cifar-b1")


def _profile(db, *extra: str) -> int:
    return main(["profile", "--backend", "ort", "--samples", "6", "--db", str(db), *TINY, *extra])


def test_auto_runs_a_pilot_once_and_the_store_keeps_its_choice(tmp_path, capsys):
    db = tmp_path / "s.db"
    assert _profile(db, "--target-pct", "0") == 0
    err = capsys.readouterr().err
    assert "pilot: measuring 6 architectures twice" in err
    with MeasurementStore(db, readonly=True) as s:
        chosen = s.meta(statistic_key(Target(*WHERE)))
        pilot = json.loads(s.meta(f"pilot/ort/{HERE}/cifar-b1"))
        rows = list(s.measurements())
    assert chosen.endswith("_ratio") and f"pilot: {chosen} repeats best here" in err  # the reference is timed
    assert {r["statistic"] for r in pilot["ranking"]} == {x for x in STATISTICS if x.endswith("_ratio")}
    assert pilot["architectures"] == 6 and pilot["ranking"][0]["statistic"] == chosen
    assert len(rows) == 6 and {r["protocol"]["statistic"] for r in rows} == {chosen}
    # the rows' latencies are the chosen statistic of their own raw runs (ratios in the store's baseline)
    r = rows[0]
    base = float(r["protocol"].get("reference_baseline_ms", 1.0))
    ratio = chosen.endswith("_ratio")
    want = statistic_of(r["runs_ms"], r["protocol"]["rounds"], chosen, r["protocol"].get("reference_runs_ms"))
    assert r["latency_ms"] == pytest.approx(want * base if ratio else want, rel=1e-6)
    other = next(s for s in ("min", "median") if s != chosen)
    assert main(["profile", "--backend", "ort", "--samples", "7", "--db", str(db), *TINY, "--statistic", other]) == 2
    assert f"keeps ort/{HERE}/cifar-b1 as {chosen}" in capsys.readouterr().err
    assert main(["profile", "--backend", "ort", "--samples", "7", "--db", str(db), *TINY, "--target-pct", "0"]) == 0
    assert "pilot:" not in capsys.readouterr().err  # the store keeps its statistic: no second pilot
    with MeasurementStore(db, readonly=True) as s:
        assert {r["protocol"]["statistic"] for r in s.measurements()} == {chosen} and s.count(Target(*WHERE)) == 7


def test_without_the_reference_the_pilot_picks_an_absolute_statistic(tmp_path, capsys):
    db = tmp_path / "n.db"
    assert _profile(db, "--target-pct", "0", "--no-reference") == 0
    with MeasurementStore(db, readonly=True) as s:
        chosen = s.meta(statistic_key(Target(*WHERE)))
    assert chosen in STATISTICS and not chosen.endswith("_ratio")


def test_adaptive_rounds_are_recorded_per_row_and_recheck_reuses_the_budget(tmp_path, capsys):
    db = tmp_path / "a.db"
    assert _profile(db, "--statistic", "min_ratio", "--target-pct", "50", "--rounds", "6") == 0
    with MeasurementStore(db, readonly=True) as s:
        rows = list(s.measurements())
    assert {r["protocol"]["rounds"] for r in rows} == {3}  # 50% is reached at once: the minimum rounds
    assert all(r["protocol"]["max_rounds"] == 6 and len(r["runs_ms"]) == 3 * 2 for r in rows)
    assert main(["recheck", "--backend", "ort", "--samples", "3", "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pass 1: 3 architectures measured again" in out and "min_ratio" in out
    assert main(["recheck", "--backend", "ort", "--samples", "2", "--db", str(db), "--no-progress", "--pass", "2",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [p["pass"] for p in rep["passes"]] == [1, 2] and rep["passes"][1]["n"] == 2
    assert {r["statistic"] for r in rep["passes"][1]["by_statistic"]} == set(STATISTICS)
    assert main(["recheck", "--backend", "ort", "--samples", "2", "--db", str(db), "--pass", "5"]) == 2
    assert "measured 5 times" in capsys.readouterr().err


def _store_with_raw_runs(path, n=5):
    """A store of n rows kept as ref_ratio, with raw runs of 2 rounds and the reference's runs."""
    rng = np.random.default_rng(0)
    with MeasurementStore(path) as s:
        for cell in sample_cells(n, seed=4):
            runs = list(10 + rng.uniform(0, 1, 6))
            ref = list(5 + rng.uniform(0, 1, 6))
            ratio = statistic_of(runs, 2, "ref_ratio", ref)
            proto = {"statistic": "ref_ratio", "rounds": 2, "reps": 3, "reference_runs_ms": ref, "reference_ms": 5.5,
                     "ratio": ratio, "reference_baseline_ms": 6.0}
            s.add(Measurement(genotype=DARTS_V2.with_reduce(DARTS_V2.reduce).__class__(normal=cell,
                                                                                     reduce=DARTS_V2.reduce),
                              backend="ort", device=HERE, profile="cifar-b1", latency_ms=ratio * 6.0, spread_ms=0.1,
                              runs_ms=runs, protocol=proto))


def test_restat_re_expresses_from_raw_runs_and_keeps_provenance(tmp_path, capsys):
    db = tmp_path / "r.db"
    _store_with_raw_runs(db)
    with MeasurementStore(db, readonly=True) as s:
        before = list(s.measurements())
    assert main(["data", "restat", "--db", str(db), "--statistic", "min_ratio"]) == 0
    assert "5 latencies re-expressed as min_ratio" in capsys.readouterr().out
    with MeasurementStore(db, readonly=True) as s:
        after = list(s.measurements())
        assert s.meta(statistic_key(Target(*WHERE))) == "min_ratio"
    for a, b in zip(before, after):
        p = a["protocol"]
        assert b["latency_ms"] == pytest.approx(min(a["runs_ms"]) / min(p["reference_runs_ms"]) * 6.0)
        assert b["protocol"]["restat"][-1]["statistic"] == "ref_ratio"
        assert b["protocol"]["restat"][-1]["latency_ms"] == pytest.approx(a["latency_ms"])
    assert main(["data", "restat", "--db", str(db), "--statistic", "median"]) == 0
    with MeasurementStore(db, readonly=True) as s:
        assert [r["latency_ms"] for r in s.measurements()] == pytest.approx([np.median(r["runs_ms"]) for r in before])


@pytest.mark.parametrize("args,msg", [
    (["--statistic", "mean"], "unknown statistic 'mean'"),
    (["--statistic", "min", "--profile", "imagenet-b32"], "holds no measurements of that"),
])
def test_restat_bad_input_leaves_the_store_unchanged(tmp_path, capsys, args, msg):
    db = tmp_path / "r.db"
    _store_with_raw_runs(db)
    before = db.read_bytes()
    assert main(["data", "restat", "--db", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert db.read_bytes() == before


def test_restat_refuses_rows_without_what_the_statistic_needs_and_bundled_stores(tmp_path, capsys):
    db = tmp_path / "r.db"
    _store_with_raw_runs(db)
    con = sqlite3.connect(db)
    proto = json.loads(con.execute("SELECT protocol FROM measurements WHERE id=3").fetchone()[0])
    proto.pop("reference_runs_ms")
    con.execute("UPDATE measurements SET protocol=? WHERE id=3", (json.dumps(proto),))
    con.commit()
    con.close()
    before = [r["latency_ms"] for r in MeasurementStore(db, readonly=True).measurements()]
    assert main(["data", "restat", "--db", str(db), "--statistic", "p10_ratio"]) == 2
    assert "row 3 cannot be re-expressed as p10_ratio" in capsys.readouterr().err
    assert [r["latency_ms"] for r in MeasurementStore(db, readonly=True).measurements()] == before
    assert main(["data", "restat", "--db", "bundled:ort-cpu-cifar-b1", "--statistic", "min_ratio"]) == 2
    assert "package data and is never changed" in capsys.readouterr().err


def test_two_local_workers_fill_one_store_without_duplicates(tmp_path, capsys):
    db = tmp_path / "w.db"
    assert main(["profile", "--backend", "ort", "--samples", "8", "--db", str(db), *TINY, "--workers", "2",
                 "--statistic", "min_ratio", "--target-pct", "0"]) == 0
    with MeasurementStore(db, readonly=True) as s:
        rows = list(s.measurements())
        base = s.meta(baseline_key(Target(*WHERE)))
    assert len(rows) == 8 and len({r["cell_key"] for r in rows}) == 8 and base is not None
    assert "8 unique architectures (8 measurements; 8 added now)" in capsys.readouterr().out


@pytest.mark.parametrize("extra,msg", [
    (["--target-pct", "0.001"], "must be from 0.05 to 50"),
    (["--target-pct", "nan"], "--target-pct must be a finite number"),
    (["--shard", "2/2"], "--shard '2/2': use I/N"),
    (["--workers", "64"], "--workers 64 x --threads 1 must be from 1 to"),
])
def test_bad_protocol_options_are_one_line_errors_before_any_timing(tmp_path, capsys, extra, msg):
    db = tmp_path / "b.db"
    assert main(["profile", "--backend", "ort", "--samples", "4", "--db", str(db), *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not db.exists() or not MeasurementStore(db, readonly=True).count(Target(*WHERE))


def test_two_profilers_racing_through_their_pilots_keep_one_statistic(tmp_path):
    import subprocess
    import sys

    db = str(tmp_path / "c.db")
    cmd = [sys.executable, "-m", "lpm_zoo", "profile", "--backend", "ort", "--samples", "6", "--db", db, *TINY,
           "--target-pct", "0"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with MeasurementStore(db, readonly=True) as s:
        rows = list(s.measurements())
        kept = s.meta(statistic_key(Target(*WHERE)))
    assert len({r["cell_key"] for r in rows}) == len(rows) == 6
    assert {r["protocol"]["statistic"] for r in rows} == {kept}
