"""A store never takes another machine's timings: name and fingerprint are checked, never the name alone.

Each case runs `lpm` in a process of its own (tests/lpm_runner.py) as a stated host (`LPM_HOST_IDENTITY`),
so "another machine" is tried on this one: a store profiled as one CPU is then offered timings from another, under the
store's device name (`--device-name`) or under the same name with a different fingerprint; both are
refused in one line, and the store is byte-identical afterwards. A stated identity is for tests only: its rows
never enter a store a real machine recorded (nor the reverse), and `lpm fit` / `adapt` refuse them unless
LPM_ALLOW_STATED_ROWS=1 (which the suite sets); `lpm data info` shows them.
"""

import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from lpm_runner import run_lpm

from lpm_zoo.published import DARTS_V2
from lpm_zoo.store import Measurement, MeasurementStore, Target

# not marked `host`: every test here states the identities it runs as
SMALL = ["--backend", "ort", "--profile", "small-b1", "--warmup", "0", "--rounds", "2", "--reps", "1",
         "--no-progress", "--target-pct", "0"]
XEON_AVX2 = json.dumps({"model": "Intel(R) Xeon(R) Processor", "isa": ["avx", "avx2", "fma", "sse4_2"],
                        "logical_cores": 2})


def _lpm(*args: str, host: str, **env: str) -> subprocess.CompletedProcess:
    return run_lpm(args, timeout=300, env={**os.environ, "LPM_HOST_IDENTITY": host, **env})  # forked: lpm_runner


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_refusal(r: subprocess.CompletedProcess, *says: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("lpm ") and "Traceback" not in r.stderr, r.stderr
    for s in says:
        assert s in r.stderr, r.stderr


@pytest.fixture(scope="module")
def xeon_store(tmp_path_factory):
    """A store of 2 small-b1 cells profiled as the Xeon (filed as `xeon`)."""
    db = tmp_path_factory.mktemp("xeon") / "x.db"
    r = _lpm("profile", *SMALL, "--samples", "2", "--db", str(db), host="xeon")
    assert r.returncode == 0, r.stderr
    with MeasurementStore(db, readonly=True) as s:
        assert s.count(Target("ort", "xeon", "small-b1")) == 2
    return db


def test_device_name_alone_cannot_file_another_machines_timings(xeon_store):
    before = _digest(xeon_store)
    r = _lpm("profile", *SMALL, "--samples", "4", "--db", str(xeon_store), "--device-name", "xeon", host="epyc")
    _one_line_refusal(r, "measured on Intel(R) Xeon(R) Processor", "this machine is AMD EPYC", "--device-name epyc")
    assert _digest(xeon_store) == before


def test_the_same_name_with_another_fingerprint_is_refused(xeon_store):
    """The name is `xeon` either way; the ISA differs (an AVX2-only Xeon): not the store's machine."""
    before = _digest(xeon_store)
    r = _lpm("profile", *SMALL, "--samples", "4", "--db", str(xeon_store), host=XEON_AVX2)
    _one_line_refusal(r, "would mix two machines")
    assert _digest(xeon_store) == before


def test_an_isa_cap_is_another_machine(xeon_store):
    before = _digest(xeon_store)
    r = _lpm("profile", *SMALL, "--samples", "4", "--db", str(xeon_store), "--device-name", "xeon", host="xeon",
             ATEN_CPU_CAPABILITY="avx2")
    _one_line_refusal(r, "would mix two machines", "capped avx2")
    assert _digest(xeon_store) == before


def test_the_same_machine_continues_its_store(xeon_store, tmp_path):
    db = tmp_path / "copy.db"
    db.write_bytes(xeon_store.read_bytes())
    r = _lpm("profile", *SMALL, "--samples", "3", "--db", str(db), host="xeon")
    assert r.returncode == 0, r.stderr
    with MeasurementStore(db, readonly=True) as s:
        assert s.count(Target("ort", "xeon", "small-b1")) == 3


def test_a_store_without_a_recorded_fingerprint_is_judged_by_its_rows(tmp_path):
    """Older stores record only the CPU model in each row: an EPYC may not continue a Xeon's `cpu` rows."""
    db = tmp_path / "old.db"
    with MeasurementStore(db) as s:
        s.add(Measurement(DARTS_V2, "ort", "cpu", "small-b1", 1.0, 0.01, [1.0],
                          {"statistic": "min", "cpu_model": "Intel(R) Xeon(R) Processor"}))
    before = _digest(db)
    for args in (["profile", *SMALL, "--samples", "3"], ["adapt", "--from", "ort-xeon-small", "--backend", "ort",
                                                          "--profile", "small-b1", "--samples", "3", "--name", "x",
                                                          "--no-progress"]):
        r = _lpm(*args, "--db", str(db), "--device-name", "cpu", host="epyc", LPM_ZOO_HOME=str(tmp_path / "zoo"))
        _one_line_refusal(r, "measured on Intel(R) Xeon(R) Processor")
        assert _digest(db) == before and not (tmp_path / "zoo" / "x").exists()


@pytest.mark.parametrize("value", ["../../x;$(id)", "!!!", "avx9000"])
def test_an_unknown_isa_cap_is_refused_before_any_work(value, tmp_path):
    db = tmp_path / "p.db"
    r = _lpm("profile", *SMALL, "--samples", "1", "--db", str(db), host="epyc", ATEN_CPU_CAPABILITY=value)
    _one_line_refusal(r, "ATEN_CPU_CAPABILITY=", "is not a value its runtime knows")
    assert not db.exists()


SHIPPED = Path(__file__).parents[1] / "lpm_zoo" / "data" / "measurements" / "ort-xeon-small-b1.db.gz"


def test_a_stated_identity_never_adds_rows_to_a_real_machines_store(tmp_path):
    """The red team's case: the shipped Xeon store (a real fingerprint), profiled on as a stated `xeon`."""
    db = tmp_path / "x.db"
    db.write_bytes(gzip.decompress(SHIPPED.read_bytes()))
    with MeasurementStore(db, readonly=True) as s:
        before = s.count(Target("ort", "xeon", "small-b1"), unique=False)
    r = _lpm("profile", *SMALL, "--samples", str(before + 2), "--db", str(db), host="xeon")
    _one_line_refusal(r, "holds rows of a real machine", "LPM_HOST_IDENTITY, for tests only")
    r = _lpm("profile", *SMALL, "--samples", "2", "--db", str(db), "--backend", "torch", host="xeon")
    _one_line_refusal(r, "holds rows of a real machine")  # another series of the same store: refused too
    with MeasurementStore(db, readonly=True) as s:
        assert s.count(Target("ort", "xeon", "small-b1"), unique=False) == before and len(s.summary()) == 1


def test_a_real_machine_never_adds_rows_to_a_stated_store(tmp_path, monkeypatch):
    """Stated as exactly this machine (same model and ISA): only `stated` differs, and that alone keeps them apart."""
    from lpm_zoo.hardware import cpu_fingerprint

    monkeypatch.delenv("LPM_HOST_IDENTITY")
    here = cpu_fingerprint()
    same = json.dumps({k: here[k] for k in ("model", "isa", "logical_cores", "machine")})
    db = tmp_path / "s.db"
    r = _lpm("profile", *SMALL, "--samples", "1", "--db", str(db), "--device-name", "me", host=same)
    assert r.returncode == 0, r.stderr
    before = _digest(db)
    for extra in (["--device-name", "me"], ["--device-name", "other"]):
        r = _lpm("profile", *SMALL, "--samples", "2", "--db", str(db), *extra, host="")
        _one_line_refusal(r, "holds rows measured under a stated identity", "real timings never mix")
        assert _digest(db) == before


def test_fit_and_adapt_refuse_stated_rows_unless_allowed_for_tests(xeon_store, tmp_path):
    fit = ["fit", "--db", str(xeon_store), "--backend", "ort", "--device-name", "xeon", "--profile", "small-b1",
           "--predictor", "ridge", "--zoo-dir", str(tmp_path / "zoo")]
    r = _lpm(*fit, host="xeon", LPM_ALLOW_STATED_ROWS="")
    _one_line_refusal(r, "2 rows were measured under a stated host identity", "LPM_ALLOW_STATED_ROWS=1")
    r = _lpm(*fit, host="xeon", LPM_ALLOW_STATED_ROWS="1")
    assert "stated" not in r.stderr, r.stderr  # allowed: whatever else it says, not this
    db = tmp_path / "a.db"
    r = _lpm("adapt", "--from", "ort-xeon-small", "--backend", "ort", "--profile", "small-b1", "--samples", "3",
             "--name", "x", "--zoo-dir", str(tmp_path / "zoo"), "--db", str(db), "--no-progress", host="epyc",
             LPM_ALLOW_STATED_ROWS="")
    _one_line_refusal(r, "lpm adapt (the cells it measures here)", "stated host identity")
    assert not db.exists() and not (tmp_path / "zoo" / "x").exists()


def test_data_info_shows_stated_rows(xeon_store):
    r = _lpm("data", "info", "--db", str(xeon_store), host="xeon")
    assert r.returncode == 0 and "note: 2 of the 2 ort/xeon/small-b1 measurements were taken under a stated host " \
        "identity" in r.stdout, r.stdout + r.stderr
    r = _lpm("data", "info", "--db", str(xeon_store), "--json", host="xeon")
    assert json.loads(r.stdout.splitlines()[0])["stated"] == 2
