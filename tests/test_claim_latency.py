"""benchmarks/claim_latency.py: a sweep's networks timed again in interleaved groups, each group scaled to the first
group's DARTS_V2, and the claim rows written with those figures. The sweep's steps are tests/sweep_fake_lpm.py; the
measurement is a recording fake (it says which networks each `lpm measure` call got and answers fixed figures), so
the grouping and the scaling are what is tested, not a timing."""

import json
import math
import shlex
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from lpm_zoo.cli import main

claim_latency = load_benchmark("claim_latency")

FAKE = Path(__file__).with_name("sweep_fake_lpm.py")
STEP = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"


def test_groups_share_the_anchor_and_are_scaled_to_the_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    sweep = tmp_path / "sw"
    assert main(["sweep", "--out", str(sweep), "--lambda", "0", "--seeds", "1", "--references", "DARTS_V2",
                 "--random", "3", "--profiles", "cifar-b1-both", "--step-command", STEP]) == 0
    calls = []

    def fake_measure(genotypes, threads, rounds):  # the anchor is 10 ms in the first call, 20 ms in the next ones
        calls.append(list(genotypes))
        anchor = 10.0 if len(calls) == 1 else 20.0
        return [anchor] + [anchor * (1 + 0.1 * k) for k in range(1, len(genotypes) + 1)]

    monkeypatch.setattr(claim_latency, "measure_group", fake_measure)
    monkeypatch.setattr(claim_latency, "GROUP", 3)  # anchor + 2 networks a call
    out = tmp_path / "claim.json"
    assert claim_latency.main([str(sweep), "--out", str(out)]) == 0
    nets = [n for c in calls for n in c]
    assert len(calls) == 3 and [len(c) for c in calls] == [2, 2, 1]  # search (seed 1), reference, 3 random
    assert len(set(nets)) == 5
    rows = json.loads(out.read_text())
    assert len(rows) == 5 and {r["kind"] for r in rows} == {"search", "reference", "random"}
    want = {}  # the second and third call's figures halved: in the first call's terms
    for i, c in enumerate(calls):
        for k, g in enumerate(c, start=1):
            want[g] = (10.0 if i == 0 else 20.0) * (1 + 0.1 * k) * (1.0 if i == 0 else 0.5)
    assert sorted(r["whole_ms"] for r in rows) == sorted(want.values())
    assert "trained on: Fake CPU, 2 cores, avx2 (5)" in capsys.readouterr().out  # the fake training's machine
    timing = json.loads(out.with_suffix(".timing.json").read_text())
    assert [g["scale"] for g in timing["groups"]] == [1.0, 0.5, 0.5] and timing["anchor"] == "DARTS_V2"


def test_evaluation_convergence_pairs_networks_by_genotype_and_seed_and_ranks_them():
    conv = load_benchmark("evaluation_convergence")
    short = {("a", 0): ("A", 80.0), ("b", 0): ("B", 70.0), ("c", 0): ("C", 60.0), ("d", 0): ("D", 50.0),
             ("a", 1): ("A", 10.0)}
    long = {("a", 0): ("A", 85.0), ("b", 0): ("B", 84.0), ("c", 0): ("C", 86.0), ("d", 0): ("D", 40.0),
            ("e", 0): ("E", 90.0)}  # e: not trained short; a's seed 1: not trained long
    both, tau = conv.compare(short, long)
    assert [(t[0], t[1]) for t in both] == [("C", 0), ("A", 0), ("B", 0), ("D", 0)]  # by the long run
    assert tau == pytest.approx(1 / 3)  # 4 of 6 pairs concordant
    assert math.isnan(conv.compare(short, {("a", 0): ("A", 1.0)})[1])  # one network: no ranking to compare


