"""The profiler: fills a store to N unique architectures, resumes, survives kill -9 and Ctrl-C; data info/export; Ray."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from lpm_zoo.backends.device import device_name
from lpm_zoo.backends.profiling import Measurer, normalize, plan, recheck_plan, run_profile, run_recheck
from lpm_zoo.backends.protocol import Protocol
from lpm_zoo.cli import main
from lpm_zoo.encoding import cell_key
from lpm_zoo.errors import LpmError
from lpm_zoo.published import DARTS_V2
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.store import MeasurementStore, Target, load_dataset
from lpm_zoo.store.analysis import repeatability

HERE = device_name("cpu")  # the name this machine's measurements are filed under (a hardware slug)

FAST = Protocol(warmup=1, rounds=2, reps=2, interleave=2)
FAST_ARGS = ["--warmup", "1", "--rounds", "2", "--reps", "2"]


def test_measurer_records_protocol_raw_runs_and_reference():
    m = Measurer("ort", "cpu", "cifar-b1", FAST)
    try:
        a, b = m.measure([DARTS_V2.normal, DARTS_V2])
    finally:
        m.close()
    assert a.genotype == DARTS_V2 and cell_key(b.genotype) == cell_key(DARTS_V2)
    assert a.backend == "ort" and a.device == HERE and a.profile == "cifar-b1"
    assert len(a.runs_ms) == 4 and all(t > 0 for t in a.runs_ms)
    p = a.protocol
    for key in ("warmup", "rounds", "reps", "threads", "statistic", "clock", "spread", "device_model", "cpu_model",
                "reference_ms", "reference_runs_ms", "ratio", "raw_latency_ms", "prepare_s", "timing_s"):
        assert key in p, key
    assert p["threads"] == 1 and p["statistic"] == "ref_ratio" and p["runtime"]["onnxruntime"]
    assert p["runtime"]["providers"] == ["CPUExecutionProvider"] and len(p["reference_runs_ms"]) == 4
    assert a.latency_ms == pytest.approx(p["ratio"] * p["reference_ms"])


def test_per_network_facts_are_recorded_beside_the_runtime_settings_and_never_mix_them(tmp_path, monkeypatch):
    """`Prepared.network` (a program's size, what a delegate took: ExecuTorch's) goes into the row's `network`, not its
    `runtime`: rows of different networks must not look like rows of different settings."""
    from lpm_zoo.backends.ort_backend import OrtBackend

    real, sizes = OrtBackend.prepare, iter(range(1000, 2000))

    def prepare(self, *args, **kwargs):
        p = real(self, *args, **kwargs)
        p.network = {"program_bytes": next(sizes)}
        return p

    monkeypatch.setattr(OrtBackend, "prepare", prepare)
    db = str(tmp_path / "m.db")
    assert run_profile("ort", "cpu", "cifar-b1", 3, db, seed=3, protocol=FAST, progress=False) == 3
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
    assert len({r["protocol"]["network"]["program_bytes"] for r in rows}) == 3
    assert not any("program_bytes" in r["protocol"]["runtime"] for r in rows)
    data = load_dataset(db, Target("ort", HERE, "cifar-b1"))
    assert data.runtime_mixed == [] and data.runtime["providers"] == ["CPUExecutionProvider"]


def test_normalize_expresses_every_group_in_the_first_groups_reference():
    m = Measurer("ort", "cpu", "cifar-b1", FAST)
    try:
        g1, g2 = m.measure([DARTS_V2]), m.measure([DARTS_V2])
    finally:
        m.close()
    base = normalize(g1, None)
    assert base == g1[0].protocol["reference_ms"]
    g2[0].protocol["reference_ms"] *= 2  # as if the second group ran under a slow spell
    assert normalize(g2, base) == base
    assert g2[0].latency_ms == pytest.approx(g2[0].protocol["ratio"] * base)
    assert g2[0].protocol["reference_baseline_ms"] == base


def test_profile_fills_resumes_and_skips_present(tmp_path):
    db = str(tmp_path / "m.db")
    assert run_profile("ort", "cpu", "cifar-b1", 3, db, seed=5, protocol=FAST, progress=False) == 3
    with MeasurementStore(db) as s:
        first = s.keys(Target("ort", HERE, "cifar-b1"))
        base = {r["protocol"]["reference_baseline_ms"] for r in s.measurements()}
    _, _, keys = sample_unique_arrays(5, 5)
    assert first == set(keys[:3])  # the seed's sequence, in order
    assert len(base) == 1  # one baseline per store
    assert run_profile("ort", "cpu", "cifar-b1", 3, db, seed=5, protocol=FAST, progress=False) == 0
    assert run_profile("ort", "cpu", "cifar-b1", 5, db, seed=5, protocol=FAST, progress=False) == 2
    with MeasurementStore(db) as s:
        assert s.keys(Target("ort", HERE, "cifar-b1")) == set(keys) and s.count(Target("ort", HERE, "cifar-b1"), unique=False) == 5
        assert {r["protocol"]["reference_baseline_ms"] for r in s.measurements()} == base
    data = load_dataset(db, Target("ort", HERE, "cifar-b1"))
    assert len(data) == 5 and (data.latency_ms > 0).all()


def test_plan_fills_up_past_cells_from_another_seed(tmp_path):
    db = str(tmp_path / "m.db")
    run_profile("ort", "cpu", "cifar-b1", 2, db, seed=1, protocol=FAST, progress=False)
    with MeasurementStore(db) as s:
        todo = plan(s, "ort", HERE, "cifar-b1", 5, seed=2)
        assert len(todo) == 3 and not {cell_key(c) for c in todo} & s.keys(Target("ort", HERE, "cifar-b1"))
        with pytest.raises(LpmError, match="--samples"):
            plan(s, "ort", HERE, "cifar-b1", 0, seed=2)


def test_profile_calibration_cells_then_random_ones_in_one_store(tmp_path, capsys):
    from lpm_zoo.calibration import calibration_keys

    db = str(tmp_path / "c.db")
    assert run_profile("ort", "cpu", "small-b1", 2, db, seed=5, protocol=FAST, progress=False,
                       cells="calibration") == 2
    with MeasurementStore(db) as s:
        assert s.keys(Target("ort", HERE, "small-b1")) == set(calibration_keys(2))
    assert run_profile("ort", "cpu", "small-b1", 2, db, protocol=FAST, progress=False, cells="calibration") == 0
    assert main(["profile", "--backend", "ort", "--profile", "small-b1", "--samples", "101", "--db", db,
                 "--cells", "calibration"]) == 2
    assert "the calibration set has 100 cells" in capsys.readouterr().err
    assert main(["profile", "--backend", "ort", "--profile", "small-b1", "--samples", "3", "--db", db,
                 "--cells", "calibration", "--workers", "2"]) == 2
    assert "with one process" in capsys.readouterr().err


def test_recheck_held_out_measures_exactly_the_split_lpm_fit_holds_out(tmp_path, capsys):
    from lpm_zoo.evaluation.metrics import split_indices

    db = str(tmp_path / "h.db")
    run_profile("ort", "cpu", "small-b1", 6, db, seed=4, protocol=FAST, progress=False)
    keys = load_dataset(db, Target("ort", HERE, "small-b1")).keys
    want = {keys[i] for i in split_indices(len(keys), 2, 1)[1]}
    assert run_recheck("ort", "cpu", "small-b1", 0, db, progress=False, held_out=2, split_seed=1) == 2
    assert run_recheck("ort", "cpu", "small-b1", 0, db, progress=False, held_out=2, split_seed=1) == 0  # resumed: done
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
    assert len(rows) == 8 and {r["cell_key"] for r in rows[6:]} == want
    data = load_dataset(db, Target("ort", HERE, "small-b1"))
    assert data.keys == keys  # repeats keep the split stable: the same architectures stay held out
    held = split_indices(len(keys), 2, 1)[1]
    assert sorted(data.measured) == [1, 1, 1, 1, 2, 2] and set(data.measured[held]) == {2}
    assert data.held_out_note(held).startswith("2 of 2 labels are the median of two or more measurements")
    assert main(["fit", "--db", db, "--backend", "ort", "--profile", "small-b1", "--predictor", "ridge",
                 "--test-size", "2", "--seed", "1", "--zoo-dir", str(tmp_path / "zoo"), "--name", "h"]) == 0
    assert "2 of 2 labels are the median" in capsys.readouterr().out
    for bad, said in ((["--held-out", "6"], "--held-out must be from 1 to 5"),
                      (["--held-out", "0"], "--held-out must be from 1 to 5"),
                      (["--held-out", "2", "--split-seed", "-1"], "--split-seed must be in [0, 2^32)"),
                      (["--held-out", "2", "--split-seed", str(2**32)], "--split-seed must be in [0, 2^32)")):
        assert main(["recheck", "--backend", "ort", "--profile", "small-b1", "--db", db, *bad]) == 2
        assert said in capsys.readouterr().err
    with MeasurementStore(db) as s:
        assert len(list(s.measurements())) == 8  # a refused recheck measures nothing


def test_recheck_remeasures_a_seeded_subset_with_the_recorded_protocol_and_resumes(tmp_path):
    db = str(tmp_path / "m.db")
    run_profile("ort", "cpu", "cifar-b1", 4, db, seed=3, protocol=FAST, progress=False)
    with MeasurementStore(db) as s:
        chosen, twice = recheck_plan(s, "ort", HERE, "cifar-b1", 2, seed=0)
        assert twice == 0 and len({r["cell_key"] for r in chosen}) == 2
    assert run_recheck("ort", "cpu", "cifar-b1", 1, db, progress=False) == 1
    assert run_recheck("ort", "cpu", "cifar-b1", 2, db, progress=False) == 1  # resumes the same seeded subset
    assert run_recheck("ort", "cpu", "cifar-b1", 2, db, progress=False) == 0
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
        assert s.count(Target("ort", HERE, "cifar-b1")) == 4 and len(rows) == 6
        assert {r["cell_key"] for r in rows[4:]} == {r["cell_key"] for r in chosen}
        assert {r["protocol"]["reference_baseline_ms"] for r in rows} == {rows[0]["protocol"]["reference_baseline_ms"]}
        assert all((r["protocol"]["rounds"], r["protocol"]["reps"], len(r["runs_ms"])) == (2, 2, 4) for r in rows[4:])
        rep = repeatability(s, Target("ort", HERE, "cifar-b1"))
    assert rep["n"] == 2 and rep["mean_pct"] >= 0
    assert len(load_dataset(db, Target("ort", HERE, "cifar-b1"))) == 4


def test_recheck_command_reports_repeatability_and_errors_are_one_line(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    assert main(["recheck", "--backend", "ort", "--samples", "1", "--db", db]) == 2
    assert "no measurement database" in capsys.readouterr().err
    assert main(["recheck", "--backend", "ort", "--samples", "1", "--db", "bundled:ort-cpu-cifar-b1"]) == 2
    assert "shipped with the package" in capsys.readouterr().err
    run_profile("ort", "cpu", "cifar-b1", 2, db, seed=4, protocol=FAST, progress=False)
    assert main(["recheck", "--backend", "ort", "--samples", "1", "--db", db, "--no-progress", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n"] == 1 and rep["added"] == 1 and rep["backend"] == "ort" and rep["mean_pct"] >= 0
    assert main(["data", "info", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repeatability"]["n"] == 1
    assert main(["data", "info", "--db", db]) == 0
    assert "(1 twice)" in capsys.readouterr().out
    assert main(["recheck", "--backend", "torch", "--samples", "1", "--db", db, "--no-progress"]) == 2
    assert f"no torch/{HERE}/cifar-b1 measurements to recheck" in capsys.readouterr().err


def _lpm(*args):
    return [sys.executable, "-m", "lpm_zoo", *args]


def _wait_for_rows(db, n, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(db):
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    if c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] >= n:
                        return
            except sqlite3.OperationalError:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no {n} rows in {timeout}s")


@pytest.mark.slow
def test_kill_9_loses_at_most_the_group_in_flight_and_resumes(tmp_path):
    db = str(tmp_path / "m.db")
    cmd = _lpm("profile", "--backend", "ort", "--samples", "400", "--db", db, "--interleave", "1",
               "--no-progress", "--statistic", "ref_ratio", *FAST_ARGS)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_rows(db, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = c.execute("SELECT COUNT(DISTINCT cell_key) FROM measurements").fetchone()[0]
    assert 2 <= n < 400
    target = n + 2
    out = subprocess.run(_lpm("profile", "--backend", "ort", "--samples", str(target), "--db", db,
                              "--interleave", "1", "--no-progress", *FAST_ARGS),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{target} unique architectures" in out.stdout and "2 added now" in out.stdout
    with MeasurementStore(db) as s:
        assert s.count(Target("ort", HERE, "cifar-b1")) == target == s.count(Target("ort", HERE, "cifar-b1"), unique=False)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    db = str(tmp_path / "m.db")
    # Ctrl-C as a terminal sends it, whatever this process inherited: a suite started in the background
    # (`make test &`) runs with SIGINT ignored, and a child then ignores it too unless it is reset.
    proc = subprocess.Popen(_lpm("profile", "--backend", "ort", "--samples", "400", "--db", db, "--interleave", "1",
                                 "--no-progress", "--statistic", "ref_ratio", *FAST_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_rows(db, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and "Traceback" not in err
    with MeasurementStore(db) as s:
        assert 1 <= s.count(Target("ort", HERE, "cifar-b1")) < 400


def test_profile_command_and_data_info_export(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    args = ["profile", "--backend", "torch", "--samples", "2", "--db", db, "--no-progress", "--interleave", "2",
            "--device-name", "mybox", *FAST_ARGS]
    assert main(args) == 0
    assert "torch/mybox/cifar-b1: 2 unique architectures" in capsys.readouterr().out
    assert main(["data", "info", "--db", db, "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["backend"], row["device"], row["profile"], row["n"], row["n_unique"]) == ("torch", "mybox",
                                                                                           "cifar-b1", 2, 2)
    assert main(["data", "info", "--db", db]) == 0
    assert "mybox" in capsys.readouterr().out

    import csv

    import pyarrow.parquet as pq

    assert main(["data", "export", "--db", db, "--out", str(tmp_path / "m.parquet")]) == 0
    assert main(["data", "export", "--db", db, "--out", str(tmp_path / "m.csv")]) == 0
    table = pq.read_table(tmp_path / "m.parquet").to_pylist()
    with open(tmp_path / "m.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(table) == len(rows) == 2
    assert {r["cell_key"] for r in table} == {r["cell_key"] for r in rows}
    rec = table[0]
    assert len(rec["encoding"]) == 112 and len(json.loads(rec["runs_ms"])) == 4
    assert json.loads(rec["protocol"])["backend"] == "torch" and rec["latency_ms"] > 0
    assert float(rows[0]["latency_ms"]) == pytest.approx(table[0]["latency_ms"])
    capsys.readouterr()
    assert main(["data", "export", "--db", db, "--out", str(tmp_path / "m.xlsx")]) == 2
    assert "give a .parquet or .csv" in capsys.readouterr().err
    assert main(["data", "info", "--db", str(tmp_path / "none.db")]) == 2
    assert "no measurement database" in capsys.readouterr().err


def test_profile_user_errors_are_one_line(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    for args, msg in [
        (["--backend", "ort", "--samples", "2", "--profile", "mnist"], "unknown profile 'mnist'"),
        (["--backend", "ort", "--samples", "0"], "--samples must be at least 1"),
        (["--backend", "trt", "--device", "cpu", "--samples", "2"], "does not run on cpu"),
        (["--backend", "ort", "--device", "tpu", "--samples", "2"], "unknown device 'tpu'"),
        (["--backend", "ort", "--samples", "2", "--threads", "2", "--clock", "thread"], "thread clock"),
    ]:
        assert main(["profile", *args, "--db", db, "--no-progress", *FAST_ARGS]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_workers_stream_results_to_the_drivers_store(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    db = str(tmp_path / "m.db")
    added = run_profile("ort", "cpu", "cifar-b1", 4, db, seed=3, protocol=FAST, ray_address="local", workers=2,
                        progress=False)
    assert added == 4
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
        assert s.count(Target("ort", HERE, "cifar-b1")) == 4
    _, _, keys = sample_unique_arrays(4, 3)
    assert {r["cell_key"] for r in rows} == set(keys)
    assert len({r["protocol"]["reference_baseline_ms"] for r in rows}) == 1
    assert all(r["protocol"]["runtime"]["providers"] == ["CPUExecutionProvider"] for r in rows)
