"""Hostile input through the CLI: every case ends in one short error line and exit 2, and discloses nothing.

Each case runs `python -m lpm_zoo ...` in a subprocess (bounded by a timeout) with a secret canary in the
environment and in a file the input points at; the canary must never reach stdout or stderr.
"""

import os
from pathlib import Path

import pytest
import torch
from lpm_runner import run_lpm

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import GenotypeError

pytestmark = pytest.mark.host  # lpm predict loads the shipped Xeon predictor: on another CPU it has a note to print

CANARY = "SECRET-CANARY-123"
PREDICT = ["predict", "--predictor", "ort-cpu"]  # a bundled predictor: loads in a fraction of a second
DATA = ["--db", "no-such.db", "--backend", "ort", "--device-name", "cpu", "--profile", "cifar-b1"]
SEARCH = ["search", "--epochs", "1", "--max-steps", "1", "--no-progress"]
V2 = DARTS_V2.to_darts()
NORMAL = [list(p) for p in DARTS_V2.normal]


def _concat(value: str) -> str:
    return V2.replace("normal_concat=[2, 3, 4, 5]", f"normal_concat={value}")


def _line(obj: str) -> str:
    return '{"genotype": ' + obj + "}\n"


# (id, arguments, content of the --input file or None, what the error says); "{canary}", "{canary_json}",
# "{input}", "{out}" and "{ckdir}" are replaced by paths in the test's tmp folder.
CASES = [
    # 1. disclosure: inside JSON input a genotype is data, never a path; a file's text is never echoed
    ("input-path-genotype", [*PREDICT, "--input", "{input}"], _line('"{canary}"'), "never read from a file"),
    ("input-proc-environ", [*PREDICT, "--input", "{input}"], _line('"/proc/self/environ"'),
     "never read from a file"),
    ("input-json-path", [*PREDICT, "--input", "{input}"], _line('"{canary_json}"'), "never read from a file"),
    ("genotype-arg-file", [*PREDICT, "--genotype", "{canary}"], None, "holds neither JSON"),
    ("genotype-arg-environ", [*PREDICT, "--genotype", "/proc/self/environ"], None, "holds neither JSON"),
    ("genotype-arg-bad-json", [*PREDICT, "--genotype", "{canary_json}"], None, "not JSON: Expecting value at line 1"),
    ("info-file", ["info", "{canary}"], None, "holds neither JSON"),
    ("info-environ", ["info", "/proc/self/environ"], None, "holds neither JSON"),
    # 2. a few bytes that would build something huge
    ("concat-range-30M", ["info", _concat("range(0,30000000)")], None, "range() takes small integers"),
    ("concat-range-1e12", ["info", _concat("range(0, 1000000000000)")], None, "range() takes small integers"),
    ("input-concat-range", [*PREDICT, "--input", "{input}"], _line('"' + _concat("range(0,30000000)") + '"'),
     "line 1: field 'normal_concat'"),
    ("input-dev-zero", [*PREDICT, "--input", "/dev/zero"], None, "longer than 64 KB"),
    ("input-long-line", [*PREDICT, "--input", "{input}"], "x" * 100_000 + "\n", "longer than 64 KB"),
    ("genotype-100k", ["info", "Genotype(normal=[" + "1, " * 40_000 + "])"], None, "at most 8192 characters"),
    # 8. what used to be tracebacks
    ("input-nested-json", [*PREDICT, "--input", "{input}"], _line("[" * 20_000 + "]" * 20_000),
     "nested too deeply"),
    ("input-5000-digits", [*PREDICT, "--input", "{input}"],
     _line('{"normal": ' + str(NORMAL).replace("'", '"') + ', "normal_concat": [' + "9" * 5000 + "]}"), "too large"),
    ("input-1e400", [*PREDICT, "--input", "{input}"],
     _line('{"normal": ' + str(NORMAL).replace("'", '"') + ', "normal_concat": [1e400, 3, 4, 5]}'), "node indices"),
    ("input-not-utf8", [*PREDICT, "--input", "{input}"], b'{"genotype": "DARTS_V2"}\n\xff\xfe{}\n',
     "line 2: not UTF-8"),
    ("concat-5000-digits", ["info", _concat("[" + "9" * 5000 + "]")], None, "does not parse"),
    ("concat-1e400", ["info", _concat("[1e400, 3, 4, 5]")], None, "node indices"),
    ("concat-range-str", ["info", _concat("range('a')")], None, "range() takes small integers"),
    ("input-huge-hex", ["info", V2.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0x" + "f" * 3000 + ")", 1)],
     None, "12000-bit integer"),
    ("nested-darts", ["info", "Genotype(normal=" + "[" * 3000 + "]" * 3000 + ")"], None, "does not parse"),
    ("param-alpha-negative", ["fit", *DATA, "--predictor", "ridge", "--param", "alpha=-5"], None, "ridge.alpha=-5"),
    ("param-hidden-1e8", ["fit", *DATA, "--predictor", "mlp", "--param", "hidden=[1e8]"], None, "mlp.hidden"),
    ("param-lr-nan", ["fit", *DATA, "--predictor", "mlp", "--param", "mlp.lr=NaN"], None, "mlp.lr=nan"),
    ("param-nested", ["fit", *DATA, "--predictor", "mlp", "--param", "mlp.hidden=" + "[" * 50_000], None,
     "nested too deeply"),
    ("compare-param", ["compare", *DATA, "--predictors", "ridge,rf", "--param", "rf.n_estimators=0"], None,
     "rf.n_estimators=0"),
    ("compare-sizes-digits", ["compare", *DATA, "--train-sizes", "9" * 5000], None, "(5000 chars)"),
    ("compare-sizes-zero", ["compare", *DATA, "--train-sizes", "0,1000"], None, "in [2, 10000000]"),
    ("profile-threads", ["profile", "--backend", "torch", "--samples", "1", "--db", "{out}/p.db",
                         "--threads", "100000"], None, "os.cpu_count()"),
    ("measure-threads", ["measure", "--backend", "torch", "--genotype", "DARTS_V2", "--threads", "100000"], None,
     "os.cpu_count()"),
    ("search-lambda-nan", [*SEARCH, "--lambda", "nan", "--out", "{out}"], None, "--lambda"),
    ("search-lr-nan", [*SEARCH, "--lr", "nan", "--out", "{out}"], None, "--lr must"),
    ("search-arch-lr-inf", [*SEARCH, "--arch-lr", "inf", "--out", "{out}"], None, "--arch-lr"),
    ("search-partial-k-0", [*SEARCH, "--method", "pc-darts", "--partial-k", "0", "--out", "{out}"], None,
     "--partial-k"),
    ("search-threads", [*SEARCH, "--threads", "100000", "--out", "{out}"], None, "os.cpu_count()"),
    ("search-checkpoint-dir", [*SEARCH, "--out", "{ckdir}"], None, "not a regular file"),
    ("train-lr-nan", ["train", "--genotype", "DARTS_V2", "--epochs", "1", "--lr", "nan", "--out", "{out}"], None,
     "--lr must"),
]


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    """The canary files, an output folder and a search output whose checkpoint.pt is a folder."""
    canary = tmp_path / "canary.txt"
    canary.write_text(CANARY + "\n")
    canary_json = tmp_path / "canary.json"
    canary_json.write_text('{"normal": ' + CANARY + "}\n")
    (tmp_path / "ck" / "checkpoint.pt").mkdir(parents=True)
    return {"canary": str(canary), "canary_json": str(canary_json), "input": str(tmp_path / "input.jsonl"),
            "out": str(tmp_path / "out"), "ckdir": str(tmp_path / "ck")}


