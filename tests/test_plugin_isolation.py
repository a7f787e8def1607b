"""A plugin cannot break the program: a backend plugin whose import, constructor or `available()` fails or hangs,
a plugin that takes a built-in's name, and a predictor plugin without `_fit` are each one escaped warning line (or,
when named on the command line, one error line, exit 2), while every other backend and command works. Every
network wait has a timeout: `--ray` addresses are checked when parsed, and joining a cluster is bounded.

The plugins are real distributions: a dist-info with entry points on PYTHONPATH, run by `lpm` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lpm_zoo.registry as core
from lpm_zoo.errors import LpmError
from lpm_zoo.ray_cluster import check_address, join
from lpm_zoo.registry import Registry

PLUGIN = textwrap.dedent('''
    import time
    from lpm_zoo.backends.base import Backend, Prepared
    from lpm_zoo.predictors import Predictor

    class _Base(Backend):
        def available(self, device="cpu"):
            return True, ""
        def prepare(self, model, example_input, device="cpu", threads=1, **opts):
            return Prepared(lambda: None)
        def run_timed(self, prepared, n, clock="wall"):
            return [1.0] * n

    class RaisesAvailable(_Base):
        def available(self, device="cpu"):
            raise RuntimeError("boom \\x1b[31mRED\\x1b[0m " + "x" * 5000)

    class BadInit(_Base):
        def __init__(self):
            raise ValueError("no \\x1b]0;pwned\\x07 way")

    class Hangs(_Base):
        def available(self, device="cpu"):
            time.sleep(3600)

    class Impostor(_Base):
        pass

    class NoFit(Predictor):
        pass
''')


def _site(tmp_path, backends: dict[str, str], predictors: dict[str, str] | None = None) -> dict[str, str]:
    """An installed distribution `aa-lpm-broken` (its module sorts before `backends`) with these entry points;
    the environment that sees it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "aa_lpm_broken.py").write_text(PLUGIN)
    dist = site / "aa_lpm_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aa-lpm-broken\nVersion: 0.1\n")
    groups = {"lpm_zoo.backends": backends, "lpm_zoo.predictors": predictors or {}}
    (dist / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{n} = aa_lpm_broken:{v}\n" for n, v in eps.items()) for g, eps in groups.items()))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "LPM_PLUGIN_TIMEOUT_S": "1"}


def _lpm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, timeout=120,
                          env=env)


ALL = {"raises": "RaisesAvailable", "badinit": "BadInit", "hangs": "Hangs", "ort": "Impostor"}


def test_lpm_backends_lists_every_other_backend_with_one_escaped_line_per_broken_plugin(tmp_path):
    env = _site(tmp_path, ALL)
    t0 = time.monotonic()
    r = _lpm(env, "backends")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - t0 < 60  # the hung available() is given up after LPM_PLUGIN_TIMEOUT_S
    rows = {tuple(line.split()[:2]) for line in r.stdout.splitlines()}
    assert {("torch", "cpu"), ("ort", "cpu")} <= rows
    lines = r.stderr.splitlines()
    assert all(line.startswith("lpm: warning: ") for line in lines), r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\\x1b" in r.stderr  # escaped, never raw
    assert all(len(line) < 400 for line in lines)  # a plugin's 5000 characters are capped
    for name, says in (("raises", "raised RuntimeError"), ("badinit", "failed to start: ValueError"),
                       ("hangs", "gave no answer in 1 s"), ("ort", "the built-in lpm_zoo.backends.ort_backend.OrtBackend, "
                                                                  "which is kept")):
        mine = [line for line in lines if f"'{name}'" in line]
        assert len(mine) == 1 and says in mine[0], (name, r.stderr)  # once per process, accurate


