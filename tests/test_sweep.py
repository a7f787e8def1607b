"""`lpm sweep`: the grid and its refusal, each trial once (two sweeps on one folder, a sweep killed with SIGKILL and
rerun, Ctrl-C and rerun), measurements one at a time, the results table and the report's claims.

The steps are `tests/sweep_fake_lpm.py` (`--step-command`), which writes what `lpm search/measure/train` write in
a fraction of a second and logs each start and end; one slow test runs the real commands end to end.
"""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.search.sweep.grid import Grid, lambda_spec, read_grid
from lpm_zoo.search.sweep.report import write_report
from lpm_zoo.search.sweep.trial import LOCK, acquire, release, trial_steps

FAKE = Path(__file__).with_name("sweep_fake_lpm.py")
STEP = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"
STEPS = ("search", "info", "measure-cifar-b1", "measure-cifar-b1-both", "train")


def _args(out, *extra, lambdas="0,rel0.5", seeds="0,1", refs="none"):
    return ["sweep", "--out", str(out), "--lambda", lambdas, "--seeds", seeds, "--references", refs,
            "--step-command", STEP, *extra]


def _events(log: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


def _ends(log: Path) -> Counter:
    return Counter((e[1], e[2]) for e in _events(log) if e[0] == "end")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake steps' log, for this process and its subprocesses; steps sleep 0.2 s by default."""
    log = tmp_path / "steps.log"
    monkeypatch.setenv("FAKE_LPM_LOG", str(log))
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0.2")
    return log


def _popen(args, **env):
    return subprocess.Popen([sys.executable, "-m", "lpm_zoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _done(out: Path) -> list[str]:
    return sorted(d.name for d in (out / "trials").glob("*") if (d / "state.json").is_file()
                  and json.loads((d / "state.json").read_text()).get("status") == "done")


# --- the grid -----------------------------------------------------------------------------------------------
def test_lambda_values_and_the_trials_of_a_grid():
    assert [lambda_spec(v) for v in ("0", "0.20", "rel0.5", "rel0", "1e-1")] == ["0", "0.2", "rel0.5", "0", "0.1"]
    assert lambda_spec("0.5", relative=True) == "rel0.5"
    for bad in ("-1", "nan", "inf", "rel2000", "abc", "2e6", ""):
        with pytest.raises(LpmError, match="--lambda"):
            lambda_spec(bad)
    axes = {"method": ["darts"], "dataset": ["digits"], "predictor": ["a", "flops-b"], "lambda": ["rel0.5", "0"],
            "noise": [0.0, 1.0], "seed": [0, 1]}
    trials = Grid(axes, [["DARTS_V2", "DARTS_V2"]], {}).trials()
    ids = [t.id for t in trials]
    assert len(ids) == len(set(ids)) == 2 * (1 + 2 * 2 + 1)  # per seed: one λ = 0, 2 predictors x 2 noises, 1 ref
    assert ids[0] == "darts-digits-a-0-n0-s0" and ids[5] == "ref-DARTS_V2-digits-s0"  # λ = 0 first, refs last
    zero = [t for t in trials if t.lam == "0"]
    assert {(t.predictor, t.noise) for t in zero} == {("a", 0.0)}  # λ = 0 does not depend on predictor or noise


@pytest.mark.parametrize("extra, message", [
    (["--lambda", "x"], "--lambda 'x': expected a number"),
    (["--methods", "nope"], "--methods: unknown 'nope'"),
    (["--datasets", "imagenet"], "--datasets: unknown 'imagenet'"),
    (["--predictors", "no-such-predictor"], "no fitted predictor named 'no-such-predictor'"),
    (["--seeds", "-1"], "--seeds: -1 is out of range"),
    (["--noise", "nan"], "--noise: 'nan' is not a number"),
    (["--references", "NOPE"], "--references: unknown 'NOPE'"),
    (["--references", "/no/such.json"], "--references '/no/such.json'"),
    (["--profiles", "no-profile"], "--profiles"),
    (["--db", "cifar-b1=/no/such.db"], "no measurement store at"),
    (["--db", "other=x.db"], "expected PROFILE=STORE"),
    (["--jobs", "0"], "--jobs must be between 1 and 256"),
    (["--select", "best"], "the search step would fail: \"lpm search: error: argument --select: invalid choice"),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "sw"
    assert main([*_args(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lpm sweep: error:") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_search_selection_and_the_fused_forward_reach_every_search_step(tmp_path, fake):
    out = tmp_path / "sw"
    assert main(_args(out, "--fused", "--select", "perturbation", "--select-images", "64", "--random", "1")) == 0
    grid = read_grid(out)
    searches = [s.argv for t in grid.trials() for s in trial_steps(t, grid.settings) if s.kind == "search"]
    assert len(searches) == 4  # two λ x two seeds; the random trials search nothing
    for argv in searches:
        assert "--fused" in argv and argv[argv.index("--select") + 1] == "perturbation"
        assert argv[argv.index("--select-images") + 1] == "64"
    trains = [s.argv for t in grid.trials() for s in trial_steps(t, grid.settings) if s.kind == "train"]
    assert trains and not any({"--fused", "--select"} & set(a) for a in trains)  # search flags only
    plain = tmp_path / "plain"
    assert main(_args(plain, lambdas="0", seeds="0")) == 0
    assert not {"--fused", "--select"} & set(read_grid(plain).settings["search"])  # unset: lpm search's defaults


def test_a_sweep_its_tables_report_rerun_and_another_grid_refused_or_extended(tmp_path, capsys, fake):
    out = tmp_path / "sw"
    assert main(_args(out, "--jobs", "2")) == 0
    trials = ["darts-textures-ort-cpu-0-n0-s0", "darts-textures-ort-cpu-0-n0-s1", "darts-textures-ort-cpu-rel0.5-n0-s0",
              "darts-textures-ort-cpu-rel0.5-n0-s1"]
    assert _done(out) == trials
    assert _ends(fake) == Counter({(t, s): 1 for t in trials for s in STEPS})  # each step of each trial, once
    assert json.loads((out / "grid.json").read_text())["axes"]["lambda"] == ["0", "rel0.5"]
    with open(out / "results.csv") as f:
        rows = {r["trial"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == trials
    assert {r["trial"] for r in pq.read_table(out / "results.parquet").to_pylist()} == set(trials)
    r = rows["darts-textures-ort-cpu-rel0.5-n0-s0"]  # the fake's genotype: 5 skips replaced + DARTS_V2's 2 = 7
    assert (r["lambda"], r["relative"], r["skip_normal"], float(r["latency_ms_cifar-b1"]),
            float(r["latency_ms_cifar-b1-both"]), float(r["test_acc"])) == ("rel0.5", "True", "7", 6.5, 16.5, 0.73)
    assert r["trained_on"] == "Fake CPU, 2 cores, avx2"  # the training step's machine, kept in the row
    assert r["measured_on_cifar-b1"] == os.uname().nodename and (r["madds_M"], r["cifar_params_M"]) == ("430.0", "3.0")
    meas = json.loads((out / "trials" / trials[0] / "measure-cifar-b1.json").read_text())
    assert meas["latency_ms"] == 9.0 and meas["ran_on"]["host"] == os.uname().nodename
    report = (out / "report.md").read_text()
    assert "at relative λ 0.5 the found networks are 12.0% faster than λ = 0 (whole network, measured) at -4.50 " \
           "points of accuracy" in report
    assert (out / "pareto-0.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()

    n_events = len(_events(fake))
    assert main(_args(out)) == 0  # the same command again: nothing runs
    assert len(_events(fake)) == n_events and "4 of 4 trials done (0 now)" in capsys.readouterr().out

    assert main(_args(out, lambdas="0,rel0.2")) == 2  # another grid: refused in one line
    err = capsys.readouterr().err
    assert "holds another grid (it differs in lambda); add --extend to add the 2 new trials" in err
    assert err.count("\n") == 1
    assert main(_args(out, "--epochs", "3")) == 2
    assert "holds a sweep with other settings (search)" in capsys.readouterr().err
    assert main(_args(out, "--extend", lambdas="0,rel0.2")) == 0  # extended: only the new trials run
    new = Counter((e[1], e[2]) for e in _events(fake)[n_events:] if e[0] == "end")
    assert new == Counter({(f"darts-textures-ort-cpu-rel0.2-n0-s{s}", step): 1 for s in (0, 1) for step in STEPS})
    assert json.loads((out / "grid.json").read_text())["axes"]["lambda"] == ["0", "rel0.5", "rel0.2"]
    assert len(_done(out)) == 6


def test_a_failing_step_fails_its_trial_only_and_a_rerun_retries_it(tmp_path, capsys, fake, monkeypatch):
    out = tmp_path / "sw"
    assert main(_args(out, "--methods", "darts,pc-darts", seeds="0", lambdas="rel0.5")) == 0
    (out / "trials" / "pc-darts-textures-ort-cpu-rel0.5-n0-s0" / "train.json").unlink()
    (out / "trials" / "pc-darts-textures-ort-cpu-rel0.5-n0-s0" / "state.json").unlink()
    monkeypatch.setenv("FAKE_LPM_SLEEP", "x")  # the fake's train now fails
    assert main(_args(out, "--methods", "darts,pc-darts", seeds="0", lambdas="rel0.5")) == 1
    err = capsys.readouterr().err
    assert "failed: pc-darts-textures-ort-cpu-rel0.5-n0-s0: train: ValueError" in err and "Traceback" not in err
    assert _done(out) == ["darts-textures-ort-cpu-rel0.5-n0-s0"]  # the finished one is kept
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    assert main(_args(out, "--methods", "darts,pc-darts", seeds="0", lambdas="rel0.5")) == 0
    assert len(_done(out)) == 2


def test_references_only_one_of_them_a_genotype_file(tmp_path, fake):
    skip8 = tmp_path / "skip8.json"
    skip8.write_text(json.dumps({"normal": [["skip_connect", k % 2] for k in range(8)]}))  # DARTS_V2's reduce
    out = tmp_path / "sw"
    assert main(_args(out, "--profiles", "cifar-b1", lambdas="none", seeds="0", refs=f"DARTS_V2,{skip8}")) == 0
    assert _done(out) == ["ref-DARTS_V2-textures-s0", "ref-skip8-textures-s0"]
    with open(out / "results.csv") as f:
        rows = {r["trial"]: r for r in csv.DictReader(f)}
    assert (rows["ref-skip8-textures-s0"]["skip_normal"], rows["ref-skip8-textures-s0"]["latency_ms_cifar-b1"],
            rows["ref-DARTS_V2-textures-s0"]["latency_ms_cifar-b1"]) == ("8", "6.0", "9.0")
    assert "| ref:skip8 | 1 | 8.0 |" in (out / "report.md").read_text()


# --- each trial once ------------------------------------------------------------------------------------------
def test_the_lock(tmp_path):
    mutex, folder = tmp_path / "m", tmp_path / "t"
    held = acquire(folder, mutex)
    assert held["mine"] and held["pid"] == os.getpid()
    assert not acquire(folder, mutex)["mine"]  # held by a live owner (this process): not taken twice
    release(folder)
    assert not (folder / LOCK).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "start": 1}))
    assert acquire(folder, mutex)["mine"]  # a dead sweep's lock is taken over
    release(folder)
    (folder / LOCK).write_text(json.dumps({"pid": 1, "host": "another-host"}))
    assert acquire(folder, mutex) == {"pid": 1, "host": "another-host", "mine": False}  # another host's: left alone
    (folder / LOCK).write_text("torn{")
    assert acquire(folder, mutex)["mine"]


def _measures_never_overlap(log: Path) -> None:
    running = 0
    for e in _events(log):
        if e[2].startswith("measure"):
            if e[0] == "start":
                running += 1
                assert running == 1, "two measurements at once"
            else:
                running -= 1


@pytest.mark.slow
def test_two_sweeps_on_one_folder_run_each_trial_once(tmp_path, fake):
    out = tmp_path / "sw"
    args = _args(out, "--jobs", "2", refs="DARTS_V2")
    a, b = _popen(args, FAKE_LPM_SLEEP="0.3"), _popen(args, FAKE_LPM_SLEEP="0.3")
    (_, err_a), (_, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, err_a + err_b
    assert "Traceback" not in err_a + err_b
    trials = _done(out)
    assert len(trials) == 6
    n_steps = {t: 4 if t.startswith("ref-") else 5 for t in trials}
    starts = Counter((e[1], e[2]) for e in _events(fake) if e[0] == "start")
    assert starts == _ends(fake) and sum(starts.values()) == sum(n_steps.values())  # every step once, not twice
    assert max(starts.values()) == 1
    _measures_never_overlap(fake)  # the two sweeps' measurements too: one at a time on this device


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_and_rerun_runs_each_trial_once(tmp_path, fake):
    out = tmp_path / "sw"
    args = _args(out, "--jobs", "2", refs="DARTS_V2")
    proc = _popen(args, FAKE_LPM_SLEEP="1")
    deadline = time.time() + 120
    while not _done(out):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = set(_done(out))
    steps_done = {(d.name, f.stem) for d in (out / "trials").glob("*") for f in d.glob("*.json") if f.stem != "state"}
    assert len(done_before) < 6
    ev = _events(fake)
    ended = {(e[1], e[2], e[3]) for e in ev if e[0] != "start"}
    orphans = [int(e[3]) for e in ev if e[0] == "start" and (e[1], e[2], e[3]) not in ended]
    deadline = time.time() + 10
    while any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
              for p in orphans):  # the killed sweep's steps die with it (PR_SET_PDEATHSIG)
        assert time.time() < deadline, "a step outlived its sweep"
        time.sleep(0.1)
    n = len(ev)
    rerun = _popen(args, FAKE_LPM_SLEEP="0.1")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert len(_done(out)) == 6
    restarted = {(e[1], e[2]) for e in _events(fake)[n:] if e[0] == "start"}
    assert not restarted & steps_done  # a finished step never runs again
    assert not {t for t, _ in restarted} & done_before  # nor a step of a finished trial
    ends_before = Counter((e[1], e[2]) for e in ev if e[0] == "end")
    ends_after = Counter((e[1], e[2]) for e in _events(fake)[n:] if e[0] == "end")
    assert max(ends_before.values()) == 1 and max(ends_after.values()) == 1  # a step ends once per sweep at most
    # A step ends in both sweeps only when the kill fell between its exit and the sweep writing its output
    # (then its result was lost with the sweep and it has to run again): never a step whose output was kept,
    # and at most one per job slot (--jobs 2).
    again = {s for s in ends_before if ends_after[s]}
    assert not again & steps_done and len(again) <= 2
    every_step = {(t, s) for t in _done(out) for s in (STEPS[1:] if t.startswith("ref-") else STEPS)}
    assert set(ends_before) | set(ends_after) == every_step  # and every step of every trial ended
    with open(out / "results.csv") as f:
        rows = [r["trial"] for r in csv.DictReader(f)]
    assert sorted(rows) == sorted(set(rows)) and len(rows) == 6


@pytest.mark.slow
def test_ctrl_c_stops_every_step_which_saves_and_a_rerun_resumes_from_the_checkpoint(tmp_path, fake):
    out = tmp_path / "sw"
    args = _args(out, seeds="0", lambdas="rel0.5")
    proc = _popen(args, FAKE_LPM_SLEEP="4")
    ck = out / "trials" / "darts-textures-ort-cpu-rel0.5-n0-s0" / "search" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ck.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: every step saved; run the same command to resume" in err and "Traceback" not in err
    assert ("interrupted", "darts-textures-ort-cpu-rel0.5-n0-s0", "search") in {e[:3] for e in _events(fake)}
    state = json.loads((ck.parents[1] / "state.json").read_text())
    assert state["status"] == "interrupted"
    n = len(_events(fake))
    rerun = _popen(args, FAKE_LPM_SLEEP="0.1")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    first = _events(fake)[n]
    assert first[:3] == ("start", "darts-textures-ort-cpu-rel0.5-n0-s0", "search") and first[-1] == "resumed"
    assert _done(out) == ["darts-textures-ort-cpu-rel0.5-n0-s0"]


# --- the report ---------------------------------------------------------------------------------------------
def _row(lam, seed, acc, normal, whole, predictor="ort-cpu", noise=0.0, madds=500.0, kind="search", ref=None):
    return {"trial": f"{predictor}-{lam}-{noise}-{seed}", "kind": kind, "method": "darts" if kind == "search" else None,
            "dataset": "textures", "predictor": predictor if kind == "search" else None, "lambda": lam, "noise": noise,
            "seed": seed, "reference": ref, "test_acc": acc / 100, "latency_ms_cifar-b1": normal,
            "latency_ms_cifar-b1-both": whole, "predicted_ms": None, "skip_normal": 2, "madds_M": madds}


def test_the_reports_claims_on_synthetic_trials(tmp_path):
    rows = []
    for seed in (0, 1):
        rows += [_row("0", seed, 80 + seed, 10, 20, madds=600),
                 _row("rel0.2", seed, 80.1 + seed, 8, 16 - seed, madds=500),  # 20% / 22.5% faster, +0.1 points
                 _row("rel0.2", seed, 79.6 + seed, 8.4, 16.4 - seed, noise=1.0, madds=505),
                 _row("rel0.2", seed, 80.0 + seed, 9, 19 - seed, predictor="flops-ort", madds=520),
                 _row("rel0.5", seed, 79.0 + seed, 9, 18 - seed, predictor="flops-ort", madds=490),
                 _row(None, seed, 85, 9, 21, kind="reference", ref="DARTS_V2")]
    settings = {"search": ["--epochs", "1"], "train": [], "measure": {"backend": "ort", "device": "cpu", "flags": [],
                                                                       "profiles": ["cifar-b1", "cifar-b1-both"]}}
    text = write_report(tmp_path, rows, settings, "lpm sweep --out x").read_text()
    assert "## darts on textures, predictor ort-cpu" in text and "## darts on textures, predictor flops-ort" in text
    assert "| ref:DARTS_V2 | 2 |" in text and "| rel0.2 | 2 | 2.0 | — | 8.00 (-20.0%) | 15.50 (-22.5%) | 80.60% " \
                                            "(80.10–81.10) |" in text
    assert ("at relative λ 0.2 the found networks are 22.5% faster than λ = 0 (whole network, measured) at +0.10 "
            "points of accuracy; seeds: 2 against 2, latency 15.00–16.00 ms against 20.00–20.00 ms, accuracy "
            "80.10–81.10% against 80.00–81.00%") in text
    assert "- rel0.2: whole network 22.5% faster, accuracy +0.10 points: does not meet the claim" in text
    # Table 4: ort-cpu at 500 M multiply-adds matched with flops-ort at 490 M (rel0.5), not 520 M (rel0.2)
    assert ("- ort-cpu at relative λ 0.2 (500 M multiply-adds) against flops-ort at relative λ 0.5 (490 M, +2.0%): "
            "11.4% faster measured, accuracy +1.10 points (seeds 2 and 2)") in text
    # Table 3: the noisy predictor's shift against the same point without noise
    assert ("- ort-cpu at relative λ 0.2 with noise σ = 1 ms: latency +2.6% and accuracy -0.50 points against σ = 0 "
            "(latency 15.40–16.40 ms against 15.00–16.00 ms over the seeds)") in text
    assert len(list(tmp_path.glob("pareto-*.png"))) == 3


@pytest.mark.parametrize("warmup", ["1" + "0" * 399, "2"])
def test_the_budget_curve_per_dataset_with_any_warmup_value_grid_json_holds(tmp_path, warmup):
    rows = [{**_row("0", seed, 80 + seed, 10, 20), "dataset": dataset, "test_acc_e2": (70 + seed) / 100}
            for seed in (0, 1, 2) for dataset in ("textures", "digits")]
    rows[0]["test_acc_e2"] = None  # textures seed 0: its anytime cell not trained yet, so it counts nowhere
    settings = {"search": ["--epochs", "4", "--warmup-epochs", warmup], "train": [], "anytime": [2],
                "measure": {"backend": "ort", "device": "cpu", "flags": [], "profiles": ["cifar-b1"]}}
    text = write_report(tmp_path, rows, settings).read_text()
    assert "On textures:\n\n- darts, λ = 0, test accuracy of the cell held after each search epoch: epoch 2: " \
           "71.50% ± 0.71 (2 seeds), epoch 4: 81.50% ± 0.71 (2 seeds)" in text
    assert "epoch 2: 71.00% ± 1.00 (3 seeds), epoch 4: 81.00% ± 1.00 (3 seeds)" in text  # digits: all 3
    assert sorted(p.name for p in tmp_path.glob("budget-*.png")) == ["budget-digits.png", "budget-textures.png"]


def test_report_only_and_a_folder_without_a_sweep(tmp_path, capsys, fake):
    assert main(["sweep", "--out", str(tmp_path), "--report"]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    out = tmp_path / "sw"
    assert main(_args(out, seeds="0", lambdas="0")) == 0
    (out / "report.md").unlink()
    assert main(["sweep", "--out", str(out), "--report"]) == 0 and (out / "report.md").is_file()


# --- the real commands ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_trial_end_to_end(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", "--out", str(out), "--lambda", "rel0.5", "--seeds", "0", "--references", "none",
            "--datasets", "digits", "--epochs", "1", "--max-steps", "2", "--channels", "4", "--layers", "3",
            "--batch-size", "16", "--train-epochs", "1", "--train-max-steps", "2", "--train-channels", "4",
            "--train-layers", "3", "--train-lr", "0.05", "--profiles", "cifar-b1", "--warmup", "1", "--rounds", "2",
            "--reps", "2"]
    assert main(args) == 0, capsys.readouterr().err
    (row,) = pq.read_table(out / "results.parquet").to_pylist()
    folder = out / "trials" / row["trial"]
    assert row["genotype"] == json.dumps(json.loads((folder / "search" / "genotype.json").read_text()),
                                         separators=(",", ":"))
    assert row["latency_ms_cifar-b1"] > 0 and 0 <= row["test_acc"] <= 1 and row["predicted_ms"] > 0
    assert (folder / "search" / "checkpoint.pt").is_file() and (folder / "train.log").is_file()
    assert json.loads((folder / "train" / "train_result.json").read_text())["config"]["lr"] == 0.05  # passed through


def test_reuse_takes_another_sweeps_finished_trials_of_the_same_settings_only(tmp_path, capsys, fake):
    tab4, tab3 = tmp_path / "tab4", tmp_path / "tab3"
    assert main(_args(tab4, "--predictors", "ort-cpu,ort-cpu-lpm", lambdas="rel0.5", seeds="0")) == 0
    n = len(_events(fake))
    capsys.readouterr()
    assert main(_args(tab3, "--noise", "0,0.3", "--reuse", str(tab4), lambdas="rel0.5", seeds="0")) == 0
    assert "reused 1 finished trials" in capsys.readouterr().err
    ran = {e[1] for e in _events(fake)[n:] if e[0] == "start"}
    assert ran == {"darts-textures-ort-cpu-rel0.5-n0.3-s0"}  # the noise-free trial was not run again
    assert _done(tab3) == ["darts-textures-ort-cpu-rel0.5-n0-s0", "darts-textures-ort-cpu-rel0.5-n0.3-s0"]
    with open(tab3 / "results.csv") as f:
        rows = {r["trial"]: r for r in csv.DictReader(f)}
    with open(tab4 / "results.csv") as f:
        assert rows["darts-textures-ort-cpu-rel0.5-n0-s0"] == {**next(
            r for r in csv.DictReader(f) if r["trial"] == "darts-textures-ort-cpu-rel0.5-n0-s0")}
    assert not list((tab3 / "trials").glob(".reuse-*"))  # no half-copied folder left
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the trial's")
    src = tab4 / "trials" / "darts-textures-ort-cpu-rel0.5-n0-s0"
    (src / "linked-dir").symlink_to(outside)
    (src / "linked-file.txt").symlink_to(outside / "secret.txt")
    again = tmp_path / "again"
    assert main(_args(again, "--reuse", str(tab4), lambdas="rel0.5", seeds="0")) == 0
    copied = {p.relative_to(again / "trials") for p in (again / "trials").rglob("*")}
    assert not any("linked" in str(p) for p in copied)  # links neither copied nor followed
    assert Path("darts-textures-ort-cpu-rel0.5-n0-s0/state.json") in copied
    capsys.readouterr()
    other = tmp_path / "other"
    assert main(_args(other, "--train-epochs", "3", "--reuse", str(tab4), lambdas="rel0.5", seeds="0")) == 2
    err = capsys.readouterr().err
    assert "trained or measured with other settings" in err and err.count("\n") == 1 and not other.exists()
    assert main(_args(other, "--reuse", str(tmp_path / "nowhere"), lambdas="rel0.5", seeds="0")) == 2
    assert "not a sweep folder" in capsys.readouterr().err and not other.exists()
    started = tmp_path / "started"  # the trial begun here, unfinished: never overwritten, and the log says why
    t = "darts-textures-ort-cpu-rel0.5-n0-s0"
    assert main(_args(started, lambdas="rel0.5", seeds="0")) == 0
    (started / "trials" / t / "state.json").write_text(json.dumps({"status": "failed"}))
    (started / "trials" / t / "train.json").unlink()  # its training to run again
    n = len(_events(fake))
    capsys.readouterr()
    assert main(_args(started, "--reuse", str(tab4), lambdas="rel0.5", seeds="0")) == 0
    err = capsys.readouterr().err
    assert f"not reused: {t} is done in" in err and "but started here" in err and "reused 0 finished trials" in err
    assert (t, "train") in {(e[1], e[2]) for e in _events(fake)[n:] if e[0] == "start"}  # run here, not copied


def test_anytime_trains_each_lambda_0_cell_after_each_epoch_and_the_report_draws_the_budget_curve(tmp_path, capsys,
                                                                                                  fake, monkeypatch):
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")  # nothing here is about timing
    out = tmp_path / "sw"
    assert main(_args(out, "--epochs", "4", "--anytime", "3,1", "--random", "3", "--baseline-seeds", "0")) == 0
    anytime = ("genotype-e1", "measure-cifar-b1-e1", "measure-cifar-b1-both-e1", "train-e1",
               "genotype-e3", "measure-cifar-b1-e3", "measure-cifar-b1-both-e3", "train-e3")
    ends = _ends(fake)
    for seed in (0, 1):
        assert all(ends[(f"darts-textures-ort-cpu-0-n0-s{seed}", s)] == 1 for s in (*STEPS, *anytime))
        assert not any(ends[(f"darts-textures-ort-cpu-rel0.5-n0-s{seed}", s)] for s in anytime)  # λ = 0 only
    assert json.loads((out / "grid.json").read_text())["settings"]["anytime"] == [1, 3]
    with open(out / "results.csv") as f:
        rows = {r["trial"]: r for r in csv.DictReader(f)}
    r = rows["darts-textures-ort-cpu-0-n0-s1"]  # the fake: seed 1 ends with 1 skip more; 4 − e more before
    assert (r["skip_normal"], r["skip_normal_e3"], r["skip_normal_e1"]) == ("3", "4", "6")
    assert (float(r["test_acc"]), float(r["test_acc_e3"]), float(r["test_acc_e1"])) == (0.77, 0.76, 0.74)
    assert float(r["latency_ms_cifar-b1-both_e1"]) == 17.0
    assert r["genotype_e1"].count("skip_connect") == 6 + 3  # and the reduction cell's 3
    assert rows["darts-textures-ort-cpu-rel0.5-n0-s0"]["test_acc_e1"] == ""
    report = (out / "report.md").read_text()
    assert "darts, λ = 0, test accuracy of the cell held after each search epoch: epoch 1: 74.50% ± 0.71 (2 seeds), " \
           "epoch 3: 76.50% ± 0.71 (2 seeds), epoch 4: 77.50% ± 0.71 (2 seeds)" in report
    # the 3 random cells: 79, 79, 78% (DARTS_V2-like fakes), so the median is 79% and epoch 4's 77.5% is under it
    assert "; never reaches the random median (79.00%)" in report
    assert "; first reaches" not in report and "![the budget curve on textures](budget-textures.png)" in report
    assert (out / "budget-textures.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()

    plain = tmp_path / "plain"  # a sweep without --anytime, taken whole: only the anytime steps run
    assert main(_args(plain, "--epochs", "4", lambdas="0", seeds="0")) == 0
    n = len(_events(fake))
    late = tmp_path / "late"
    monkeypatch.setenv("FAKE_LPM_SLEEP", "x")  # every fake step now fails: the anytime cell's first one
    assert main(_args(late, "--epochs", "4", "--anytime", "2", "--reuse", str(plain), lambdas="0", seeds="0")) == 1
    assert "reused 1 finished trials" in capsys.readouterr().err
    assert _done(late) == ["darts-textures-ort-cpu-0-n0-s0"]  # its own row stays in the results
    with open(late / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert (row["test_acc"], row["test_acc_e2"]) == ("0.78", "")
    state = json.loads((late / "trials" / "darts-textures-ort-cpu-0-n0-s0" / "state.json").read_text())
    assert "ValueError" in state["anytime_error"] and state["status"] == "done"
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    assert main(_args(late, "--epochs", "4", "--anytime", "2", lambdas="0", seeds="0")) == 0
    ran = sorted(e[2] for e in _events(fake)[n:] if e[0] == "end")
    assert ran == ["genotype-e2", "measure-cifar-b1-both-e2", "measure-cifar-b1-e2", "train-e2"]
    with open(late / "results.csv") as f:
        assert float(next(csv.DictReader(f))["test_acc_e2"]) == 0.76  # 2 + 2 more skip_connect than at the end
    state = json.loads((late / "trials" / "darts-textures-ort-cpu-0-n0-s0" / "state.json").read_text())
    assert "anytime_error" not in state and state["row"]["test_acc_e2"] == 0.76


@pytest.mark.parametrize(("extra", "says"), [
    (("--epochs", "4", "--anytime", "4"), "--anytime: 4 is out of range; each value must be in [1, 3]"),
    (("--epochs", "1", "--anytime", "1"), "--anytime needs a search of at least 2 epochs"),
    (("--epochs", "4", "--anytime", "x"), "expected 1 to 100 comma-separated integers"),
    (("--epochs", "4", "--anytime", "2", "--select", "perturbation"), "with --select perturbation the last point"),
])
def test_anytime_epochs_outside_the_search_are_refused_before_anything(tmp_path, capsys, extra, says):
    out = tmp_path / "sw"
    assert main(_args(out, *extra)) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and not out.exists()
    assert main(_args(out, "--epochs", "4", "--anytime", "2", lambdas="rel0.5")) == 2
    assert "--anytime trains the cells of λ = 0 searches; this grid has none" in capsys.readouterr().err


def test_reuse_searches_takes_the_search_step_and_trains_and_measures_with_this_sweeps_settings(tmp_path, capsys,
                                                                                                 fake):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(a, lambdas="0,rel0.5", seeds="0", refs="DARTS_V2")) == 0
    n = len(_events(fake))
    capsys.readouterr()
    assert main(_args(b, "--train-epochs", "30", "--reuse-searches", str(a), lambdas="rel0.5", seeds="0,1",
                      refs="DARTS_V2")) == 0
    assert "reused the searches of 1 trials" in capsys.readouterr().err
    started = [(e[1], e[2]) for e in _events(fake)[n:] if e[0] == "start"]
    t = "darts-textures-ort-cpu-rel0.5-n0-s0"
    assert (t, "search") not in started and {(t, "info"), (t, "train")} <= set(started)  # only the search was taken
    assert ("darts-textures-ort-cpu-rel0.5-n0-s1", "search") in started  # not in the source: searched here
    assert ("ref-DARTS_V2-textures-s0", "train") in started  # a reference has no search to take
    rows = {r["trial"]: r for r in pq.read_table(b / "results.parquet").to_pylist()}
    old = {r["trial"]: r for r in pq.read_table(a / "results.parquet").to_pylist()}
    assert rows[t]["genotype"] == old[t]["genotype"] and rows[t]["search_s"] == old[t]["search_s"]
    assert read_grid(b).settings["train"][:2] == ["--epochs", "30"]  # what its train step ran with (trial_steps)
    capsys.readouterr()
    c = tmp_path / "c"
    assert main(_args(c, "--epochs", "3", "--reuse-searches", str(a), lambdas="rel0.5", seeds="0")) == 2
    err = capsys.readouterr().err
    assert "searched with other settings" in err and err.count("\n") == 1 and not c.exists()
    geno = a / "trials" / t / "search" / "genotype.json"  # what the training would read, not what the row says
    kept = geno.read_text()
    other = json.loads(kept)
    other["normal"][0] = ["sep_conv_5x5" if other["normal"][0][0] != "sep_conv_5x5" else "max_pool_3x3", 0]
    geno.write_text(json.dumps(other))
    assert main(_args(c, "--reuse-searches", str(a), lambdas="rel0.5", seeds="0")) == 2
    err = capsys.readouterr().err
    assert "is not the genotype its search.json records" in err and err.count("\n") == 1 and not c.exists()
    geno.write_text(kept)
    state = a / "trials" / t / "state.json"  # a source trial whose state names another trial
    st = json.loads(state.read_text())
    st["trial"]["seed"] = 7
    state.write_text(json.dumps(st))
    assert main(_args(c, "--reuse-searches", str(a), lambdas="rel0.5", seeds="0")) == 2
    err = capsys.readouterr().err
    assert "names another trial than its folder" in err and err.count("\n") == 1 and not c.exists()


def test_reuse_with_other_search_settings_takes_the_references_only(tmp_path, capsys, fake):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(a, lambdas="rel0.5", seeds="0", refs="DARTS_V2")) == 0
    n = len(_events(fake))
    assert main(_args(b, "--epochs", "3", "--reuse", str(a), lambdas="rel0.5", seeds="0", refs="DARTS_V2")) == 0
    assert "reused 1 finished trials" in capsys.readouterr().err
    ran = {e[1] for e in _events(fake)[n:] if e[0] == "start"}
    assert ran == {"darts-textures-ort-cpu-rel0.5-n0-s0"}  # searched again (other search settings); the reference not
    assert _done(b) == ["darts-textures-ort-cpu-rel0.5-n0-s0", "ref-DARTS_V2-textures-s0"]
