"""A sweep folder is untrusted input (issue 31): links planted in it, a crafted grid.json, state.json or step
output, a hostile `--reuse` source, bad settings and a planted lock, each as a user with a crafted folder would try
it. Every one ends in one line on stderr and exit code 2 with nothing created or written elsewhere, or is taken
safely. The steps are `tests/sweep_fake_lpm.py`, as in tests/test_sweep.py; the settings are checked by the real
`lpm search/train/measure` checks.
"""

import json
import os
import re
import socket
from pathlib import Path

import pytest
from test_sweep import _args, _done, _events, fake  # noqa: F401 - `fake` is a fixture used here

from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.search.sweep import preflight, reuse
from lpm_zoo.search.sweep.report import write_report
from lpm_zoo.search.sweep.trial import STATE, Step, acquire, execute, flocked, release

T = "darts-textures-ort-cpu-rel0.5-n0-s0"
ONE = {"lambdas": "rel0.5", "seeds": "0"}


def _one_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lpm sweep: error:") and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (links as such) with a file's bytes: what a refused command must leave alone."""
    out = {}
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        for n in dirs + names:
            p = Path(dirpath) / n
            out[str(p)] = p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) \
                if p.is_symlink() else None
    return out


@pytest.fixture
def swept(tmp_path, fake):  # noqa: F811
    """A finished one-trial sweep in tmp/sw and a file outside it."""
    out = tmp_path / "sw"
    assert main(_args(out, **ONE)) == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's own file\n")
    return out, outside


def _unfinish(out: Path) -> Path:
    """Make the trial unfinished as the red team did: state failed, its step files removed."""
    folder = out / "trials" / T
    (folder / STATE).write_text(json.dumps({"status": "failed"}))
    for f in folder.glob("*.json"):
        if f.name != STATE:
            f.unlink()
    return folder


# --- H1: nothing written through a link --------------------------------------------------------------------------
@pytest.mark.parametrize("where", [f"trials/{T}/.search.json.tmp", f"trials/{T}/search.log", ".trials.mutex",
                                   "trials", f"trials/{T}"])
def test_a_link_in_a_sweep_folder_is_refused_never_followed(swept, capsys, where):
    out, outside = swept
    _unfinish(out)
    if where in ("trials", f"trials/{T}"):  # a folder of its own elsewhere: every trial would be written there
        elsewhere = outside.parent / "elsewhere"
        os.rename(out / where, elsewhere)
        (out / where).symlink_to(elsewhere, target_is_directory=True)
        target = elsewhere
    elif where == ".trials.mutex":  # dangling: an empty file would be created where it points
        (out / where).unlink(missing_ok=True)
        target = outside.parent / "created-through-the-link"
        (out / where).symlink_to(target)
    else:
        (out / where).unlink(missing_ok=True)
        (out / where).symlink_to(outside)
        target = outside
    before = _tree(outside.parent)
    capsys.readouterr()
    assert main(_args(out, **ONE)) == 2
    _one_line(capsys, "is a link", where.split("/")[-1])
    assert _tree(outside.parent) == before  # the outside file, the link and the sweep as they were
    assert target.exists() == (where != ".trials.mutex")


def test_a_file_renamed_away_while_the_folder_is_checked_is_no_link(swept, monkeypatch):
    """Two sweeps on one folder: the other one renames its temporary file between this one's listing and its check
    of that name (CI saw it as a FileNotFoundError traceback). A name gone since the listing is passed over."""
    out, _ = swept
    walk = os.walk

    def walk_with_a_vanished_file(top, **kw):
        for root, dirs, names in walk(top, **kw):
            yield root, dirs, names + [".state.json.4242.1.tmp"]  # listed, renamed away before its lstat

    monkeypatch.setattr(preflight.os, "walk", walk_with_a_vanished_file)
    assert main(_args(out, **ONE)) == 0


