"""`lpm backends --check NAME` (the conformance kit without pytest), the kit naming a class by its entry point,
and `lpm backends`' table: a header row and columns as wide as their longest value (issue 35)."""

from __future__ import annotations

from importlib import metadata

import pytest

import lpm_zoo.backends.registry as registry
import lpm_zoo.backends.testing as testing
from lpm_zoo.backends.base import Prepared
from lpm_zoo.backends.registry import GROUP
from lpm_zoo.backends.timing import host_times
from lpm_zoo.backends.torch_backend import TorchBackend
from lpm_zoo.cli import main


class Unnamed(TorchBackend):
    """The built-in eager-torch backend (it passes the kit) with no `name`: its distribution's entry point names it."""

    name = ""


class NoTimes(Unnamed):
    """Broken: run_timed returns one time too few."""

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        return host_times(prepared.run, n, clock)[1:]


@pytest.fixture
def fresh(monkeypatch):
    """A registry of its own, so the backends registered here never leak into other tests."""
    reg = registry._REGISTRY.copy()
    monkeypatch.setattr(registry, "_REGISTRY", reg)
    return reg


def test_the_kit_names_a_class_by_its_installed_entry_point(monkeypatch):
    with pytest.raises(testing.ConformanceError, match="name is empty: no installed entry point in group "
                                                       f"{GROUP} names {Unnamed.__module__}:Unnamed"):
        testing.run_check("interface", Unnamed)
    ep = metadata.EntryPoint(name="mine", value=f"{Unnamed.__module__}:Unnamed", group=GROUP)
    monkeypatch.setattr(testing, "entry_points", lambda group: [ep] if group == GROUP else [])
    testing.run_check("interface", Unnamed)
    assert testing._instance(Unnamed).name == "mine" and not Unnamed.name  # the class itself is left alone


def test_check_prints_one_line_per_check_and_exits_0_when_all_pass(fresh, capsys):
    fresh.register("toy-ok")(type("ToyOk", (Unnamed,), {}))
    assert main(["backends", "--check", "toy-ok"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["pass", c] for c in testing.CHECKS]
    assert lines[-1] == f"toy-ok on cpu: {len(testing.CHECKS)} of {len(testing.CHECKS)} checks passed"


def test_check_exits_1_naming_the_failed_check_and_2_on_bad_input(fresh, capsys):
    fresh.register("toy-short")(NoTimes)
    assert main(["backends", "--check", "toy-short"]) == 1
    out = capsys.readouterr().out.splitlines()
    timing = next(line for line in out if line.split()[1] == "timing")
    assert timing.split()[0] == "fail" and "returned 8 times, not a list of 9" in timing
    assert out[-1] == f"toy-short on cpu: {len(testing.CHECKS) - 1} of {len(testing.CHECKS)} checks passed, 1 fail"
    for argv, message in ((["--check", "nosuch"], "unknown backend 'nosuch'"),
                          (["--check", "toy-short", "--device", "tpu"], "unknown device 'tpu'")):
        assert main(["backends", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def test_the_table_has_a_header_and_columns_as_wide_as_the_longest_name(fresh, capsys):
    fresh.register("a-backend-with-a-long-name")(type("Long", (Unnamed,), {}))
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["BACKEND", "DEVICE", "VERSION", "STATE"]
    column = lines[0].index("DEVICE")
    assert column == len("a-backend-with-a-long-name") + 2
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines[1:])
    assert any(line.startswith("a-backend-with-a-long-name  cpu ") for line in lines)
