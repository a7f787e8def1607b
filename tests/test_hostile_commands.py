"""Hostile arguments to the long-running commands (search, train, transfer, adapt): one line, exit 2, nothing written.

Each refusal runs `python -m lpm_zoo ...` in a subprocess: exit code 2, exactly one line on stderr starting with
`lpm`, no traceback, nothing on stdout, and nothing created or changed where the command was refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SEARCH = ["search", "--epochs", "1", "--max-steps", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
          "--threads", "1", "--no-progress"]
TRAIN = ["train", "--genotype", "DARTS_V2", "--epochs", "1", "--max-steps", "1", "--no-progress"]


def lpm(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m lpm_zoo ARGS` in `cwd` with a private user zoo; stdout and stderr as text."""
    env = {**os.environ, "LPM_ZOO_HOME": str(cwd / "zoo")}
    return subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


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


@pytest.mark.parametrize("extra", [["--lambda", "1000", "--relative"], ["--lambda", "1e6"],
                                   ["--lambda", "1000", "--relative", "--estimator", "score", "--noise", "1e7"]])
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
    from search.latency import DIVERGED, sample_subnetworks

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