def test_every_writer_refuses_a_link_planted_after_the_checks(tmp_path):
    from lpm_zoo.files import new_temp, open_own, own_dir, read_own_json, write_atomic

    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    folder = own_dir(tmp_path, "trial")
    for name in (".search.json.tmp", "search.log", "lock-mutex"):
        (folder / name).symlink_to(outside)
    step = Step("t", "search", "search", ["search"], "search.json")
    with pytest.raises(LpmError, match="is a link"):  # the step's stdout and its log (execute opens both)
        execute(step, folder, ["true"], {})
    (folder / ".search.json.tmp").unlink()
    with pytest.raises(LpmError, match="search.log' is a link"):
        execute(step, folder, ["true"], {})
    with pytest.raises(LpmError, match="is a link"), flocked(folder / "lock-mutex"):
        pass
    with pytest.raises(LpmError, match="is a link"):
        open_own(folder / "search.log", "append")
    with pytest.raises(LpmError, match="is a link"):
        new_temp(folder / "search.log")
    (folder / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(LpmError, match="sub' is a link"):
        own_dir(folder, "sub", "x")
    with pytest.raises(LpmError, match="is a link"):
        write_atomic(folder / "search.log", b"{}")
    with pytest.raises(LpmError, match="is a link"):
        read_own_json(folder / "search.log")
    assert outside.read_text() == "mine" and not (tmp_path / "x").exists()


def test_a_search_checkpoint_is_never_written_through_a_link(tmp_path):
    from lpm_zoo.search.checkpoint import check_checkpoint_path, save_checkpoint

    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    ck = tmp_path / "out" / "checkpoint.pt"
    ck.parent.mkdir()
    (ck.parent / "checkpoint.pt.tmp").symlink_to(outside)
    with pytest.raises(LpmError, match="is a link"):
        check_checkpoint_path(ck)
    with pytest.raises(LpmError, match="is a link"):
        save_checkpoint(ck, {"epoch": 1})
    assert outside.read_text() == "mine" and (ck.parent / "checkpoint.pt.tmp").is_symlink()


# --- H2, M4, L5: what is read back is checked as the command line checks it ----------------------------------------
def _grid(out: Path) -> dict:
    return json.loads((out / "grid.json").read_text())


@pytest.mark.parametrize("edit, words", [
    (lambda g: g["axes"]["method"].append("../../x/ESCAPED"), "--methods: unknown"),  # sw/trials/../../x: tmp/x
    (lambda g: g["references"].append(["x", "/some/outside/file"]), "neither a published name"),
    (lambda g: g["references"].extend([["DARTS_V2", "DARTS_V2"]] * 2), "two references"),
    (lambda g: g["axes"]["seed"].append(10**100), "is not an integer in [0, 4294967295]"),
    (lambda g: g["axes"]["seed"].append("abc"), "axes.seed"),
    (lambda g: g["axes"]["noise"].append("x"), "--noise"),
    (lambda g: g["axes"]["noise"].append(1e9), "--noise"),
    (lambda g: g["axes"]["predictor"].append(["list"]), "axes.predictor"),
    (lambda g: g["axes"]["predictor"].append("/tmp/some/predictor"), "not a zoo name"),
    (lambda g: g["axes"]["lambda"].append("rel0.50"), "axes.lambda"),
    (lambda g: g["settings"]["measure"].update(profiles=["nope"]), "unknown profile"),
    (lambda g: g.update(settings={**g["settings"], "measure": "x"}), "settings.measure"),
    (lambda g: g["settings"].update(anytime="3"), "settings.anytime is not a list"),
    (lambda g: g["settings"].update(anytime=[2, 1]), "not sorted and distinct"),
    (lambda g: g["settings"].update(anytime=[0]), "settings.anytime's epoch 0 is not an integer"),
    (lambda g: g["settings"].update(other=1), "settings hold other keys"),
])
def test_a_crafted_grid_json_is_one_line_and_nothing_is_created_or_run(swept, capsys, edit, words):
    out, outside = swept
    g = _grid(out)
    edit(g)
    (out / "grid.json").write_text(json.dumps(g))
    before, ran = _tree(outside.parent), len(_events(outside.parent / "steps.log"))
    capsys.readouterr()
    for extra in (["--extend"], []):
        assert main(_args(out, *extra, **ONE)) == 2
        _one_line(capsys, "grid.json", words)
    if words != "not a zoo name":  # in a report a predictor is a label, never loaded
        assert main(["sweep", "--out", str(out), "--report"]) == 2
        _one_line(capsys, "grid.json", words)
    assert _tree(outside.parent) == before and len(_events(outside.parent / "steps.log")) == ran
    assert not (outside.parent / "x").exists()


def test_a_huge_json_file_is_refused_by_its_size_before_it_is_read(swept, capsys):
    out, _ = swept
    with open(out / "grid.json", "r+b") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of NULs
    assert main(_args(out, **ONE)) == 2
    _one_line(capsys, "grid.json' holds 67108864 bytes")
    from lpm_zoo.files import read_own_json

    state = out / "trials" / T / STATE
    os.truncate(state, 64 << 20)
    with pytest.raises(LpmError, match="holds 67108864 bytes"):
        read_own_json(state)


@pytest.mark.parametrize("file, content, words", [
    (STATE, {"status": "failed", "steps": []}, "steps is not a JSON object"),
    (STATE, {"status": "failed", "attempts": "x"}, "attempts 'x' is not an integer"),
    (STATE, {"status": "done", "steps": {"train": {"rc": "x"}}}, "steps.train.rc"),
    (STATE, ["not", "an", "object"], "is not a JSON object"),
])
def test_a_crafted_state_json_is_one_line(swept, capsys, file, content, words):
    out, _ = swept
    (out / "trials" / T / file).write_text(json.dumps(content))
    capsys.readouterr()
    assert main(_args(out, **ONE)) == 2
    _one_line(capsys, file, words)


@pytest.mark.parametrize("file, key, value, words", [
    ("measure-cifar-b1.json", "ran_on", "str", "ran_on is not a JSON object"),
    ("measure-cifar-b1.json", "latency_ms", 0, "latency_ms 0 is not a finite number > 0"),
    ("measure-cifar-b1.json", "profile", "cifar-b8", "profile 'cifar-b8' is not this trial's"),
    ("train.json", "test_acc", "abc", "test_acc 'abc'"),
    ("train.json", "dataset", "digits", "dataset 'digits' is not this trial's"),
    ("search.json", "seed", 7, "seed 7 is not this trial's"),
    ("search.json", "lambda", 0.9, "lambda 0.9 is not this trial's"),
    ("search.json", "genotype_json", {"normal": "LIE"}, "genotype_json"),
])
def test_a_crafted_step_output_is_one_line_for_the_sweep_and_the_report(swept, capsys, file, key, value, words):
    out, _ = swept
    path = out / "trials" / T / file
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    report = (out / "report.md").read_bytes()
    capsys.readouterr()
    assert main(_args(out, **ONE)) == 2
    _one_line(capsys, file, words)
    assert main(["sweep", "--out", str(out), "--report"]) == 2
    _one_line(capsys, file, words)
    assert (out / "report.md").read_bytes() == report


def test_the_report_is_recomputed_from_step_outputs_not_from_results_or_state(swept, capsys):
    out, _ = swept
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"lambda": ["garbage"], "test_acc": ["abc"]}), out / "results.parquet")  # no `kind`
    state = json.loads((out / "trials" / T / STATE).read_text())
    state["row"].update(test_acc=0.99, seed=7)
    (out / "trials" / T / STATE).write_text(json.dumps(state))
    assert main(["sweep", "--out", str(out), "--report"]) == 0, capsys.readouterr().err
    text = (out / "report.md").read_text()
    assert "| rel0.5 | 1 | 7.0 |" in text and "73.00%" in text and "99.00" not in text


