"""Hostile zoo entries and stores, through the command line (issue 23): bundled names and stores are never
shadowed or written, only regular files are read, file text is escaped before it reaches the terminal,
weights of another dtype and replaced sources are refused, edited store rows are skipped.

Every refusal is checked as a user sees it: `lpm ...` in a process of its own (tests/lpm_runner.py), exit code 2,
exactly one line on stderr starting with `lpm`, no traceback, nothing written where it should not
be, and the package's bundled zoo and stores byte-identical afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lpm_runner import run_lpm

import lpm_zoo
from lpm_zoo.predictors import create_predictor, load_predictor
from lpm_zoo.predictors.zoo import bundled_zoo_dir, check_new_name
from lpm_zoo.sampler import sample_arrays
from lpm_zoo.synthetic import OP_COST, make_synthetic_store

PACKAGE_DATA = [Path(lpm_zoo.__file__).parent / "zoo", Path(lpm_zoo.__file__).parent / "data"]
SMALL_STORE = "torch-cpu-cifar-b1"  # a bundled torch/cifar-b1 store of schema 1 (3,150 rows): quick to unpack


def _tree_digest() -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file of the package's bundled zoo and stores."""
    return {str(f): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
            for d in PACKAGE_DATA for f in sorted(d.rglob("*")) if f.is_file()}


@pytest.fixture()
def env(tmp_path):
    """A user zoo and cache of this test's own; the bundled files are checked unchanged at the end."""
    before = _tree_digest()
    zoo, cache = tmp_path / "zoo", tmp_path / "cache"
    zoo.mkdir()
    yield {**os.environ, "LPM_ZOO_HOME": str(zoo), "LPM_ZOO_CACHE": str(cache)}
    assert _tree_digest() == before


def _lpm(env: dict, *args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return run_lpm(args, env=env, cwd=cwd, timeout=timeout)  # a process of its own, forked with the imports done


def _refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """The one stderr line of a refusal (exit 2, `lpm ...`, no traceback), holding every one of `words`."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and r.stderr.endswith("\n") and lines[0].startswith("lpm"), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _ridge(path: Path, seed: int = 0, factor: float = 1.0) -> Path:
    ops, inputs = sample_arrays(80, seed=seed)
    create_predictor("ridge").fit((ops, inputs), factor * (5 + OP_COST[ops].sum(1))).save(str(path))
    return path


def _synthetic(path: Path, n: int = 12) -> Path:
    make_synthetic_store(str(path), n, seed=3, backend="synth", device="cpu")
    return path


@contextlib.contextmanager
def _edit(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection for hand edits of a store, committed and closed (its WAL folded in) at the end."""
    con = sqlite3.connect(db)
    try:
        yield con
        con.commit()
    finally:
        con.close()


def _file_digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# --- 4: bundled names are taken ---------------------------------------------------------------------
def test_a_bundled_name_is_never_taken_by_fit_or_adapt_even_with_force(env, tmp_path):
    zoo = Path(env["LPM_ZOO_HOME"])
    db = tmp_path / "s.db"
    make_synthetic_store(str(db), 20, seed=3, backend="ort", device="cpu")  # filed under ort/cpu, like the bundled
    fit = ["fit", "--db", str(db), "--backend", "ort", "--device-name", "cpu", "--profile", "cifar-b1",
           "--predictor", "ridge", "--test-size", "4"]
    _refused(_lpm(env, *fit, "--name", "ort-cpu"), "--name 'ort-cpu' is taken by a bundled predictor",
             "pick another --name")
    _refused(_lpm(env, *fit), "the default name (BACKEND-DEVICE) 'ort-cpu' is taken by a bundled predictor")
    adapt = ["adapt", "--from", "ort-cpu", "--backend", "ort", "--device", "cpu", "--profile", "cifar-b1",
             "--samples", "3", "--db", str(tmp_path / "here.db"), "--name", "ort-cpu", "--no-progress"]
    for extra in ([], ["--force"]):
        _refused(_lpm(env, *adapt, *extra), "taken by a bundled predictor", "also with --force")
    assert not (zoo / "ort-cpu").exists() and not (tmp_path / "here.db").exists()
    check_new_name("ort-cpu", bundled_zoo_dir())  # making the bundled zoo itself (scripts/ship_*.sh) is allowed


def test_a_user_entry_named_like_a_bundled_one_never_shadows_it(env, tmp_path):
    zoo = Path(env["LPM_ZOO_HOME"])
    _ridge(zoo / "ort-cpu")  # made by hand, or by an lpm-zoo that did not check names
    r = _lpm(env, "zoo", "list")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("ort-cpu ")]
    assert len(rows) == 2, r.stdout
    assert " mlp-plus " in rows[0] and "bundled" in rows[0]  # the bundled one is listed, and usable
    assert "unusable: the name is taken by a bundled predictor" in rows[1]
    r = _lpm(env, "predict", "--predictor", "ort-cpu", "--genotype", "DARTS_V2", "--json")
    assert r.returncode == 0, r.stderr
    bundled = load_predictor(bundled_zoo_dir() / "ort-cpu")
    from lpm_zoo.published import DARTS_V2

    assert json.loads(r.stdout)["latency_ms"] == pytest.approx(float(bundled.predict([DARTS_V2])[0]))


