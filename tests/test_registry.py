"""One registry mechanism for predictor types, backends and commands: decorator, entry points, lazy
discovery, one name per object, duplicates reported, unknown names listed; a plugin predictor
type round-trips through the zoo in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata as md

import pytest

import lpm_zoo.registry as core
from lpm_zoo.errors import LpmError
from lpm_zoo.registry import Registry


class Base:
    name = ""


def _fake_eps(monkeypatch, tmp_path, group, entries: dict[str, str], module_text: str = "") -> None:
    """Entry points of `group` replaced by `entries`; `module_text` becomes module lpm_reg_plugin (given Base)."""
    if module_text:
        (tmp_path / "lpm_reg_plugin.py").write_text(textwrap.dedent(module_text))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "lpm_reg_plugin", raising=False)
        monkeypatch.setattr(core, "_TEST_BASE", Base, raising=False)
    eps = [md.EntryPoint(n, v, group) for n, v in entries.items()]
    monkeypatch.setattr(core, "entry_points", lambda g: eps if g == group else [])


def test_discovery_is_lazy_and_reports_broken_and_duplicate_plugins(monkeypatch, tmp_path, capsys):
    _fake_eps(monkeypatch, tmp_path, "g", {"one": "lpm_reg_plugin:One", "broken": "lpm_no_such:X",
                                           "notbase": "lpm_reg_plugin:Other"}, """
        from lpm_zoo.registry import _TEST_BASE as Base
        class One(Base): pass
        class Other: pass
    """)
    reg: Registry = Registry("widget", group="g", accepts=Base, attr="name")
    assert "lpm_reg_plugin" not in sys.modules  # nothing imported before the first look-up
    assert reg.names() == ["one"] and reg.get("one").name == "one"
    err = capsys.readouterr().err
    assert "widget 'broken' (lpm_no_such:X) failed to load" in err and "widget 'notbase'" in err
    with pytest.raises(LpmError, match="unknown widget 'two'; known: one"):
        reg.get("two")


def test_one_name_per_object(monkeypatch, tmp_path, capsys):
    _fake_eps(monkeypatch, tmp_path, "g", {"alias": "lpm_reg_plugin:One"}, """
        from lpm_zoo.registry import _TEST_BASE as Base
        class One(Base): pass
    """)
    reg: Registry = Registry("widget", group="g", accepts=Base, attr="name")
    import lpm_reg_plugin

    reg._add("one", lpm_reg_plugin.One)
    assert reg.names() == ["one"]  # the entry point's second name for the same class is refused
    assert "already registered as widget 'one'; one name each" in capsys.readouterr().err
    assert lpm_reg_plugin.One.name == "one"


def test_a_name_taken_by_an_entry_point_cannot_be_registered_in_code(monkeypatch, tmp_path):
    _fake_eps(monkeypatch, tmp_path, "g", {"one": "somewhere:One"})
    reg: Registry = Registry("widget", group="g", accepts=Base, attr="name")
    with pytest.raises(ValueError, match="widget 'one' is already provided by somewhere:One"):
        reg.register("one")(type("Mine", (Base,), {}))


def test_duplicate_command_names_are_reported_not_silently_dropped(monkeypatch, capsys):
    from lpm_zoo import cli

    eps = [md.EntryPoint("info", "lpm_zoo.commands.info:command", cli.GROUP),
           md.EntryPoint("info", "lpm_zoo.commands.data:command", cli.GROUP)]
    monkeypatch.setattr(core, "entry_points", lambda g: eps if g == cli.GROUP else [])
    fresh = Registry("command", group=cli.GROUP, accepts=cli.Command)
    monkeypatch.setattr(cli, "_COMMANDS", fresh)
    assert list(cli.discover_commands()) == ["info"]
    assert "command 'info' (lpm_zoo.commands.info:command) ignored: the name is taken by " \
           "lpm_zoo.commands.data:command" in capsys.readouterr().err


def test_plugin_predictor_type_round_trips_through_the_zoo_in_a_fresh_process(tmp_path):
    """A type from an installed distribution's entry point: fit and save in one process, load in another."""
    site = tmp_path / "site"
    (site / "lpm_mean_plugin").mkdir(parents=True)
    (site / "lpm_mean_plugin" / "__init__.py").write_text(textwrap.dedent("""
        import numpy as np
        from lpm_zoo.predictors import Predictor

        class MeanPerOp(Predictor):
            '''Mean latency plus a per-operation offset (a plugin type for the test).'''
            def __init__(self, scale: float = 1.0):
                super().__init__()
                self.scale = scale
                self._w = None
            def _fit(self, ops, inputs, y):
                counts = np.stack([(ops == k).sum(1) for k in range(8)], 1).astype(float)
                self._w = np.linalg.lstsq(np.c_[counts, np.ones(len(y))], y, rcond=None)[0]
            def _predict(self, ops, inputs):
                counts = np.stack([(ops == k).sum(1) for k in range(8)], 1).astype(float)
                return self.scale * (np.c_[counts, np.ones(len(ops))] @ self._w)
            def _state(self):
                return {"w": self._w}
            def _load_state(self, state):
                self._w = state["w"]
            @property
            def fitted(self):
                return self._w is not None
    """))
    dist = site / "lpm_mean_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lpm-mean-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lpm_zoo.predictors]\nmean-op = lpm_mean_plugin:MeanPerOp\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "LPM_ZOO_HOME": str(tmp_path / "zoo")}
    fit = textwrap.dedent("""
        import numpy as np
        from lpm_zoo.predictors import create_predictor, list_predictor_types
        from lpm_zoo.sampler import sample_cells
        assert "mean-op" in list_predictor_types()
        cells = sample_cells(200, seed=0)
        y = np.array([5.0 + sum(op == "sep_conv_5x5" for op, _ in c) for c in cells])
        create_predictor("mean-op", scale=1.0).fit(cells, y).save(r"%s")
    """ % (tmp_path / "zoo" / "mine"))
    subprocess.run([sys.executable, "-c", fit], env=env, check=True, timeout=120)
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "predict", "--predictor", "mine", "--genotype",
                        "DARTS_V2", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert abs(row["latency_ms"] - 5.0) < 1e-6  # DARTS_V2's normal cell has no sep_conv_5x5
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "zoo", "list"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert any(line.split()[:2] == ["mine", "mean-op"] for line in r.stdout.splitlines()), r.stdout