def test_a_latency_of_zero_in_rows_handed_to_the_report_is_no_division_by_zero(tmp_path):
    row = {"kind": "search", "method": "darts", "dataset": "textures", "predictor": "p", "noise": 0.0, "seed": 0,
           "test_acc": 0.8, "latency_ms_cifar-b1": 0.0, "skip_normal": 2, "madds_M": 0.0}
    rows = [{**row, "lambda": "0"}, {**row, "lambda": "rel0.5", "predictor": "flops-p"},
            {**row, "lambda": "rel0.5"}, {**row, "lambda": "rel0.5", "noise": 1.0}]
    settings = {"search": [], "train": [], "measure": {"backend": "ort", "device": "cpu", "flags": [],
                                                       "profiles": ["cifar-b1"]}}
    assert "Sweep report" in write_report(tmp_path, rows, settings).read_text()


# --- L1, L2, L3: every setting checked before anything is created --------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--statistic", "foo"], "statistic"),
    (["--rounds", "0"], "rounds"),
    (["--train-epochs", "-5"], "--epochs must be >= 1"),
    (["--train-drop-path", "nan"], "--drop-path"),
    (["--train-lr", "0"], "--lr"),
    (["--measure-device", "cuda:99"], "lpm measure"),
    (["--device", "bogus"], "--device 'bogus' is not a device"),
    (["--db", "cifar-b1=bundled:nope"], "nope"),
    (["--batch-size", "1"], "--batch-size must be at least 2"),
    (["--ray", ""], "--ray ''"),
    (["--ray", "no address"], "--ray 'no address'"),
    (["--ray", "host:99999"], "--ray 'host:99999'"),
    (["--ray", "local", "--device-resource", "a b"], "--device-resource 'a b'"),
])
@pytest.mark.usefixtures("fake")
def test_a_bad_setting_is_refused_before_the_folder_is_made_and_a_corrected_rerun_works(tmp_path, capsys, extra,
                                                                                         words):
    out = tmp_path / "sw"
    try:
        code = main(_args(out, *extra, **ONE))
    except SystemExit as e:  # a value the parser refuses (--ray): argparse's exit, 2, with the same one line
        code = e.code
    assert code == 2
    _one_line(capsys, words)
    assert not out.exists() and not _events(tmp_path / "steps.log")
    assert main(_args(out, **ONE)) == 0 and _done(out) == [T]