# --- 5: bundled stores are read-only -------------------------------------------------------------------
def test_a_writing_command_given_a_bundled_store_is_refused_and_its_cached_copy_untouched(env, tmp_path):
    zoo, cache = Path(env["LPM_ZOO_HOME"]), Path(env["LPM_ZOO_CACHE"]) / "data"
    r = _lpm(env, "data", "info", "--db", f"bundled:{SMALL_STORE}", "--json")  # unpacks the cached copy
    assert r.returncode == 0 and json.loads(r.stdout)["n"] > 3000, r.stderr
    copy = cache / f"{SMALL_STORE}.db"
    files_before = sorted(p.name for p in cache.iterdir())
    assert files_before == [f"{SMALL_STORE}.db", f"{SMALL_STORE}.size"]  # read with immutable=1: no -wal, no -shm
    before = _file_digest(copy)
    with sqlite3.connect(f"file:{copy}?mode=ro&immutable=1", uri=True) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    adapt = ["adapt", "--from", "torch-cpu", "--backend", "torch", "--device", "cpu", "--profile", "cifar-b1",
             "--samples", "3", "--name", "mine", "--no-progress"]
    for db in (f"bundled:{SMALL_STORE}", str(copy)):  # by name, or the cached copy's own path
        _refused(_lpm(env, *adapt, "--db", db), "is a store shipped with the package", "a file of your own")
        _refused(_lpm(env, "profile", "--backend", "torch", "--samples", "1", "--db", db, "--no-progress"),
                 "is only ever read")
    assert _file_digest(copy) == before  # not upgraded to schema 2, not given a unique index
    assert sorted(p.name for p in cache.iterdir()) == files_before
    assert not (zoo / "mine").exists()


# --- 11: regular files only ---------------------------------------------------------------------------
def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("where", ["ridge/model.safetensors", "ridge/meta.json", "rf/model.skops",
                                   "rf/train.json.gz", "adapted/sources/0/model.safetensors",
                                   "adapted/sources/0/meta.json"])
