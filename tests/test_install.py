"""A user's install, not only a clone's (issue 35): what the wheel carries, and a user's own store opened
without the bundled ones (scripts/wheel_smoke.sh builds the wheel and runs it from another folder)."""

from __future__ import annotations

import fnmatch
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lpm_zoo.errors import LpmError
from lpm_zoo.store import MeasurementStore, bundled, bundled_name, list_bundled

ROOT = Path(__file__).resolve().parents[1]


def test_every_file_the_package_reads_is_package_data():
    """Each non-Python file under lpm_zoo/ matches a package-data glob, so the wheel and the sdist carry it."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lpm_zoo"]
    files = [f.relative_to(ROOT / "lpm_zoo").as_posix() for f in (ROOT / "lpm_zoo").rglob("*")
             if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts]
    assert any(f.startswith("data/measurements/") for f in files) and "data/calibration.json" in files
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


def test_a_users_store_opens_without_the_bundled_folder(tmp_path, monkeypatch):
    """An install without data/measurements lists no bundled store, and a user's .db never asks for one."""
    db = tmp_path / "mine.db"
    MeasurementStore(db).close()

    class NoStores:  # importlib.resources of an install whose lpm_zoo/ has no data folder
        @staticmethod
        def files(package: str) -> Path:
            return tmp_path / "site-packages" / package

    monkeypatch.setattr(bundled, "resources", NoStores)
    assert list_bundled() == []
    with MeasurementStore(db, readonly=True) as store:
        assert store.path == db
    with pytest.raises(LpmError, match="no bundled measurements 'ort-cpu-cifar-b1'; bundled: none"):
        MeasurementStore("bundled:ort-cpu-cifar-b1", readonly=True)

    def no_lookup() -> list[str]:
        raise AssertionError("a user's file went through the bundled lookup")

    monkeypatch.setattr(bundled, "list_bundled", no_lookup)
    assert bundled_name(db) is None and bundled_name(tmp_path / "ort-cpu-cifar-b1.db") is None


def test_the_unpacked_copy_of_a_bundled_store_is_still_known(tmp_path, monkeypatch):
    monkeypatch.setenv("LPM_ZOO_CACHE", str(tmp_path))
    assert bundled_name(tmp_path / "data" / "ort-cpu-cifar-b1.db") == "ort-cpu-cifar-b1"
    assert bundled_name(tmp_path / "data" / "mine.db") is None


@pytest.mark.parametrize("name,hint", [("x.db.gz", "gunzip -k {p}, then give --db {d}/x.db"),
                                       ("y.db", "gunzip -c {p} > {d}/y-unpacked.db, then give --db {d}/y-unpacked.db")])
def test_a_gzip_compressed_store_is_refused_with_how_to_unpack_it(tmp_path, name, hint):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"SQLite format 3\0"))
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "data", "info", "--db", str(path)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "LPM_ZOO_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr == (f"lpm data: error: {path} is gzip-compressed, not an SQLite store; unpack it first: "
                        + hint.format(p=path, d=tmp_path) + "\n")
