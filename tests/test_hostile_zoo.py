"""Hostile zoo entries: a predictor directory can never run code, read other files or crash the CLI.

Each hostile entry is loaded through every public path (`get_predictor`, `lpm predict`,
`lpm search`, `lpm zoo list`); the answer is a one-line refusal (exit 2 for the commands that
load it), no traceback, and the canary file the payload would write never appears.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sklearn
from lpm_runner import run_lpm

from lpm_zoo.errors import LpmError
from lpm_zoo.predictors import create_predictor, get_predictor
from lpm_zoo.sampler import sample_cells


def _gadgets(canary: Path) -> dict[str, dict]:
    """skops schemas whose loading would write `canary`: numpy's runstring, and os.system."""
    code = f"open({str(canary)!r}, 'w').write('pwned')"
    json_str = lambda v: {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",  # noqa: E731
                          "content": json.dumps(v), "is_json": True, "__id__": 2}
    return {
        "runstring": {"__class__": "runstring", "__module__": "numpy.testing._private.utils",
                      "__loader__": "ConstructorFromReduceNode", "__id__": 1, "protocol": 2,
                      "_skops_version": "0.16.0",
                      "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                  "__id__": 3, "content": [json_str(code),
                                                           {"__class__": "dict", "__module__": "builtins",
                                                            "__loader__": "DictNode", "__id__": 4, "content": {},
                                                            "key_types": {"__class__": "list",
                                                                          "__module__": "builtins",
                                                                          "__loader__": "ListNode", "__id__": 5,
                                                                          "content": []}}]}},
        "os.system": {"__class__": "system", "__module__": "os", "__loader__": "ConstructorFromReduceNode",
                      "__id__": 1, "protocol": 2, "_skops_version": "0.16.0",
                      "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                  "__id__": 3, "content": [json_str(f"touch {canary}")]}},
        "builtins.exec": {"__class__": "exec", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
                          "__id__": 1, "protocol": 2, "_skops_version": "0.16.0",
                          "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                      "__id__": 3, "content": [json_str(code)]}},
    }


@pytest.fixture()
def good(tmp_path):
    """A small fitted rf saved in a user zoo (the template hostile entries are made from)."""
    cells = sample_cells(120, seed=0)
    y = np.linspace(5.0, 9.0, len(cells))
    p = create_predictor("rf", n_estimators=3).fit(cells, y)
    zoo = tmp_path / "zoo"
    p.save(zoo / "good-rf")
    return zoo


def _hostile(zoo: Path, name: str, schema: dict) -> Path:
    d = zoo / name
    d.mkdir()
    for f in ("meta.json", "train.json.gz"):
        (d / f).write_bytes((zoo / "good-rf" / f).read_bytes())
    with zipfile.ZipFile(d / "model.skops", "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    meta = json.loads((d / "meta.json").read_text())
    assert meta["versions"]["scikit-learn"] == sklearn.__version__  # so the file is loaded, not refitted
    return d


def _run(args: list[str], zoo: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "LPM_ZOO_HOME": str(zoo)}
    return run_lpm(args, env=env, cwd=cwd)  # a process of its own, forked with the imports done


def _cli(args: list[str], capsys) -> subprocess.CompletedProcess:
    """`lpm ARGS` in this process (fast); an uncaught exception would fail the test as a traceback would."""
    from lpm_zoo.cli import main

    capsys.readouterr()
    rc = main(args)
    cap = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, cap.out, cap.err)


def _one_line_refusal(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("gadget", ["runstring", "os.system", "builtins.exec"])
def test_hostile_skops_is_refused_everywhere(good, tmp_path, monkeypatch, capsys, gadget):
    canary = tmp_path / "CANARY"
    _hostile(good, "evil", _gadgets(canary)[gadget])
    monkeypatch.setenv("LPM_ZOO_HOME", str(good))
    with pytest.raises(LpmError, match=f"refusing the model.*{gadget.split('.')[-1]}"):
        get_predictor("evil")
    _one_line_refusal(_run(["predict", "--predictor", "evil", "--genotype", "DARTS_V2"], good, tmp_path))
    search = ["search", "--predictor", "evil", "--lambda", "0.1", "--epochs", "1", "--out", str(tmp_path / "s")]
    _one_line_refusal(_run(search, good, tmp_path) if gadget == "runstring" else _cli(search, capsys))
    r = _cli(["zoo", "list"], capsys)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    evil = [line for line in r.stdout.splitlines() if line.startswith("evil")]
    assert len(evil) == 1 and "unusable: refusing the model" in evil[0]
    assert any(line.startswith("good-rf ") and " rf " in line for line in r.stdout.splitlines())
    assert not canary.exists()


def test_the_gadget_is_real(tmp_path):
    """Without the allow-list, skops would run the payload: the test's gadget is not a dud."""
    import skops.io as sio

    canary = tmp_path / "CANARY"
    f = tmp_path / "g.skops"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("schema.json", json.dumps(_gadgets(canary)["runstring"]))
    sio.load(f, trusted=sio.get_untrusted_types(file=f))
    assert canary.read_text() == "pwned"


@pytest.mark.parametrize("case", ["not-json", "a-list", "no-type", "unknown-type", "deep", "huge", "newer",
                                  "bad-params", "wrong-shapes", "nan-weights", "model-path"])
def test_broken_entries_are_one_line_errors_and_zoo_list_keeps_the_rest(good, tmp_path, monkeypatch, capsys, case):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CANARY-123")
    ridge = create_predictor("ridge").fit(sample_cells(50, seed=1), np.linspace(1.0, 2.0, 50))
    ridge.save(good / "bad")
    meta_file = good / "bad" / "meta.json"
    meta = json.loads(meta_file.read_text())
    if case == "not-json":
        meta_file.write_bytes(b"\xff{not json")
    elif case == "a-list":
        meta_file.write_text("[1, 2]")
    elif case == "no-type":
        meta.pop("type")
        meta_file.write_text(json.dumps(meta))
    elif case == "unknown-type":
        meta["type"] = "nope"
        meta_file.write_text(json.dumps(meta))
    elif case == "deep":
        meta_file.write_text("[" * 100000 + "]" * 100000)
    elif case == "huge":
        meta_file.write_text(json.dumps({**meta, "pad": "x" * (2 << 20)}))
    elif case == "newer":
        meta_file.write_text(json.dumps({**meta, "format": 99}))
    elif case == "bad-params":
        meta_file.write_text(json.dumps({**meta, "params": ["alpha"]}))
    elif case in ("wrong-shapes", "nan-weights"):
        from safetensors.numpy import save_file

        coef = np.zeros(7) if case == "wrong-shapes" else np.full(112, np.nan)
        save_file({"coef": coef, "intercept": np.zeros(1)}, str(good / "bad" / "model.safetensors"))
    elif case == "model-path":  # a file name inside meta.json is never opened
        meta["files"] = {"model": str(secret), "train": str(secret)}
        meta_file.write_text(json.dumps(meta))
    monkeypatch.setenv("LPM_ZOO_HOME", str(good))
    if case == "model-path":
        assert np.isfinite(get_predictor("bad").predict(sample_cells(3, seed=2))).all()
        return
    with pytest.raises(LpmError):
        get_predictor("bad")
    r = _cli(["predict", "--predictor", "bad", "--genotype", "DARTS_V2"], capsys)
    _one_line_refusal(r)
    assert "SECRET" not in r.stdout + r.stderr
    r = _cli(["zoo", "list"], capsys)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert any(line.startswith("good-rf ") for line in r.stdout.splitlines())
    if case in ("not-json", "a-list", "no-type", "deep", "huge", "newer"):
        assert any(line.startswith("bad ") and "unusable" in line for line in r.stdout.splitlines())


def test_gzip_bomb_training_set_is_refused(good, monkeypatch):
    from lpm_zoo.predictors import files

    monkeypatch.setattr(files, "MAX_TRAIN_BYTES", 1 << 16)
    (good / "good-rf" / "train.json.gz").write_bytes(gzip.compress(b" " * (1 << 20)))
    with pytest.raises(LpmError, match="unpacks to over"):
        files.read_train(good / "good-rf")
