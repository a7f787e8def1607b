"""The `lpm` host and `lpm info`: output, JSON, one-line errors with exit code 2."""

import json
import os
import subprocess
import sys

import pytest
from lpm_runner import run_lpm

from lpm_zoo.cli import main


def test_info_published(capsys):
    assert main(["info", "DARTS_V2"]) == 0
    out = capsys.readouterr().out
    assert "3.35 M" in out and "DARTS_V2" in out


def test_info_json_imagenet(capsys):
    assert main(["info", "PC_DARTS_cifar", "--setting", "imagenet", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert round(row["params_M"], 1) == 5.3 and len(row["encoding"]) == 112 and row["encoding"].count("1") == 8
    from lpm_zoo.encoding import genotype_key
    from lpm_zoo.published import PC_DARTS_cifar

    assert row["encoding_both"][:112] == row["encoding"] and row["encoding_both"].count("1") == 16
    assert row["key_both"] == genotype_key(PC_DARTS_cifar)


@pytest.mark.parametrize("arg", ["nonsense", "Genotype(normal=[('sep_conv_3x3', 0)])", "{\"normal\": 3}", "x.json"])
def test_bad_genotype_is_one_line_exit_2(arg):
    r = subprocess.run([sys.executable, "-m", "lpm_zoo", "info", arg], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "error" in r.stderr


@pytest.mark.parametrize("args", [["--version"], ["info", "DARTS_V2"], ["info", "nonsense"], ["info", "--bogus"],
                                  ["predict", "--predictor", "ort-cpu", "--input", "-", "--json"]])
def test_the_forked_runner_shows_what_a_real_lpm_process_shows(args, tmp_path):
    """tests/lpm_runner.py stands for `python -m lpm_zoo` in the refusal tests: the same exit code, stdout and
    stderr, working folder, environment and stdin."""
    env = {**os.environ, "LPM_ZOO_HOME": str(tmp_path / "zoo")}
    stdin = '"DARTS_V2"\n{"normal": 3}\n'
    real = subprocess.run([sys.executable, "-m", "lpm_zoo", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, input=stdin, timeout=120)
    forked = run_lpm(args, env=env, cwd=tmp_path, input=stdin)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_help_lists_info_and_is_fast():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "lpm_zoo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "info" in r.stdout
    assert "torch" not in {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()}


@pytest.mark.parametrize("command", ["fit", "compare"])
def test_device_on_fit_and_compare_is_refused_pointing_at_device_name(command, tmp_path, capsys):
    """One name per meaning: --device is where a command runs; the data's device is --device-name."""
    argv = [command, "--db", str(tmp_path / "none.db"), "--backend", "ort", "--device", "cpu", "--profile", "cifar-b1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--device-name" in err
    assert not (tmp_path / "none.db").exists()
