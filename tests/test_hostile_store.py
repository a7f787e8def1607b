"""The measurement store against hostile or damaged input: concurrent writers, foreign and read-only files,
newer schemas, bad rows, exports onto the store (issue 9)."""

import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys

import pytest

from lpm_zoo.backends.device import device_name
from lpm_zoo.backends.profiling import recheck_plan, run_profile, run_recheck
from lpm_zoo.backends.profiling.measurer import adopt_baseline, baseline_of
from lpm_zoo.backends.protocol import Protocol
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.published import DARTS_V2
from lpm_zoo.store import SCHEMA_VERSION, BadRow, Measurement, MeasurementStore, Target, json_safe, load_dataset, validate_row
from lpm_zoo.synthetic import make_synthetic_store

HERE = device_name("cpu")  # the name this machine's measurements are filed under (a hardware slug)

FAST = Protocol(warmup=1, rounds=2, reps=1, interleave=2)
DB = ["--backend", "synth", "--device-name", "cpu", "--profile", "cifar-b1"]

# the schema of version 1, as stores written before the `repeat` column have it
V1_SCHEMA = """
CREATE TABLE measurements (id INTEGER PRIMARY KEY, backend TEXT NOT NULL, device TEXT NOT NULL,
    profile TEXT NOT NULL, cell_key TEXT NOT NULL, genotype_key TEXT NOT NULL, encoding TEXT NOT NULL,
    genotype TEXT NOT NULL, latency_ms REAL NOT NULL, spread_ms REAL, runs_ms TEXT NOT NULL,
    protocol TEXT NOT NULL, timestamp REAL NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _digest(path) -> tuple[str, float]:
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), os.stat(path).st_mtime


def _no_nan(text: str):
    def refuse(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _lpm(*args):
    return [sys.executable, "-m", "lpm_zoo", *args]


def _synthetic(path, n=12):
    make_synthetic_store(str(path), n, seed=3, backend="synth", device="cpu")


# --- concurrent writers -------------------------------------------------------------------------
def test_two_profilers_on_one_store_keep_one_row_per_architecture_and_one_baseline(tmp_path):
    db = str(tmp_path / "c.db")
    cmd = _lpm("profile", "--backend", "ort", "--samples", "4", "--db", db, "--interleave", "2", "--no-progress",
               "--warmup", "1", "--rounds", "2", "--reps", "1", "--statistic", "ref_ratio")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*), COUNT(DISTINCT cell_key) FROM measurements").fetchone() == (4, 4)
        bases = c.execute("SELECT value FROM meta WHERE key LIKE 'baseline_ms/%'").fetchall()
        stored = {json.loads(p)["reference_baseline_ms"] for (p,) in c.execute("SELECT protocol FROM measurements")}
    assert len(bases) == 1 and stored == {float(bases[0][0])}
    assert main(["data", "info", "--db", db, "--json"]) == 0  # no accidental pairs read as a repeatability


def test_the_insert_and_the_baseline_respect_what_another_writer_stored(tmp_path):
    db = tmp_path / "m.db"
    m = Measurement(DARTS_V2, "ort", "cpu", "cifar-b1", 5.0, 0.1, [5.0], {"statistic": "median"})
    with MeasurementStore(db) as a, MeasurementStore(db) as b:
        assert a.add_many([m], repeat=0) == 1 and b.add_many([m], repeat=0) == 0  # the second is not a duplicate
        assert b.add_many([m], repeat=1) == 1  # a recheck is a second measurement
        assert adopt_baseline(a, "ort", "cpu", "cifar-b1", 11.5) == 11.5
        assert adopt_baseline(b, "ort", "cpu", "cifar-b1", 12.0) == 11.5  # the second adopts the first's
        assert baseline_of(b, "ort", "cpu", "cifar-b1") == 11.5
        assert b.count(Target("ort", "cpu", "cifar-b1"), unique=False) == 2
        with pytest.raises(LpmError, match="not a finite positive"):
            a.add(Measurement(DARTS_V2, "ort", "cpu", "cifar-b1", math.nan, 0.1, [5.0], {}))


# --- schema versions, foreign and read-only files ---------------------------------------------
def _v1_store(path, rows=3, repeats=1):
    """A schema-1 store (no `repeat` column) with `rows` architectures, the first `repeats` measured twice."""
    _synthetic(path.with_name("src.db"), rows)
    with sqlite3.connect(path) as c:
        c.executescript(V1_SCHEMA)
        src = sqlite3.connect(path.with_name("src.db"))
        cols = "backend, device, profile, cell_key, genotype_key, encoding, genotype, latency_ms, spread_ms, " \
               "runs_ms, protocol, timestamp"
        recs = src.execute(f"SELECT {cols} FROM measurements ORDER BY id").fetchall()
        c.executemany(f"INSERT INTO measurements ({cols}) VALUES ({','.join('?' * 12)})", recs + recs[:repeats])
        src.close()


def test_a_v1_store_reads_without_change_and_migrates_when_written(tmp_path):
    db = tmp_path / "v1.db"
    _v1_store(db)
    before = _digest(db)
    data = load_dataset(db, Target("synth", "cpu", "cifar-b1"))
    assert len(data) == 3 and data.repeatability["n"] == 1
    assert _digest(db) == before
    with MeasurementStore(db) as s:  # opened for writing: migrated, the repeat numbered by age
        assert s.meta("schema_version") == str(SCHEMA_VERSION)
        rows = s._db.execute("SELECT cell_key, repeat FROM measurements ORDER BY id").fetchall()
    assert [r for _, r in rows] == [0, 0, 0, 1] and rows[3][0] == rows[0][0]
    assert len(load_dataset("bundled:torch-cpu-cifar-b1", Target("torch", "cpu", "cifar-b1"))) > 0


def test_a_newer_schema_is_refused_untouched(tmp_path, capsys):
    db = tmp_path / "new.db"
    _synthetic(db)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    before = _digest(db)
    for argv in (["data", "info", "--db", str(db)], ["fit", "--db", str(db), *DB, "--predictor", "ridge"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "newer lpm-zoo" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(LpmError, match="newer lpm-zoo"):
        MeasurementStore(db)
    assert _digest(db) == before


def test_a_foreign_database_is_refused_and_left_byte_for_byte(tmp_path, capsys):
    db = tmp_path / "foreign.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE users (name TEXT)")
        c.execute("INSERT INTO users VALUES ('ada')")
    before = _digest(db)
    for argv in (["data", "info", "--db", str(db)], ["data", "export", "--db", str(db), "--out", str(tmp_path / "x.csv")],
                 ["fit", "--db", str(db), *DB], ["recheck", "--backend", "ort", "--samples", "1", "--db", str(db)],
                 ["profile", "--backend", "ort", "--samples", "1", "--db", str(db), "--no-progress"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "not an lpm measurement store" in err and len(err.strip().splitlines()) == 1, err
    assert _digest(db) == before and not os.path.exists(f"{db}-wal") and not (tmp_path / "x.csv").exists()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [t for (t,) in c.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_write_protected_store_is_read_by_info_export_fit_and_compare(tmp_path, capsys):
    db = tmp_path / "ro.db"
    _synthetic(db, 40)
    os.chmod(db, 0o444)
    before = _digest(db)
    try:
        assert main(["data", "info", "--db", str(db), "--json"]) == 0
        assert _no_nan(capsys.readouterr().out)["n"] == 40
        assert main(["data", "export", "--db", str(db), "--out", str(tmp_path / "ro.csv")]) == 0
        assert main(["fit", "--db", str(db), *DB, "--predictor", "ridge", "--zoo-dir", str(tmp_path / "zoo")]) == 0
        assert main(["compare", "--db", str(db), *DB, "--predictors", "ridge", "--train-sizes", "20",
                     "--out", str(tmp_path / "cmp")]) == 0
        assert _digest(db) == before  # mode=ro: read, never written (also when running as root)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    finally:
        os.chmod(db, 0o644)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through chmod a-w")
def test_a_write_protected_store_cannot_be_written(tmp_path):
    db = tmp_path / "ro.db"
    _synthetic(db, 4)
    os.chmod(db, 0o444)
    try:
        with pytest.raises(LpmError), MeasurementStore(db) as s:
            s.add(Measurement(DARTS_V2, "ort", "cpu", "cifar-b1", 5.0, 0.1, [5.0], {}))
    finally:
        os.chmod(db, 0o644)


# --- bad rows -----------------------------------------------------------------------------------
BAD = {  # column: a hostile value, one per row
    "latency_ms": ["abc", None, 0.0, -5.0, float("inf"), 1e300],
    "runs_ms": [None, "not json", '["x"]', "[NaN]", '{"a": 1}'],
    "protocol": [None, "{", "[]", '{"warmup": 1000000000}', '{"rounds": 0}', '{"reps": "10"}',
                 '{"reference_baseline_ms": -737.8}', '{"reference_ms": NaN}'],
    "genotype": [None, "{}", '{"normal": [["conv_99", 0]]}'],
    "spread_ms": ["wide", -1.0],
    "backend": ["\x1b[2Jsynth"],
}


def _hostile_store(path, good=30):
    """A schema-1 store without NOT NULL constraints: `good` rows, then one row per value in BAD; returns bad ids."""
    _synthetic(path.with_name("src.db"), good + sum(len(v) for v in BAD.values()))
    cols = ("backend", "device", "profile", "cell_key", "genotype_key", "encoding", "genotype", "latency_ms",
            "spread_ms", "runs_ms", "protocol", "timestamp")
    with sqlite3.connect(path) as c:
        c.executescript(f"CREATE TABLE measurements (id INTEGER PRIMARY KEY, {', '.join(cols)});"
                        "CREATE TABLE meta (key, value); INSERT INTO meta VALUES ('schema_version', '1');")
        src = sqlite3.connect(path.with_name("src.db"))
        recs = [list(r) for r in src.execute(f"SELECT {', '.join(cols)} FROM measurements ORDER BY id")]
        src.close()
        bad = [(col, v) for col, vals in BAD.items() for v in vals]
        for rec, (col, v) in zip(recs[good:], bad):
            rec[cols.index(col)] = v
        c.executemany(f"INSERT INTO measurements ({', '.join(cols)}) VALUES ({','.join('?' * 12)})", recs)
    return list(range(good + 1, good + 1 + len(bad)))


def test_validate_row_names_the_bad_column():
    with pytest.raises(BadRow, match="latency_ms"):
        validate_row({"backend": "b", "device": "d", "profile": "p", "cell_key": "k", "genotype_key": "g",
                      "encoding": "0", "latency_ms": float("nan")})
    assert json_safe({"a": [float("nan"), 1.0, float("-inf")]}) == {"a": [None, 1.0, None]}


def test_bad_rows_are_skipped_and_reported_by_id_everywhere(tmp_path, capsys):
    db = tmp_path / "h.db"
    bad_ids = _hostile_store(db)
    before = _digest(db)
    assert main(["data", "info", "--db", str(db), "--json"]) == 0
    out, err = capsys.readouterr()
    (row,) = [_no_nan(line) for line in out.splitlines()]
    assert row["n"] == 30 and 0 < row["mean_latency_ms"] < 1e3
    assert f"lpm data info: warning: skipped {len(bad_ids)} bad rows (ids {bad_ids[0]}, " in err
    assert len(err.strip().splitlines()) == 1 and "..." in err
    for out_name in ("h.parquet", "h.csv"):  # text latency no longer reaches pyarrow
        assert main(["data", "export", "--db", str(db), "--out", str(tmp_path / out_name)]) == 0
        assert "wrote 30 measurements" in capsys.readouterr().out
    assert main(["fit", "--db", str(db), *DB, "--predictor", "ridge", "--zoo-dir", str(tmp_path / "zoo"), "--json"]) == 0
    out, err = capsys.readouterr()
    meta = _no_nan(out)
    assert "lpm fit: warning: skipped" in err and math.isfinite(meta["metrics"]["mre_pct"])
    data = load_dataset(db, Target("synth", "cpu", "cifar-b1"))
    assert len(data) == 30 and sorted(data.skipped) == bad_ids[:-1]  # the last is filed under another backend
    assert _digest(db) == before


def test_a_store_of_only_bad_rows_is_one_line_error(tmp_path, capsys):
    db = tmp_path / "h.db"
    _hostile_store(db, good=0)
    assert main(["fit", "--db", str(db), *DB, "--predictor", "ridge"]) == 2
    err = capsys.readouterr().err
    assert "no usable measurements" in err and "skipped" in err and len(err.strip().splitlines()) == 1


# --- recheck ------------------------------------------------------------------------------------
def test_recheck_never_runs_a_stored_protocol_out_of_bounds_nor_a_bad_baseline(tmp_path):
    db = str(tmp_path / "m.db")
    run_profile("ort", "cpu", "cifar-b1", 2, db, seed=5, protocol=FAST, progress=False)
    with sqlite3.connect(db) as c:  # the first architecture's protocol asks for a billion warm-up runs
        (proto,) = c.execute("SELECT protocol FROM measurements WHERE id=1").fetchone()
        c.execute("UPDATE measurements SET protocol=? WHERE id=1", (json.dumps({**json.loads(proto),
                                                                                "warmup": 10**9}),))
    logged = []
    assert run_recheck("ort", "cpu", "cifar-b1", 2, db, progress=False, log=logged.append) == 1
    assert any(line.startswith("warning: skipped 1 bad row (ids 1;") for line in logged)
    with MeasurementStore(db, readonly=True) as s:
        assert recheck_plan(s, "ort", HERE, "cifar-b1", 2, seed=0) == ([], 1)
    for value in ("-737.8", "NaN", "0"):
        with sqlite3.connect(db) as c:
            c.execute("UPDATE meta SET value=? WHERE key LIKE 'baseline_ms/%'", (value,))
        with pytest.raises(LpmError, match="not a positive number"):
            run_recheck("ort", "cpu", "cifar-b1", 3, db, progress=False, log=logged.append)


# --- export -------------------------------------------------------------------------------------
def test_export_refuses_to_write_over_the_store(tmp_path, capsys):
    db = tmp_path / "s.csv"  # a store whose name looks like an export
    _synthetic(db, 4)
    (tmp_path / "link.csv").symlink_to(db)
    before = _digest(db)
    for out in (db, tmp_path / "link.csv", tmp_path / "." / "s.csv"):
        assert main(["data", "export", "--db", str(db), "--out", str(out)]) == 2
        assert "is the measurement store itself" in capsys.readouterr().err
    assert _digest(db) == before
    assert main(["data", "export", "--db", str(db), "--out", str(tmp_path / "e.csv")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "tmp" in p.name) == []  # no temporary left behind
