"""`lpm search --genotype-after N`: the genotype a finished search held after epoch N, read back from its
history.json (the anytime cells `lpm sweep --anytime` trains); a history that lpm did not write is one line, never
a traceback, and a value in it is never run nor opened as a path."""

import json
import os

import pytest

from lpm_zoo.cli import main
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2, PC_DARTS_cifar
from lpm_zoo.search import history
from lpm_zoo.search.history import genotype_after


def _write(folder, rows):
    folder.mkdir(exist_ok=True)
    (folder / "history.json").write_text(json.dumps(rows))
    return folder


def _rows(*genotypes, early_stop=False):
    rows = [{"epoch": e, "genotype": g.to_darts(), "val_acc": 0.5} for e, g in enumerate(genotypes, 1)]
    if early_stop:
        rows[-1]["early_stop"] = True
    return rows


def test_the_genotype_after_each_epoch_is_the_one_the_history_holds(tmp_path, capsys):
    out = _write(tmp_path / "s", _rows(DARTS_V2, PC_DARTS_cifar, DARTS_V2))
    assert genotype_after(out, 2) == (PC_DARTS_cifar, 2)
    assert main(["search", "--out", str(out), "--genotype-after", "2"]) == 0
    assert capsys.readouterr().out.strip() == PC_DARTS_cifar.to_darts()
    assert main(["search", "--out", str(out), "--genotype-after", "1", "--json"]) == 0
    printed = capsys.readouterr().out
    assert parse_genotype(printed.strip(), allow_path=False) == DARTS_V2  # the genotype object lpm train reads
    assert set(json.loads(printed)) == {"normal", "normal_concat", "reduce", "reduce_concat"}


def test_a_search_stopped_early_gives_its_last_cell_for_any_later_epoch(tmp_path, capsys):
    out = _write(tmp_path / "s", _rows(DARTS_V2, PC_DARTS_cifar, early_stop=True))
    assert genotype_after(out, 7) == (PC_DARTS_cifar, 2)
    assert main(["search", "--out", str(out), "--genotype-after", "7"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == PC_DARTS_cifar.to_darts() and "stopped early after epoch 2" in captured.err


@pytest.mark.parametrize(("rows", "says"), [
    (None, "does not exist: --genotype-after reads a finished search's --out"),
    ("later", "ran 2 epochs"),
    ({"epoch": 1}, "not a search history (not a list of epochs)"),
    ([], "not a search history (not a list of epochs)"),
    ([{"epoch": 2, "genotype": DARTS_V2.to_darts()}], "its epochs are not 1, 2"),
    ([{"epoch": True, "genotype": DARTS_V2.to_darts()}], "not a search history (epoch True)"),
    (["row"], "a row is not an object"),
    ([{"epoch": 1}], "epoch 1 has no genotype"),
    ([{"epoch": 1, "genotype": "Genotype(normal=__import__('os').system('touch pwned'))"}], "epoch 1: field 'normal' holds a call"),
    ([{"epoch": 1, "genotype": "/etc/passwd"}], "inside data a genotype is never read from a file"),
])
def test_a_history_lpm_did_not_write_is_one_line(tmp_path, monkeypatch, capsys, rows, says):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s"
    if rows == "later":
        _write(out, _rows(DARTS_V2, DARTS_V2))
    elif rows is not None:
        _write(out, rows)
    n = 3 if rows == "later" else 1
    assert main(["search", "--out", str(out), "--genotype-after", str(n)]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_a_linked_or_oversized_history_is_refused_before_it_is_read(tmp_path, monkeypatch, capsys):
    real = _write(tmp_path / "real", _rows(DARTS_V2))
    out = tmp_path / "s"
    out.mkdir()
    os.symlink(real / "history.json", out / "history.json")
    assert main(["search", "--out", str(out), "--genotype-after", "1"]) == 2
    assert "is a link" in capsys.readouterr().err
    monkeypatch.setattr(history, "MAX_HISTORY_BYTES", 100)
    assert main(["search", "--out", str(real), "--genotype-after", "1"]) == 2
    err = capsys.readouterr().err
    assert "at most 100 are read" in err and err.count("\n") == 1
    assert main(["search", "--out", str(real / "history.json"), "--genotype-after", "1"]) == 2  # --out a file
    err = capsys.readouterr().err
    assert "cannot read" in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["search", "--out", str(real), "--genotype-after", "0"]) == 2
    assert "--genotype-after must be an epoch from 1" in capsys.readouterr().err