# --- L6: a lock whose owner cannot be verified ---------------------------------------------------------------------
def test_a_planted_lock_naming_a_live_pid_without_a_start_time_is_stale(tmp_path, swept, capsys):
    folder = tmp_path / "t"
    folder.mkdir()
    planted = {"pid": 1, "host": socket.gethostname()}  # pid 1 is alive; no start time: not a sweep's lock
    (folder / "lock").write_text(json.dumps(planted))
    held = acquire(folder, tmp_path / "m")
    assert held["mine"] and held["pid"] == os.getpid()
    release(folder)
    (folder / "lock").write_text(json.dumps({**planted, "pid": "1"}))
    assert acquire(folder, tmp_path / "m")["mine"]
    release(folder)
    out, _ = swept
    _unfinish(out)
    (out / "trials" / T / "lock").write_text(json.dumps(planted))
    capsys.readouterr()
    assert main(_args(out, **ONE)) == 0 and _done(out) == [T]


# --- M2, M3, L4: a --reuse source -----------------------------------------------------------------------------------
def test_reuse_never_follows_a_linked_trial_folder_or_trials(tmp_path, swept, capsys):
    src, _ = swept
    real = tmp_path / "real-trial"
    os.rename(src / "trials" / T, real)
    (src / "trials" / T).symlink_to(real, target_is_directory=True)
    dest = tmp_path / "dest"
    capsys.readouterr()
    assert main(_args(dest, "--reuse", str(src), **ONE)) == 0
    assert "not reused:" in capsys.readouterr().err and not (dest / "trials" / T / "lock").exists()
    assert not (dest / "trials" / T).is_symlink()
    os.rename(src / "trials", tmp_path / "real-trials")
    (src / "trials").symlink_to(tmp_path / "real-trials", target_is_directory=True)
    again = tmp_path / "again"
    assert main(_args(again, "--reuse", str(src), **ONE)) == 2
    _one_line(capsys, "trials/ is a link")
    assert not again.exists()


