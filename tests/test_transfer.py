"""`lpm transfer`: the leave-one-device-out benchmark on synthetic devices whose relation is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lpm_zoo.adaptation.transfer import Device, devices_in, goal_check, relation, transfer_benchmark
from lpm_zoo.cli import main
from lpm_zoo.synthetic import make_synthetic_store

SEP5_DEARER = np.array([0, 0, 0, 0, 0, 1.5, 0, 0])  # another runtime: sep_conv_5x5 costs more there


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Three devices of the same 300 cells: a base one, the same runtime 1.4x slower, another runtime."""
    d = tmp_path_factory.mktemp("devices")
    paths = {}
    for name, kw in {"base": {}, "slow": {"device": "slow", "scale": 1.4},
                     "other": {"backend": "other", "scale": 0.8, "extra_cost": SEP5_DEARER}}.items():
        paths[name] = str(d / f"{name}.db")
        make_synthetic_store(paths[name], 300, **kw)
    return paths


def test_devices_and_their_relations(stores):
    devs = devices_in(list(stores.values()), min_cells=100)
    assert [d.name for d in devs] == ["synth/cpu/cifar-b1", "synth/slow/cifar-b1", "other/cpu/cifar-b1"]
    assert relation(devs[0], devs[1]) == "same-runtime" and relation(devs[2], devs[1]) == "other-runtime"
    assert relation(Device("x", "synth", "cpu", "cifar-b8"), devs[0]) == "other-profile"
    assert devices_in(list(stores.values()), min_cells=301) == []


def test_a_scaled_device_is_recovered_from_ten_cells(stores):
    devs = devices_in(list(stores.values()), min_cells=100)
    rows = transfer_benchmark(devs, sizes=(5, 10), draws=4, source_type="ridge", scratch_types=("ridge",),
                              targets=["synth/slow/cifar-b1"], progress=False)
    at = {(r["sources"], r["method"], r["n"]): r for r in rows}
    adapted = at[("synth/cpu/cifar-b1", "adapted", 10)]
    scratch = at[("-", "scratch ridge", 10)]
    native = next(r for r in rows if r["relation"] == "native")
    assert adapted["relation"] == "same-runtime" and adapted["draws"] == 4
    assert adapted["mre_pct"] < 3 and adapted["kendall_tau"] > 0.8  # a scale of a good source: near the noise
    assert scratch["mre_pct"] > 2 * adapted["mre_pct"]  # ten cells alone cannot fit 112 weights
    assert native["n"] + native["test_n"] == 300
    goal = goal_check(rows)[0]
    assert goal["same_runtime_source"] == "synth/cpu/cifar-b1 (adapted)" and goal["same_mre_ratio"] < 2
    assert goal["cross_tau"] is None  # no other-runtime row at N=20 in this run


def test_the_lpm_adapt_row_is_the_commands_own_choice_and_the_goal_check_reads_it(stores):
    devs = devices_in([stores["base"], stores["slow"]], min_cells=100)
    rows = transfer_benchmark(devs, sizes=(10,), draws=2, source_type="mlp-plus", scratch_types=(),
                              targets=["synth/slow/cifar-b1"], progress=False)
    own = [r for r in rows if r["method"] == "lpm adapt"]
    assert [(r["sources"], r["n"], r["cells"], r["draws"]) for r in own] == [("synth/cpu/cifar-b1", 10, "random", 2)]
    method = own[0]["chosen"].split(" (")[0]  # a linear map or a fine-tuning recipe, chosen by CV on the cells
    assert method in ("scale", "affine", "stack", "residual", "finetune-head", "finetune-all")
    assert own[0]["mre_pct"] < 5  # a 1.4x slower copy of the source device
    goal = goal_check(rows)[0]
    assert goal["same_runtime_source"] == "synth/cpu/cifar-b1 (lpm adapt)" and goal["same_mre_pct"] == own[0]["mre_pct"]