def test_a_fifo_in_a_zoo_entry_is_refused_never_waited_on(env, tmp_path, where):
    zoo = Path(env["LPM_ZOO_HOME"])
    kind = where.split("/")[0]
    if kind == "ridge":
        _ridge(zoo / kind)
    elif kind == "rf":
        ops, inputs = sample_arrays(60, seed=1)
        create_predictor("rf", n_estimators=2).fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(zoo / kind))
        if where.endswith("train.json.gz"):  # saved by another scikit-learn: refitted from its training set
            meta = json.loads((zoo / kind / "meta.json").read_text())
            meta["versions"]["scikit-learn"] = "0.0.1"
            (zoo / kind / "meta.json").write_text(json.dumps(meta))
    else:
        _adapted(zoo / kind, _ridge(tmp_path / "src"))
    _fifo(zoo / where)
    r = _lpm(env, "predict", "--predictor", kind, "--genotype", "DARTS_V2", timeout=60)  # a hang fails here
    line = _refused(r)
    if where.endswith("ridge/meta.json"):  # not a regular file: not an entry at all
        assert "no fitted predictor named 'ridge'" in line
    elif where.endswith("train.json.gz"):  # the refit needs the training set, which is not a file
        assert "no training set is stored" in line
    else:
        assert "is a FIFO, not a regular file" in line
    r = _lpm(env, "zoo", "list", timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert stat.S_ISFIFO(os.lstat(zoo / where).st_mode)  # left as it was


# --- 12: file text is escaped before it reaches the terminal ----------------------------------------------
HOSTILE_TEXT = "\x1b[2J\x1b]0;pwned\x07ev\x00il\u202eliam\u2066"


def _raw_control(text: str) -> list[str]:
    """The characters of `text` a terminal would act on (anything not printable but the newline)."""
    return sorted({c for c in text if not c.isprintable() and c != "\n"})


def test_escape_sequences_from_a_zoo_entry_never_reach_the_terminal(env, tmp_path):
    zoo = Path(env["LPM_ZOO_HOME"])
    _ridge(zoo / "evil")
    meta = json.loads((zoo / "evil" / "meta.json").read_text())
    meta.update(backend=HOSTILE_TEXT, device=HOSTILE_TEXT, profile="cifar-b1",
                hardware={"kind": "cpu", "model": f"Xeon {HOSTILE_TEXT}", "logical_cores": 2})
    (zoo / "evil" / "meta.json").write_text(json.dumps(meta))
    _ridge(zoo / "broken")
    (zoo / "broken" / "meta.json").write_text(json.dumps({"type": f"ridge{HOSTILE_TEXT}"}))
    r = _lpm(env, "zoo", "list")
    assert r.returncode == 0 and not _raw_control(r.stdout + r.stderr), (r.stdout, r.stderr)
    assert "\\x1b[2J" in r.stdout and "\\u202e" in r.stdout  # shown, escaped
    r = _lpm(env, "predict", "--predictor", "evil", "--genotype", "DARTS_V2")  # the hardware note quotes the model
    assert r.returncode == 0 and not _raw_control(r.stdout + r.stderr), (r.stdout, r.stderr)
    assert "was fitted on Xeon \\x1b[2J" in r.stderr
    line = _refused(_lpm(env, "predict", "--predictor", "broken", "--genotype", "DARTS_V2"))
    assert not _raw_control(line)
    ops, inputs = sample_arrays(60, seed=1)  # a note quoting meta.json: the refit names the scikit-learn it read
    create_predictor("rf", n_estimators=2).fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(zoo / "old-rf"))
    meta = json.loads((zoo / "old-rf" / "meta.json").read_text())
    meta["versions"]["scikit-learn"] = f"0.1{HOSTILE_TEXT}"
    (zoo / "old-rf" / "meta.json").write_text(json.dumps(meta))
    r = _lpm(env, "predict", "--predictor", "old-rf", "--genotype", "DARTS_V2")
    assert r.returncode == 0 and "note: refitting predictor old-rf" in r.stderr, r.stderr
    assert not _raw_control(r.stdout + r.stderr) and "saved with scikit-learn 0.1\\x1b[2J" in r.stderr


# --- 13: weights of another dtype or shape ---------------------------------------------------------------
@pytest.mark.parametrize("case", ["mlp-int8", "mlp-f16", "mlp-f64", "mlp-bias-shape", "ridge-f16", "knn-int64",
                                  "stray-array"])