def test_reuse_recomputes_the_row_and_refuses_a_trial_whose_outputs_are_not_its_own(tmp_path, swept, capsys):
    src, _ = swept
    state = json.loads((src / "trials" / T / STATE).read_text())
    state["row"].update({"lambda": "rel0.9", "seed": 7, "genotype": "LIE"})
    (src / "trials" / T / STATE).write_text(json.dumps(state))
    dest = tmp_path / "dest"
    assert main(_args(dest, "--reuse", str(src), **ONE)) == 0
    csv_text = (dest / "results.csv").read_text()
    assert "rel0.9" not in csv_text and "LIE" not in csv_text and "rel0.5" in csv_text
    search = src / "trials" / T / "search.json"
    search.write_text(json.dumps({**json.loads(search.read_text()), "seed": 7}))
    other = tmp_path / "other"
    capsys.readouterr()
    assert main(_args(other, "--reuse", str(src), **ONE)) == 2
    _one_line(capsys, "search.json", "seed 7 is not this trial's")
    assert not other.exists()


def test_reuse_refuses_hard_links_and_huge_files_before_copying_anything(tmp_path, swept, capsys, monkeypatch):
    src, outside = swept
    folder = src / "trials" / T
    os.link(outside, folder / "hard.txt")
    dest = tmp_path / "dest"
    capsys.readouterr()
    assert main(_args(dest, "--reuse", str(src), **ONE)) == 2
    _one_line(capsys, "hard.txt' is hard-linked")
    assert not dest.exists()
    (folder / "hard.txt").unlink()
    with open(folder / "sparse.bin", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB apparent, nothing on disk
    assert main(_args(dest, "--reuse", str(src), **ONE)) == 2
    _one_line(capsys, "sparse.bin' holds 1073741824 bytes")
    assert not dest.exists()
    (folder / "sparse.bin").unlink()
    # the cap is on all the trials to copy, checked before the first one is copied
    two = tmp_path / "two"
    assert main(_args(two, "--references", "DARTS_V2", **ONE)) == 0
    size = sum(p.stat().st_size for p in (two / "trials").rglob("*") if p.is_file() and p.name != "lock")
    monkeypatch.setattr(reuse, "MAX_REUSE_BYTES", size - 1)
    capsys.readouterr()
    assert main(_args(dest, "--references", "DARTS_V2", "--reuse", str(two), **ONE)) == 2
    _one_line(capsys, f"over {size - 1} bytes (the cap on all of them together); nothing copied")
    assert not dest.exists()


# --- the rule kept: one place writes into the sweep folder ---------------------------------------------------------
RAW = re.compile(r"(?<![\w.])open\(|os\.open\(|\.mkdir\(|os\.makedirs\(|\.write_(text|bytes)\(|\.read_(text|bytes)\("
                 r"|shutil\.copy|os\.replace\(|\.touch\(")


def test_no_sweep_module_opens_writes_or_makes_folders_except_through_lpm_zoo_files():
    root = Path(__file__).parents[1]
    found = [f"{p.name}:{n}: {line.strip()}" for p in sorted((root / "search" / "sweep").glob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if RAW.search(line) and "# --out itself" not in line]
    for p, pattern in ((root / "search" / "checkpoint.py", "torch.save(payload, tmp)"),):
        assert pattern not in p.read_text()
    assert not found, found


def test_the_rules_are_written_down():
    text = (Path(__file__).parents[1] / "docs" / "security-and-file-formats.md").read_text()
    section = text.split("## Folders the project reads back", 1)[1].split("\n## ", 1)[0]
    for rule in ("data, not trusted state", "size cap", "before anything is created", "link", "lpm_zoo/files.py",
                 "recomputed from", "tests/test_hostile_sweep.py"):
        assert rule in section, rule
