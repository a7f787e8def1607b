"""Hostile arguments to the long-running commands (search, train, transfer, adapt): one line, exit 2, nothing written.

Each refusal runs `lpm ...` in a process of its own (tests/lpm_runner.py): exit code 2, exactly one line on stderr starting with
`lpm`, no traceback, nothing on stdout, and nothing created or changed where the command was refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lpm_runner import run_lpm

from lpm_zoo.store import Target

SEARCH = ["search", "--epochs", "1", "--max-steps", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
          "--threads", "1", "--no-progress"]
TRAIN = ["train", "--genotype", "DARTS_V2", "--epochs", "1", "--max-steps", "1", "--no-progress"]


def lpm(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m lpm_zoo ARGS` in `cwd` with a private user zoo (a process of its own, forked with the imports
    done: tests/lpm_runner.py); stdout and stderr as text."""
    return run_lpm(args, env={**os.environ, "LPM_ZOO_HOME": str(cwd / "zoo")}, cwd=cwd, timeout=timeout)


def refused(r: subprocess.CompletedProcess, says: str) -> str:
    """Assert `r` is a one-line refusal (exit 2, one `lpm ...` line on stderr, no traceback) saying `says`."""
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n") and r.stderr.startswith("lpm "), r.stderr[-3000:]
    assert "Traceback" not in r.stderr and len(r.stderr) < 1000, r.stderr[-3000:]
    assert says in r.stderr, r.stderr
    assert r.stdout == ""
    return r.stderr


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for folders): to show a refusal changed nothing."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


# --- 17. --resolution 0 is refused like -16, 7 and 33 ------------------------------------------------------------
@pytest.mark.parametrize("command, dataset, px, says", [
    ("search", "textures", "0", "--resolution 0 is not one of 32, 16, 8"),
    ("search", "textures", "-16", "--resolution -16 is not one of 32, 16, 8"),
    ("train", "textures", "0", "--resolution 0 is not one of 32, 16, 8"),
    ("search", "digits", "0", "multiple of 8 from 8 to 64"),
    ("search", "digits", "80000", "multiple of 8 from 8 to 64"),  # was a 46 TB allocation and a traceback
])
def test_a_resolution_the_dataset_cannot_have_is_refused_before_any_work(tmp_path, command, dataset, px, says):
    args = [*(SEARCH if command == "search" else TRAIN), "--dataset", dataset, "--resolution", px]
    r = lpm(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, says)
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


# --- 9. --lambda and the other numbers of a search are bounded before any work; sampling never sees NaN -----------
@pytest.mark.parametrize("extra, says", [
    (["--lambda", "1e308"], "--lambda must be at most 1e+06 s⁻¹ without --relative"),  # was a multinomial traceback
    (["--lambda", "1001", "--relative"], "--lambda must be at most 1000 with --relative"),
    (["--lambda", "inf"], "--lambda must be a finite number"),
    (["--lambda", "0.5", "--relative", "--noise", "1e308", "--estimator", "score"], "--noise must be at most"),
    (["--lr-min", "1e38"], "must not exceed --lr"),
    (["--seed", "-1"], "--seed must be in [0, 2^32)"),
    (["--seed", "99999999999999999999"], "--seed must be in [0, 2^32)"),  # was an overflow traceback
])
def test_search_numbers_out_of_range_are_refused_before_any_work(tmp_path, extra, says):
    r = lpm(*SEARCH, "--predictor", "ort-cpu", *extra, "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, says)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [["--lambda", "1000", "--relative"],
                                   ["--lambda", "1e6", "--estimator", "score", "--noise", "1e7"]])