def _fill(text: str, paths: dict[str, str]) -> str:
    for k, v in paths.items():
        text = text.replace("{" + k + "}", v)
    return text


@pytest.mark.parametrize("args, content, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2(args, content, says, paths, tmp_path):
    if content is not None:
        data = content if isinstance(content, bytes) else _fill(content, paths).encode()
        Path(paths["input"]).write_bytes(data)
    env = {**os.environ, "LPM_TEST_SECRET": CANARY, "LPM_ZOO_HOME": str(tmp_path / "zoo")}
    r = run_lpm([_fill(a, paths) for a in args], env=env, timeout=60, cwd=tmp_path, text=False)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 2, err[-2000:]
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("lpm "), err[-2000:]
    assert "Traceback" not in err and len(err) < 1000 and says in err, err
    assert CANARY not in out + err
    assert out == ""


def test_checkpoint_folder_is_left_alone_and_nothing_written(paths):
    """The refused search removed nothing: checkpoint.pt (a folder) is still there, no temporary file appeared."""
    r = run_lpm([*SEARCH, "--restart", "--out", paths["ckdir"]], timeout=60)
    assert r.returncode == 2 and "not a regular file" in r.stderr
    assert Path(paths["ckdir"], "checkpoint.pt").is_dir()
    assert sorted(p.name for p in Path(paths["ckdir"]).iterdir()) == ["checkpoint.pt"]


def test_failed_checkpoint_save_keeps_the_previous_one(tmp_path, monkeypatch):
    from lpm_zoo.search.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def disk_full(obj, f, *a, **k):  # torch.save gets the open temporary file
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(LpmError, match="No space left on device.*previous checkpoint"):
        save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def test_a_genotype_in_data_is_never_a_path(tmp_path):
    f = tmp_path / "g.json"
    f.write_text(DARTS_V2.to_json())
    assert parse_genotype(str(f)) == DARTS_V2  # a command-line argument may name a file
    with pytest.raises(GenotypeError, match="is not a genotype"):
        parse_genotype(str(f), allow_path=False)


def test_clip_caps_echoed_values():
    assert clip("abc") == "'abc'"
    long = clip("x" * 1000)
    assert long.endswith("…(1000 chars)") and len(long) < 230
    assert clip(int("f" * 3000, 16)) == "<12000-bit integer>"
    assert len(clip(list(range(100_000)))) <= 220
    assert clip(float("nan")) == "nan"


def test_valid_input_still_predicts(tmp_path):
    """The bounded reader still reads ordinary JSON lines, from a file and from stdin."""
    lines = _line('"DARTS_V2"') + "\n" + _line(DARTS_V2.to_json())
    r = run_lpm([*PREDICT, "--input", "-", "--json"], input=lines.encode(), timeout=60, text=False,
                env={**os.environ, "LPM_ZOO_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.decode().splitlines()) == 2