def test_a_folder_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "grid.json").write_text('{"version": 99}')
    assert claim_latency.main([str(tmp_path), "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claim_latency: error:") and "is not a sweep grid" in err and err.count("\n") == 1
    assert not (tmp_path / "c.json").exists()


def test_the_measure_call_is_one_that_lpm_measure_accepts(monkeypatch):
    """The argv the script builds is parsed by `lpm measure`'s own parser (a renamed flag fails here, not after a
    sweep's worth of training); its one JSON line per network, in order, is what the script reads back."""
    from lpm_zoo.cli import build_parser, discover_commands

    seen = {}

    def fake_run(argv, **kw):  # records the call; answers like `lpm measure --json`
        seen["argv"] = argv
        out = "".join(json.dumps({"latency_ms": 5.0 + i}) + "\n" for i in range(argv.count("--genotype")))
        return type("Done", (), {"returncode": 0, "stdout": out, "stderr": ""})()

    monkeypatch.setattr(claim_latency.subprocess, "run", fake_run)
    nets = ['{"normal":[["skip_connect",0]]}', "PC_DARTS_cifar"]
    assert claim_latency.measure_group(nets, 1, 7) == [5.0, 6.0, 7.0]
    argv = seen["argv"]
    assert argv[1:3] == ["-m", "lpm_zoo"]
    args = build_parser(discover_commands()).parse_args(argv[3:])
    assert args.command == "measure" and args.backend == "ort" and args.profile == claim_latency.PROFILE
    assert args.genotype == [claim_latency.ANCHOR, *nets] and args.json and args.rounds == 7 and args.threads == 1


def _sweep(tmp_path, name, *flags):
    out = tmp_path / name
    assert main(["sweep", "--out", str(out), "--lambda", "none", "--references", "DARTS_V2", "--seeds", "0",
                 "--profiles", "cifar-b1-both", "--step-command", STEP, *flags]) == 0
    return out


def test_evaluation_convergence_refuses_runs_that_differ_in_more_than_their_length(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    conv = load_benchmark("evaluation_convergence")
    short = _sweep(tmp_path, "short")
    long = _sweep(tmp_path, "long", "--train-epochs", "30")
    other = _sweep(tmp_path, "other", "--train-epochs", "30", "--train-batch-size", "64")
    same = _sweep(tmp_path, "same", "--train-epochs", "30")
    longer = _sweep(tmp_path, "longer", "--train-epochs", "40")
    capsys.readouterr()
    assert conv.main(["--short", str(short), "--long", str(long)]) == 0
    assert "\n1 networks in both" in capsys.readouterr().out
    assert conv.main(["--short", str(short), "--long", str(long), str(same)]) == 0  # pooled: DARTS_V2 once
    assert "\n1 networks in both" in capsys.readouterr().out
    for bad, why in ((other, "must differ in --train-epochs only"), (same, "both train for 30 epochs")):
        assert conv.main(["--short", str(bad), "--long", str(long)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("evaluation_convergence: error:") and why in err and err.count("\n") == 1
    for argv in (["--short", str(short), "--long", str(long), str(longer)], ["--short", str(short), str(long), "--long",
                                                                              str(longer)]):
        assert conv.main(argv) == 2  # one side's folders train for 30 and 40 epochs, or for 10 and 30
        err = capsys.readouterr().err
        assert err.startswith("evaluation_convergence: error:") and "must train alike" in err and err.count("\n") == 1


def test_several_sweeps_pool_their_trials_once_and_must_train_alike(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    first = _sweep(tmp_path, "first", "--random", "2")
    more = _sweep(tmp_path, "more", "--random", "2", "--lambda", "0", "--seeds", "0", "--reuse", str(first))
    other = _sweep(tmp_path, "other", "--train-epochs", "30")
    calls = []

    def fake_measure(genotypes, threads, rounds):
        calls.append(list(genotypes))
        return [10.0] * (len(genotypes) + 1)

    monkeypatch.setattr(claim_latency, "measure_group", fake_measure)
    out = tmp_path / "claim.json"
    assert claim_latency.main([str(first), str(more), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    # DARTS_V2 and 2 random cells from `first` (taken into `more` by --reuse: counted once), the search from `more`
    assert sorted(r["kind"] for r in rows) == ["random", "random", "reference", "search"]
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) and all(r["whole_ms"] == 10.0 for r in rows)
    capsys.readouterr()
    assert claim_latency.main([str(first), str(other), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claim_latency: error:") and "trained alike" in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()