def test_weights_of_another_dtype_or_shape_are_refused(env, tmp_path, case):
    from safetensors.numpy import load_file, save_file

    zoo = Path(env["LPM_ZOO_HOME"])
    kind = case.split("-")[0] if case != "stray-array" else "ridge"
    ops, inputs = sample_arrays(40, seed=2)
    y = 5 + OP_COST[ops].sum(1)
    params = {"mlp": {"hidden": [8], "epochs": 2}, "ridge": {}, "knn": {"n_neighbors": 3}}[kind]
    p = create_predictor(kind, **params).fit((ops, inputs), y)
    p.meta["profile"] = "cifar-b1"
    p.save(str(zoo / "cast"))
    f = zoo / "cast" / "model.safetensors"
    state = load_file(str(f))
    if case in ("mlp-int8", "mlp-f16", "mlp-f64", "ridge-f16"):
        dtype = {"int8": np.int8, "f16": np.float16, "f64": np.float64}[case.split("-")[1]]
        state = {k: v.astype(dtype) for k, v in state.items()}
    elif case == "mlp-bias-shape":
        state["layer0.bias"] = state["layer0.bias"][:, None]
    elif case == "knn-int64":
        state["ops"] = state["ops"].astype(np.int64)
    else:
        state["extra"] = np.zeros(3)
    save_file(state, str(f))
    expect = {"mlp-bias-shape": "has shape (8, 1), where a mlp model has (N,)",
              "stray-array": "holds an array 'extra' that a ridge model never has",
              "knn-int64": "array 'ops' is int64, where a knn model stores int8"}.get(case, "where a")
    _refused(_lpm(env, "predict", "--predictor", "cast", "--genotype", "DARTS_V2"), "cannot read the model", expect)
    db = tmp_path / "here.db"
    _refused(_lpm(env, "adapt", "--from", "cast", "--backend", "ort", "--device", "cpu", "--profile", "cifar-b1",
                  "--samples", "3", "--db", str(db), "--name", "from-cast", "--no-progress"),
             "cannot read the model", expect)
    assert not db.exists() and not (zoo / "from-cast").exists()


# --- 14: the sources of an adapted predictor are the ones it was adapted from ------------------------------
def _adapted(path: Path, source: Path) -> Path:
    from lpm_zoo.adaptation.predictor import AdaptedPredictor

    ops, inputs = sample_arrays(12, seed=7)
    p = AdaptedPredictor(method="affine", n_sources=1).with_sources([load_predictor(source)], [source])
    p.fit((ops, inputs), 1.3 * (5 + OP_COST[ops].sum(1)))
    p.save(str(path))
    return path


def test_a_replaced_source_of_an_adapted_predictor_is_refused(env, tmp_path):
    import shutil

    zoo = Path(env["LPM_ZOO_HOME"])
    ad = _adapted(zoo / "ad", _ridge(tmp_path / "src"))
    meta = json.loads((ad / "meta.json").read_text())
    assert len(meta["source_sha256"]) == 1
    r = _lpm(env, "predict", "--predictor", "ad", "--genotype", "DARTS_V2", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    good = json.loads(r.stdout)["latency_ms"]
    other = _ridge(tmp_path / "other", seed=4, factor=3.0)  # another predictor put in its place
    shutil.rmtree(ad / "sources" / "0")
    shutil.copytree(other, ad / "sources" / "0")
    _refused(_lpm(env, "predict", "--predictor", "ad", "--genotype", "DARTS_V2"),
             "is not the source predictor ad was adapted from", "adapt it again")
    for bad in (["0" * 64, "1" * 64], "abc", [None]):  # a damaged record is refused too
        (ad / "meta.json").write_text(json.dumps({**meta, "source_sha256": bad}))
        _refused(_lpm(env, "predict", "--predictor", "ad", "--genotype", "DARTS_V2"), "source_sha256 must be")
    shutil.rmtree(ad / "sources" / "0")
    shutil.copytree(tmp_path / "src", ad / "sources" / "0")
    (ad / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "source_sha256"}))
    r = _lpm(env, "predict", "--predictor", "ad", "--genotype", "DARTS_V2", "--json")  # saved by an older lpm-zoo
    assert r.returncode == 0 and json.loads(r.stdout)["latency_ms"] == good
    assert r.stderr.startswith("lpm predict: note: ad records no hash of its source predictors")
    assert r.stderr.count("\n") == 1