def test_lpm_backends_json_stays_json_beside_broken_plugins(tmp_path):
    r = _lpm(_site(tmp_path, ALL), "backends", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by = {(row["backend"], row["device"]): row for row in rows}
    assert by["ort", "cpu"]["module"] == "lpm_zoo.backends.ort_backend" and by["ort", "cpu"]["available"]
    assert not by["raises", "cpu"]["available"] and "badinit" not in {row["backend"] for row in rows}


@pytest.mark.parametrize("name,says", [("raises", "its available() raised RuntimeError: boom \\x1b[31mRED"),
                                       ("badinit", "failed to start: ValueError: no \\x1b]0;pwned\\x07 way"),
                                       ("hangs", "its available() gave no answer in 1 s")])
def test_measuring_on_a_broken_plugin_is_one_line_exit_2(tmp_path, name, says):
    r = _lpm(_site(tmp_path, {name: ALL[name]}), "measure", "--backend", name, "--genotype", "DARTS_V2",
             "--profile", "small-b1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("lpm measure: error: backend ") and says in r.stderr and "\x1b" not in r.stderr


def test_another_backend_measures_beside_broken_plugins(tmp_path):
    r = _lpm(_site(tmp_path, ALL), "measure", "--backend", "ort", "--genotype", "DARTS_V2", "--profile", "small-b1",
             "--warmup", "0", "--rounds", "2", "--reps", "1", "--target-pct", "0", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["latency_ms"] > 0


def test_a_predictor_plugin_without_fit_is_one_line_exit_2(tmp_path):
    r = _lpm(_site(tmp_path, {}, {"nofit": "NoFit"}), "fit", "--db", "bundled:ort-xeon-small-b1", "--backend", "ort",
             "--profile", "small-b1", "--predictor", "nofit", "--zoo-dir", str(tmp_path / "zoo"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "predictor type 'nofit' (aa_lpm_broken) does not implement _fit, _predict, _state" in r.stderr
    assert not (tmp_path / "zoo").exists()


# --- in process: the registry's own guarantees ----------------------------------------------------------------

def test_a_plugin_warning_is_escaped_capped_and_printed_once(capsys):
    core.warn_once("plugin 'x' failed: \x1b[2J\x1b]0;t\x07" + "y" * 1000)
    core.warn_once("plugin 'x' failed: \x1b[2J\x1b]0;t\x07" + "y" * 1000)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\x1b[2J" in err and len(err) < core.WARNING_CHARS + 40


def test_a_plugin_cannot_take_a_built_ins_name_even_when_it_sorts_first(monkeypatch, capsys):
    from importlib import metadata as md

    from lpm_zoo.backends import registry
    from lpm_zoo.backends.ort_backend import OrtBackend

    eps = [md.EntryPoint("ort", "aaa_evil:Ort", registry.GROUP),
           md.EntryPoint("ort", "lpm_zoo.backends.ort_backend:OrtBackend", registry.GROUP)]
    monkeypatch.setattr(core, "entry_points", lambda group: eps if group == registry.GROUP else [])
    fresh = Registry("backend", group=registry.GROUP, accepts=registry.Backend, attr="name",
                     builtins=("lpm_zoo.backends.ort_backend",))
    fresh._items["ort"] = OrtBackend  # what importing the built-in module registers
    assert fresh.get("ort") is OrtBackend
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backend plugin 'ort' (aaa_evil:Ort) rejected" in err and "is kept" in err


# --- network waits ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "", "host", "a b:1", "127.0.0.1:-1"])
def test_a_bad_ray_address_is_refused_when_parsed(address, tmp_path):
    with pytest.raises(LpmError, match="a port from 1 to 65535"):
        check_address(address)
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "sweep", "--out", str(tmp_path / "R"), "--ray", address],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "argument --ray" in r.stderr, r.stderr
    assert not (tmp_path / "R").exists()


def test_joining_a_closed_port_is_one_line_at_once(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "profile", "--backend", "ort", "--profile", "small-b1",
                        "--samples", "1", "--db", str(tmp_path / "p.db"), "--ray", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "cannot reach a Ray cluster at '127.0.0.1:1'" in r.stderr and time.monotonic() - t0 < 60
    assert not (tmp_path / "p.db").exists()  # refused before the store is created


class _SilentRay:
    """A ray module whose init never returns (a server that accepts and says nothing)."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.released.wait()


def test_joining_a_silent_server_times_out_in_one_line(monkeypatch):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    ray = _SilentRay()
    monkeypatch.setenv("LPM_RAY_TIMEOUT_S", "1")
    try:
        with pytest.raises(LpmError, match=r"Ray at '127.0.0.1:\d+' did not answer in 1 s"):
            join(ray, f"127.0.0.1:{server.getsockname()[1]}")
    finally:
        ray.released.set()
        server.close()


def test_the_rules_section_names_the_knobs_and_tests_the_code_has():
    """docs/security-and-file-formats.md states these rules with the variables, defaults and tests the code has."""
    from pathlib import Path

    from lpm_zoo.backends.base import PROBE_TIMEOUT_S, PROBE_TIMEOUT_VAR
    from lpm_zoo.hardware import ALLOW_STATED_VAR, HOST_IDENTITY_VAR
    from lpm_zoo.ray_cluster import CONNECT_TIMEOUT_S, JOIN_TIMEOUT_S, JOIN_TIMEOUT_VAR

    root = Path(__file__).parents[1]
    doc = (root / "docs" / "security-and-file-formats.md").read_text()
    section = doc.split("## Stated identities, backend options, plugins and network waits", 1)[1].split("\n## ")[0]
    for rule in ("A stated identity is for tests only", "Backend options are part of a series' identity",
                 "A plugin cannot break the program", "Every network wait has a timeout"):
        assert rule in section
    for said in (HOST_IDENTITY_VAR, ALLOW_STATED_VAR, f"`{PROBE_TIMEOUT_VAR}`, default {PROBE_TIMEOUT_S:g} s",
                 f"`{JOIN_TIMEOUT_VAR}` (default {JOIN_TIMEOUT_S:g} s)", f"({CONNECT_TIMEOUT_S:g} s)",
                 f"capped at {core.WARNING_CHARS} characters"):
        assert said in section, said
    named = {w.strip("`.,;:()") for w in section.split() if w.strip("`.,;:()").startswith("tests/test_")}
    assert named and all((root / t).is_file() for t in named), named
    conftest = (root / "tests" / "conftest.py").read_text()
    assert 'setdefault(ALLOW_STATED_VAR, "1")' in conftest and "ALLOW_STATED_VAR" in conftest


@pytest.mark.parametrize("text,want", [("", 20.0), ("abc", 20.0), ("nan", 20.0), ("inf", 20.0), ("-5", 0.1),
                                       ("1e9", 600.0), ("2.5", 2.5)])
def test_a_wait_bound_from_the_environment_is_a_finite_clamped_number(monkeypatch, text, want):
    from lpm_zoo.timeouts import seconds_from_env

    monkeypatch.setenv("LPM_TEST_WAIT_S", text)
    assert seconds_from_env("LPM_TEST_WAIT_S", 20.0, 0.1, 600.0) == want