def test_the_largest_lambda_allowed_keeps_the_search_finite(tmp_path, extra):
    import json

    args = [*SEARCH, "--epochs", "2", "--max-steps", "3", "--arch-lr", "0.1", "--predictor", "ort-cpu", *extra]
    r = lpm(*args, "--json", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(history) == 2 and all(row["arch_updates"] for row in history)
    weights = [w for row in history for cell in ("alpha_normal", "alpha_reduce") for edge in row[cell] for w in edge]
    assert all(0 <= w <= 1 for w in weights)  # softmax weights of finite α: never NaN
    assert json.loads(r.stdout)["lat_alpha_ms"] > 0


def test_a_diverging_search_stops_in_one_line(tmp_path):
    """A huge --arch-lr makes α infinite: the search stops in one line instead of multinomial's traceback."""
    r = lpm(*SEARCH, "--max-steps", "4", "--predictor", "ort-cpu", "--lambda", "0.5", "--relative", "--arch-lr", "1e38",
            "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("lpm search: error: the architecture weights are no "
                                                              "longer finite"), r.stderr[-3000:]


def test_sampling_refuses_nan_weights_in_one_line():
    import torch

    from lpm_zoo.errors import LpmError
    from lpm_zoo.search.latency import DIVERGED, sample_subnetworks

    alpha = torch.zeros(14, 8)
    edges, ops = sample_subnetworks(alpha, torch.zeros(14), 5)
    assert edges.shape == (5, 4, 2) and ops.shape == (5, 14)
    for bad_alpha, bad_beta in ((alpha.clone().fill_(float("nan")), None), (alpha, torch.full((14,), float("inf")))):
        with pytest.raises(LpmError) as e:
            sample_subnetworks(bad_alpha, bad_beta, 5)
        assert str(e.value) == DIVERGED


# --- 10. a search checkpoint that is not this run's: one line that says how to start afresh ------------------------
@pytest.fixture(scope="module")
def finished_search(tmp_path_factory) -> Path:
    """A finished one-epoch search folder (its checkpoint.pt is what a resume reads)."""
    folder = tmp_path_factory.mktemp("search")
    r = lpm(*SEARCH, "--out", str(folder / "out"), cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    return folder / "out"


def _tampered(ck: dict, how: str) -> dict:
    import torch

    if how == "shapes":  # every tensor of the network one element long: load_state_dict printed 1,285 lines
        ck["model"] = {k: torch.zeros(1) for k in ck["model"]}
    elif how == "nan-alpha":
        ck["model"]["alphas_normal"] = torch.full_like(ck["model"]["alphas_normal"], float("nan"))
        ck["epoch"] = 0
    elif how == "no-optimizer":
        del ck["a_opt"]
    elif how == "epoch":
        ck["epoch"] = -7
    elif how == "tensor-setting":
        ck["config"]["seed"] = torch.zeros(3)
    return ck


PICKLE_GADGET = b"cos\nsystem\n(S'touch PWNED'\ntR."  # a pickle that would run a shell command


@pytest.mark.parametrize("how, says", [
    ("shapes", "does not fit this run (its tensors have other shapes"),
    ("nan-alpha", "no longer finite"),
    ("no-optimizer", "does not fit this run (an entry is missing"),
    ("epoch", "does not fit this run"),
    ("tensor-setting", "made with other settings (seed)"),
    ("random-bytes", "cannot read the checkpoint"),
    ("pickle", "objects other than tensors and plain data"),
    ("list", "is not a checkpoint of this command"),
])
def test_a_checkpoint_that_is_not_this_runs_is_one_line_and_left_alone(finished_search, tmp_path, how, says):
    import shutil

    import torch

    out = tmp_path / "out"
    shutil.copytree(finished_search, out)
    path = out / "checkpoint.pt"
    if how == "random-bytes":
        path.write_bytes(os.urandom(20_000))
    elif how == "pickle":
        path.write_bytes(PICKLE_GADGET)
    elif how == "list":
        torch.save([1, 2, 3], path)
    else:
        torch.save(_tampered(torch.load(path, weights_only=True), how), path)
    before = tree(out)
    err = refused(lpm(*SEARCH, "--out", str(out), cwd=tmp_path), says)
    assert "--restart" in err and "another --out" in err  # how to start afresh
    assert tree(out) == before  # the checkpoint is kept as it was, nothing else written
    assert not (tmp_path / "PWNED").exists()


# --- 6, 7, 8. lpm transfer: --test-size bounded, --out that cannot be written, resumed with other --sizes -----------
@pytest.fixture(scope="module")
def two_devices(tmp_path_factory) -> list[str]:
    """Two synthetic devices of 300 cells (the same runtime, one 1.4x slower): transfer's arguments for them."""
    from lpm_zoo.synthetic import make_synthetic_store

    d = tmp_path_factory.mktemp("devices")
    make_synthetic_store(str(d / "base.db"), 300)
    make_synthetic_store(str(d / "slow.db"), 300, device="slow", scale=1.4)
    return ["transfer", "--db", str(d / "base.db"), "--db", str(d / "slow.db"), "--min-cells", "100", "--draws", "2",
            "--source-type", "ridge", "--scratch", "lut", "--no-progress"]


@pytest.mark.parametrize("extra, says", [
    (["--test-size", "0"], "--test-size must be at least 10"),  # was ValueError: zero-size array
    (["--test-size", "1"], "--test-size must be at least 10"),  # was 8 numpy warnings and tau nan
    (["--test-size", "9"], "--test-size must be at least 10"),
    (["--test-size", "296"], "has 300 architectures outside the calibration set and N up to 5 are drawn from the "
                             "rest, so at most 295"),  # was silently cut to 295
    (["--seed", "-1"], "--seed must be in [0, 2^32)"),  # was ValueError: expected non-negative integer
    (["--out", "/proc/lpm-x"], "cannot create the --out folder '/proc/lpm-x' (No such file or directory)"),
    (["--out", "{afile}/sub"], "(Not a directory); choose another --out"),
    (["--out", "{rowsdir}"], "rows.jsonl' is not a regular file"),
])
def test_transfer_arguments_it_cannot_use_are_one_line_before_any_work(two_devices, tmp_path, extra, says):
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "rowsdir" / "rows.jsonl").mkdir(parents=True)
    extra = [a.replace("{afile}", str(tmp_path / "afile")).replace("{rowsdir}", str(tmp_path / "rowsdir"))
             for a in extra]
    has_out = "--out" in extra
    before = tree(tmp_path)
    r = lpm(*two_devices, "--sizes", "5", *extra, *([] if has_out else ["--out", str(tmp_path / "new")]),
            cwd=tmp_path)
    refused(r, says)
    assert tree(tmp_path) == before  # no --out folder made, nothing written


def test_transfer_resumed_with_other_sizes_computes_only_the_new_rows(two_devices, tmp_path):
    import json

    def run(out: str, sizes: str) -> list[dict]:
        r = lpm(*two_devices, "--sizes", sizes, "--out", str(tmp_path / out), "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        return [json.loads(x) for x in r.stdout.splitlines()]

    def key(r: dict) -> tuple:
        return r["target"], r["sources"], r["method"], r["n"], r["cells"]

    assert {r["n"] for r in run("a", "5,10") if r["relation"] != "native"} == {5, 10}
    saved = (tmp_path / "a" / "rows.jsonl").read_text()
    resumed = run("a", "5,20,10")
    fresh = run("b", "5,10,20")
    assert {r["n"] for r in resumed if r["relation"] != "native"} == {5, 10, 20}  # the old run printed 5 and 10 only
    assert (tmp_path / "a" / "rows.jsonl").read_text().startswith(saved)  # the saved rows are kept as they were
    rows = [json.loads(x) for x in (tmp_path / "a" / "rows.jsonl").read_text().splitlines()]
    assert sorted(map(key, rows)) == sorted(map(key, resumed)) and len(rows) == len(fresh)  # nothing made twice
    made_now = rows[len(saved.splitlines()):]
    assert made_now and {r["n"] for r in made_now} == {20}  # only the new N was computed, no second native row
    by_key = {key(r): r for r in fresh}  # the same held-out set and draws as a run of all three N
    assert all(r["mre_pct"] == by_key[key(r)]["mre_pct"] for r in resumed)
    assert {r["n"] for r in run("a", "10") if r["relation"] != "native"} == {10}  # prints the N asked for
    assert len((tmp_path / "a" / "rows.jsonl").read_text().splitlines()) == len(rows)


@pytest.fixture(scope="module")
def transfer_out(two_devices, tmp_path_factory) -> Path:
    """An --out of lpm transfer holding one target's rows at N = 5."""
    folder = tmp_path_factory.mktemp("transfer")
    r = lpm(*two_devices, "--sizes", "5", "--out", str(folder / "a"), "--target", "synth/cpu/cifar-b1", cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    return folder / "a"


@pytest.mark.parametrize("extra, says", [(["--draws", "3"], "other --draws"), (["--seed", "4"], "other --seed"),
                                         (["--scratch", ""], "other --scratch"),
                                         (["--test-size", "50"], "other --test-size")])
def test_transfer_resumed_with_other_settings_is_refused(two_devices, transfer_out, tmp_path, extra, says):
    before = tree(transfer_out)
    refused(lpm(*two_devices, "--sizes", "5,10", "--out", str(transfer_out), *extra, cwd=tmp_path), says)
    assert tree(transfer_out) == before


# --- 15. an interrupted pilot keeps the groups it timed -----------------------------------------------------------
ADAPT = ["adapt", "--from", "ort-xeon-small", "--backend", "ort", "--device", "cpu", "--profile", "small-b1",
         "--name", "here", "--no-progress"]  # a bundled source of the small search-size network: quick to time


def _rows(db: Path) -> list[tuple]:
    """(id, cell key, timestamp) of every row, read without taking a lock ([] before the store exists)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT id, cell_key, timestamp FROM measurements ORDER BY id").fetchall()
    except sqlite3.Error:
        return []


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_pilot_keeps_the_groups_it_timed_and_the_next_run_uses_them(tmp_path, sig):
    import signal
    import time

    from lpm_zoo.store import MeasurementStore, statistic_key

    db = tmp_path / "here.db"
    env = {**os.environ, "LPM_ZOO_HOME": str(tmp_path / "zoo")}
    # a suite started in the background (`make test &`, a CI runner) has SIGINT ignored, and the child inherits
    # that unless it is reset, as a terminal's Ctrl-C would find it
    p = subprocess.Popen([sys.executable, "-m", "lpm_zoo", *ADAPT, "--samples", "40", "--db", str(db)], env=env,
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while p.poll() is None and time.monotonic() < deadline and not _rows(db):
            time.sleep(0.2)
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert _rows(db), "the pilot stored nothing within 240 s"
        p.send_signal(getattr(signal, sig))  # in the pilot: 40 cells need 16 pilot cells twice, then 24 more
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    kept = _rows(db)
    assert "Traceback" not in err
    if sig == "SIGINT":
        assert p.returncode == 130 and f"interrupted during the pilot: {len(kept)} architectures" in err, err
    else:
        assert p.returncode == -signal.SIGTERM
    assert len(kept) in (8, 16) and len({k for _, k, _ in kept}) == len(kept)  # whole groups of 8, each cell once
    with MeasurementStore(db, readonly=True) as store:
        dev = store.summary()[0]["device"]
        assert store.meta(statistic_key(Target("ort", dev, "small-b1"))) is None  # its statistic is not chosen yet
    # the next run reuses them: the first 10 calibration cells need 2 (or 0) more, too few for a pilot
    r = lpm(*ADAPT, "--samples", "10", "--db", str(db), "--json", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    now = _rows(db)
    assert now[:len(kept)] == kept and len(now) == max(10, len(kept))  # kept as they were, nothing measured twice
    with MeasurementStore(db, readonly=True) as store:
        statistics = {m["protocol"]["statistic"] for m in store.measurements()}
        recorded = store.meta(statistic_key(Target("ort", dev, "small-b1")))
    assert len(statistics) == 1 and recorded in (None, *statistics)  # one statistic for every row


@pytest.mark.parametrize("extra, says", [
    (["--seed", "-1", "--cells", "random"], "--seed must be in [0, 2^32)"),  # was a numpy traceback
    (["--seed", "99999999999999999999"], "--seed must be in [0, 2^32)"),  # was an overflow traceback
    (["--zoo-dir", "{afile}/sub"], "cannot create the zoo folder"),  # was a traceback after the measuring
    (["--zoo-dir", "/proc/lpm-zoo"], "cannot create the zoo folder"),
])
def test_adapt_arguments_it_cannot_use_are_one_line_before_any_measuring(tmp_path, extra, says):
    (tmp_path / "afile").write_text("a file, not a folder\n")
    extra = [a.replace("{afile}", str(tmp_path / "afile")) for a in extra]
    before = tree(tmp_path)
    refused(lpm(*ADAPT, "--samples", "5", "--db", str(tmp_path / "here.db"), *extra, cwd=tmp_path), says)
    assert tree(tmp_path) == before  # no store made, nothing measured


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_network_too_large_for_memory_is_one_line(tmp_path, command):
    """--channels 100000 asks for a 120 GB weight tensor: one line, where it was the allocator's traceback."""
    import resource

    def cap_memory() -> None:  # the same answer on any machine: at most 8 GB of address space
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    args = [*(SEARCH if command == "search" else TRAIN), "--channels", "100000", "--out", str(tmp_path / "out")]
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120, preexec_fn=cap_memory, env={**os.environ, "LPM_ZOO_HOME": str(tmp_path / "zoo")})
    refused(r, "not enough memory for a")
    assert "lower --channels or --layers" in r.stderr
