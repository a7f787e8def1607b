"""benchmarks/sweep_archive.py: a sweep's results packed without checkpoints or logs, deterministic, and unpacked a
sweep folder that `lpm sweep --reuse` takes every packed trial from (no step runs again). The steps are
tests/sweep_fake_lpm.py."""

import csv
import json
import os
import shlex
import sys
import tarfile
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from lpm_zoo.cli import main

sweep_archive = load_benchmark("sweep_archive")

FAKE = Path(__file__).with_name("sweep_fake_lpm.py")
STEP = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"


def _sweep(out: Path, *extra: str) -> list[str]:
    return ["sweep", "--out", str(out), "--lambda", "0", "--seeds", "0", "--references", "DARTS_V2", "--random", "2",
            "--profiles", "cifar-b1-both", "--step-command", STEP, *extra]


def _rows(folder: Path) -> dict[str, dict]:
    with open(folder / "results.csv") as f:
        return {r["trial"]: r for r in csv.DictReader(f)}


def test_packed_results_unpack_to_a_folder_that_reuse_takes_whole(tmp_path, monkeypatch, capsys):
    log = tmp_path / "steps.log"
    monkeypatch.setenv("FAKE_LPM_LOG", str(log))
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    run = tmp_path / "study"
    assert main(_sweep(run)) == 0
    trials = sorted(p.name for p in (run / "trials").iterdir())
    assert len(trials) == 4  # the search, DARTS_V2, 2 random cells
    (run / "trials" / trials[-1] / "state.json").unlink()  # one trial not finished: left out of the archive
    (run / "trials" / trials[0] / "stray.log").write_text("a log")
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert sweep_archive.main([str(run), "--out", str(a)]) == 0
    assert "3 finished trials" in capsys.readouterr().out
    for f in run.rglob("*.json"):  # touched: the archive holds no modification time of its own
        os.utime(f, (1e9, 1e9))
    assert sweep_archive.main([str(run), "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()  # deterministic: the same results, the same bytes
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # the gzip header's time
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert all(n.startswith("study/") and n.endswith(".json") for n in names), names  # no checkpoint, no log
        assert not any(trials[-1] in n for n in names)
        assert any(n.endswith("/search/genotype.json") for n in names)  # the found cell, for --reuse-searches
        assert all(m.mtime == 0 and m.uname == "" for m in tar.getmembers())
        unpacked = tmp_path / "unpacked"
        tar.extractall(unpacked, filter="data")

    again = tmp_path / "again"
    n = len(log.read_text().splitlines())
    assert main(_sweep(again, "--reuse", str(unpacked / "study"))) == 0
    assert "reused 3 finished trials" in capsys.readouterr().err
    ran = {line.split()[1] for line in log.read_text().splitlines()[n:] if line.startswith("start")}
    assert ran == {trials[-1]}  # only the trial the archive did not hold ran again
    assert {k: v for k, v in _rows(again).items() if k != trials[-1]} == {
        k: v for k, v in _rows(run).items() if k != trials[-1]}
    grid = json.loads((unpacked / "study" / "grid.json").read_text())
    assert grid == json.loads((run / "grid.json").read_text())


def test_a_folder_without_a_sweep_or_a_finished_trial_is_one_line_and_exit_2(tmp_path, capsys):
    assert sweep_archive.main([str(tmp_path), "--out", str(tmp_path / "x.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep_archive: error:") and err.count("\n") == 1
    assert not (tmp_path / "x.tar.gz").exists()


@pytest.mark.parametrize("spoil", ["trials-link", "search-link", "file-link", "hard-link", "no-finished", "bad-out"])
def test_links_hard_links_nothing_finished_and_a_bad_out_are_one_line_and_write_nothing(tmp_path, monkeypatch,
                                                                                        capsys, spoil):
    monkeypatch.setenv("FAKE_LPM_LOG", str(tmp_path / "steps.log"))
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    run = tmp_path / "study"
    assert main(_sweep(run)) == 0
    capsys.readouterr()
    search = next((run / "trials").glob("darts-*"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "genotype.json").write_text("{}")
    out = tmp_path / "a.tar.gz"
    if spoil == "trials-link":
        (run / "trials").rename(tmp_path / "elsewhere")
        (run / "trials").symlink_to(tmp_path / "elsewhere")
    elif spoil == "search-link":
        (search / "search").rename(tmp_path / "moved")
        (search / "search").symlink_to(outside)
    elif spoil == "file-link":
        (search / "extra.json").symlink_to(outside / "genotype.json")
    elif spoil == "hard-link":
        os.link(search / "info.json", outside / "info-copy.json")
    elif spoil == "no-finished":
        for state in (run / "trials").glob("*/state.json"):
            state.unlink()
    else:
        out = tmp_path / "no-such-folder" / "a.tar.gz"
    assert sweep_archive.main([str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep_archive: error:") and err.count("\n") == 1, err
    want = {"trials-link": "is a link", "search-link": "is a link", "file-link": "is a link",
            "hard-link": "hard-linked", "no-finished": "no finished trial", "bad-out": "name a file"}[spoil]
    assert want in err and not out.exists()