# --- 16: edited stores ----------------------------------------------------------------------------------
def test_an_edited_cell_key_is_a_bad_row_not_a_new_architecture(env, tmp_path):
    db = _synthetic(tmp_path / "s.db", 12)
    with _edit(db) as c:
        c.execute("UPDATE measurements SET cell_key='ff' || substr(cell_key, 3) WHERE id=3")
        c.execute("UPDATE measurements SET cell_key='not-a-key' WHERE id=5")
        c.execute("UPDATE measurements SET genotype_key='x' || genotype_key WHERE id=7")
        c.execute("UPDATE measurements SET encoding=replace(encoding, '1', '0') WHERE id=9")
    before = _file_digest(db)
    r = _lpm(env, "data", "info", "--db", str(db), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n_unique"] == 8, r.stdout
    assert r.stderr.startswith("lpm data info: warning: skipped 4 bad rows (ids 3, 5, 7, 9; id 3: cell_key is not")
    assert r.stderr.count("\n") == 1
    _refused(_lpm(env, "data", "restat", "--db", str(db), "--statistic", "min"),
             "skipped 4 bad rows", "the store is unchanged")
    assert _file_digest(db) == before


def test_duplicate_measurements_in_a_store_without_its_unique_index_are_skipped_and_named(env, tmp_path):
    db = _synthetic(tmp_path / "s.db", 12)
    with _edit(db) as c:  # a recheck of every architecture: repeat 1, about 1% off
        c.execute("INSERT INTO measurements (backend, device, profile, cell_key, genotype_key, encoding, genotype,"
                  " latency_ms, spread_ms, runs_ms, protocol, timestamp, repeat) SELECT backend, device, profile,"
                  " cell_key, genotype_key, encoding, genotype, latency_ms * 1.01, spread_ms, runs_ms, protocol,"
                  " timestamp + 3600, 1 FROM measurements")
    r = _lpm(env, "data", "info", "--db", str(db), "--json")
    honest = json.loads(r.stdout)["repeatability"]
    assert r.returncode == 0 and honest["n"] == 12 and honest["mean_pct"] < 1.1
    with _edit(db) as c:  # the index dropped, then a second "first measurement" of 3 architectures
        c.execute("DROP INDEX measurements_once")
        c.execute("INSERT INTO measurements (backend, device, profile, cell_key, genotype_key, encoding, genotype,"
                  " latency_ms, spread_ms, runs_ms, protocol, timestamp, repeat) SELECT backend, device, profile,"
                  " cell_key, genotype_key, encoding, genotype, latency_ms * 3, spread_ms, runs_ms, protocol,"
                  " timestamp, 0 FROM measurements WHERE id <= 3")
    before = _file_digest(db)
    r = _lpm(env, "data", "info", "--db", str(db), "--json")
    row = json.loads(r.stdout)
    assert r.returncode == 0 and row["n"] == 24 and row["repeatability"] == honest  # not inflated
    assert r.stderr.startswith("lpm data info: warning: skipped 3 bad rows (ids 25, 26, 27; id 25: a second copy of "
                               "measurement 0 of row 1's architecture"), r.stderr
    _refused(_lpm(env, "data", "restat", "--db", str(db), "--statistic", "min"),
             "holds two rows of one architecture's same measurement", "nothing is written")
    assert _file_digest(db) == before


def test_a_store_without_its_schema_version_is_repaired_once_not_migrated_twice(env, tmp_path):
    db = _synthetic(tmp_path / "s.db", 12)
    with _edit(db) as c:
        c.execute("UPDATE measurements SET repeat=1 WHERE id=2")  # the numbering a writer made is kept
        c.execute("DELETE FROM meta WHERE key='schema_version'")
        rows = c.execute("SELECT id, cell_key, repeat FROM measurements ORDER BY id").fetchall()
    for _ in range(2):
        r = _lpm(env, "data", "restat", "--db", str(db), "--statistic", "min")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    with _edit(db) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
        assert c.execute("SELECT id, cell_key, repeat FROM measurements ORDER BY id").fetchall() == rows
        assert c.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='measurements_once'").fetchone() == (1,)
    with _edit(db) as c:  # both copies of one measurement, the version row gone too: refused
        c.execute("DROP INDEX measurements_once")
        c.execute("DELETE FROM meta WHERE key='schema_version'")
        c.execute("INSERT INTO measurements (backend, device, profile, cell_key, genotype_key, encoding, genotype,"
                  " latency_ms, spread_ms, runs_ms, protocol, timestamp, repeat) SELECT backend, device, profile,"
                  " cell_key, genotype_key, encoding, genotype, latency_ms, spread_ms, runs_ms, protocol, timestamp,"
                  " repeat FROM measurements WHERE id=1")
    before = _file_digest(db)
    _refused(_lpm(env, "data", "restat", "--db", str(db), "--statistic", "median"),
             "holds two rows of one architecture's same measurement")
    assert _file_digest(db) == before