def test_the_command_writes_resumes_and_plots(stores, tmp_path, capsys):
    out = tmp_path / "tr"
    argv = ["transfer", "--db", stores["base"], "--db", stores["slow"], "--db", stores["other"], "--min-cells", "100",
            "--sizes", "5,10", "--draws", "2", "--source-type", "ridge", "--scratch", "lut", "--out", str(out),
            "--target", "other/cpu/cifar-b1", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| other/cpu/cifar-b1 | adapted from all | random | 10 |" in text
    lines = (out / "rows.jsonl").read_text().splitlines()
    assert {json.loads(x)["target"] for x in lines} == {"other/cpu/cifar-b1"}
    assert (out / "error_vs_n.png").stat().st_size > 1000 and (out / "table.md").is_file()
    assert main(argv) == 0  # a finished target is read back, not recomputed
    assert (out / "rows.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize("extra,msg", [
    (["--sizes", "2,10"], "--sizes"),
    (["--target", "nope/x/y"], "unknown target"),
    (["--draws", "0"], "--draws must be"),
    (["--source-type", "nosuch"], "nosuch"),
    (["--min-cells", "301"], "at least 2 devices"),
])
def test_bad_input_is_one_line_and_exit_2(stores, extra, msg, capsys):
    argv = ["transfer", "--db", stores["base"], "--db", stores["slow"], "--min-cells", "100", "--no-progress"]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_a_missing_store_is_named(tmp_path, capsys):
    assert main(["transfer", "--db", str(tmp_path / "none.db")]) == 2
    assert "no measurement database" in capsys.readouterr().err


def test_devices_of_another_encoding_are_never_mixed(stores, tmp_path, capsys):
    both = str(tmp_path / "both.db")
    make_synthetic_store(both, 300, profile="cifar-b1-both")
    argv = ["transfer", "--db", stores["base"], "--db", stores["slow"], "--db", both, "--min-cells", "100",
            "--sizes", "5", "--draws", "2", "--source-type", "ridge", "--scratch", "", "--no-progress", "--json"]
    assert main(argv) == 0  # the whole-network device has no peer: it is not a target by default, nor a source
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["target"] for r in rows} == {"synth/cpu/cifar-b1", "synth/slow/cifar-b1"}
    assert all(r["sources"] != "synth/cpu/cifar-b1-both" for r in rows)
    assert main([*argv, "--target", "synth/cpu/cifar-b1-both"]) == 2
    assert "no other device with the same encoding" in capsys.readouterr().err


def test_saved_rows_survive_a_torn_line_and_refuse_garbage(stores, tmp_path, capsys):
    out = tmp_path / "tr"
    argv = ["transfer", "--db", stores["base"], "--db", stores["slow"], "--min-cells", "100", "--sizes", "5",
            "--draws", "2", "--source-type", "ridge", "--scratch", "", "--out", str(out), "--no-progress"]
    assert main([*argv, "--target", "synth/cpu/cifar-b1"]) == 0
    good = (out / "rows.jsonl").read_text()
    (out / "rows.jsonl").write_text(good + '{"target": "synth/slow/cif')  # killed while writing the next target
    assert main(argv) == 0  # the torn line is dropped and that target computed again
    targets = [json.loads(x)["target"] for x in (out / "rows.jsonl").read_text().splitlines()]
    assert set(targets) == {"synth/cpu/cifar-b1", "synth/slow/cifar-b1"}
    (out / "rows.jsonl").write_text('{"target": 1}\n' + good)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "line 1 is not a row of lpm transfer" in err and len(err.splitlines()) == 1


def test_the_goal_check_reports_random_and_calibration_cells_apart():
    def row(method, sources, cells, mre, tau=0.9, n=10):
        return {"target": "t/x/cifar-b1", "relation": "native" if method.startswith("native") else "same-runtime",
                "method": method, "sources": sources, "cells": cells, "n": n, "mre_pct": mre, "kendall_tau": tau,
                "within10_pct": 99.0}
    rows = [row("native mlp-plus", "-", "all", 2.0, 0.92, n=800),
            row("lpm adapt", "t/a/cifar-b1", "random", 3.0), row("lpm adapt", "t/b/cifar-b1", "random", 2.6),
            row("lpm adapt", "t/a/cifar-b1", "calibration", 2.2, 0.91),
            row("adapted", "t/b/cifar-b1", "random", 1.0)]  # another method's row is not what lpm adapt picks
    g = goal_check(rows)[0]
    assert g["same_runtime_source"] == "t/b/cifar-b1 (lpm adapt)" and g["same_mre_ratio"] == pytest.approx(1.3)
    assert g["calib_source"] == "t/a/cifar-b1 (lpm adapt)" and g["calib_mre_ratio"] == pytest.approx(1.1)
    assert g["calib_tau_gap"] == pytest.approx(0.01)
    assert goal_check([r for r in rows if r["cells"] != "calibration"])[0]["calib_mre_pct"] is None
