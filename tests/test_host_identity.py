"""The host identity: stated for tests (`LPM_HOST_IDENTITY`), read from the CPU otherwise; notes never break an error.

The suite runs as a stated CPU (tests/conftest.py), so what it asserts holds on any machine; the tests
here check that the statement is honoured, refused when malformed, and that the notes a command
prints for another machine's predictor come only after its input is valid, as each CPU in turn.
"""

import json
import os
import subprocess

import pytest
from lpm_runner import run_lpm

from lpm_zoo import hardware
from lpm_zoo.errors import LpmError
from lpm_zoo.hardware import HOST_IDENTITIES, HOST_IDENTITY_VAR, cpu_fingerprint, host_slug, model_from_cpuinfo
from lpm_zoo.notes import LpmNote, NoteBuffer

# not marked `host`: every test here states the identities it runs as


def _lpm(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run_lpm(args, env={**os.environ, **env})  # a process of its own, forked with the imports done


def test_a_stated_identity_is_the_fingerprint_and_says_so(any_host):
    fp = cpu_fingerprint()
    want = HOST_IDENTITIES[any_host]
    assert fp["model"] == want["model"] and fp["isa"] == sorted(want["isa"]) and fp["machine"] == want["machine"]
    assert fp["logical_cores"] == want["logical_cores"] and fp["stated"] is True
    assert host_slug() == {"xeon": "xeon", "epyc": "epyc", "graviton3": "neoverse-v1"}[any_host]


def test_the_real_host_is_read_when_none_is_stated(real_host):
    fp = cpu_fingerprint()
    assert "stated" not in fp and fp["model"] and fp["logical_cores"] == (os.cpu_count() or 1)


def test_a_json_identity_is_checked(monkeypatch):
    monkeypatch.setenv(HOST_IDENTITY_VAR, json.dumps({"model": "Ampere-1", "isa": ["asimd"], "machine": "aarch64"}))
    assert cpu_fingerprint()["model"] == "Ampere-1" and host_slug() == "ampere"
    for bad in ("pentium", '{"model": 3}', '{"model": "x", "isa": ["avx9000"]}', '{"model": "x", "cores": 2}',
                '{"model": "a\\u001b[2Jb"}', "{not json", '{"model": "x", "logical_cores": 1e9}'):
        monkeypatch.setenv(HOST_IDENTITY_VAR, bad)
        with pytest.raises(LpmError, match=HOST_IDENTITY_VAR):
            cpu_fingerprint()


def test_a_malformed_identity_is_one_line_exit_2(tmp_path):
    r = _lpm("predict", "--predictor", "ort-cpu", "--genotype", "DARTS_V2", LPM_HOST_IDENTITY="pentium",
             LPM_ZOO_HOME=str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a known host identity" in r.stderr, r.stderr


@pytest.mark.parametrize(("lines", "model"), [
    (["processor\t: 0", "model name\t: AMD EPYC 7763 64-Core Processor", "flags\t: avx2"],
     "AMD EPYC 7763 64-Core Processor"),
    (["processor\t: 0", "BogoMIPS\t: 2100.00", "CPU implementer\t: 0x41", "CPU part\t: 0xd40"], "Neoverse-V1"),
    (["CPU implementer\t: 0x41", "CPU part\t: 0xd0c", "processor\t: 1", "CPU implementer\t: 0x41"], "Neoverse-N1"),
    (["CPU implementer\t: 0x99", "CPU part\t: 0x123"], "Arm implementer 0x99 part 0x123"),
    (["processor\t: 0"], ""),
])
def test_arm_cores_are_named_from_implementer_and_part(lines, model):
    """Arm kernels print no `model name`; before this every Graviton was 'aarch64'."""
    assert model_from_cpuinfo(lines) == model


def test_notes_wait_for_release_and_are_dropped_on_error(capsys):
    buf = NoteBuffer()
    with pytest.warns(LpmNote, match="^at once$"):  # outside a command: a Python warning, nothing printed
        buf.note("at once")
    buf.hold("predict")
    buf.note("held")
    buf.note("held")
    assert capsys.readouterr().err == ""
    buf.release()
    assert capsys.readouterr().err == "lpm predict: note: held\n"  # once, with its command
    buf.hold("search")
    buf.note("dropped")
    buf.discard()
    assert capsys.readouterr().err == ""
    buf.close()  # the command returned (main() in-process): a library caller's notes are warnings again
    with pytest.warns(LpmNote, match="^after$"):
        buf.note("after")
    assert capsys.readouterr().err == ""


def test_main_in_process_leaves_library_notes_as_warnings(capsys):
    from lpm_zoo.cli import main
    from lpm_zoo.notes import NOTES

    assert main(["zoo", "list"]) == 0 and NOTES.command == ""
    with pytest.warns(LpmNote):
        NOTES.note("a library note after a command")
    assert "a library note" not in capsys.readouterr().err


# Bad input through commands that load the shipped Xeon predictor: as any CPU, exactly one line (the error).
BAD = [
    ["predict", "--predictor", "ort-cpu", "--genotype", "not-a-cell"],
    ["predict", "--predictor", "ort-cpu", "--input", "/dev/zero"],
    ["search", "--predictor", "ort-cpu", "--epochs", "1", "--max-steps", "1", "--no-progress", "--out", "{ck}"],
]  # the search's checkpoint was made with other settings: refused after the predictor (and its note) loaded


@pytest.mark.parametrize("args", BAD, ids=["predict-genotype", "predict-input", "search-checkpoint"])
def test_a_failing_command_prints_one_line_on_any_cpu(args, any_host, tmp_path):
    import torch

    (tmp_path / "ck").mkdir()
    torch.save({"config": {"method": "another"}, "epoch": 0}, tmp_path / "ck" / "checkpoint.pt")
    r = _lpm(*(a.replace("{ck}", str(tmp_path / "ck")) for a in args), LPM_ZOO_HOME=str(tmp_path / "zoo"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("lpm "), r.stderr
    assert "note:" not in r.stderr


def test_the_hardware_note_follows_valid_input_on_another_cpu(any_host, tmp_path):
    r = _lpm("predict", "--predictor", "ort-cpu", "--genotype", "DARTS_V2", LPM_ZOO_HOME=str(tmp_path))
    assert r.returncode == 0 and " ms " in r.stdout, r.stderr
    noted = "lpm predict: note: ort-cpu was fitted on Intel(R) Xeon(R) Processor" in r.stderr
    assert noted == (any_host != "xeon"), r.stderr  # the shipped predictor is the Xeon's


def test_the_library_warns_of_another_cpus_predictor_through_warnings(any_host, tmp_path, monkeypatch, capsys):
    """get_predictor from Python: an LpmNote warning (the CLI's note, not printed), only on another CPU."""
    import warnings

    from lpm_zoo import get_predictor

    monkeypatch.setenv("LPM_ZOO_HOME", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_predictor("ort-cpu")
    notes = [str(w.message) for w in caught if issubclass(w.category, LpmNote)]
    if any_host == "xeon":  # the shipped predictor is the Xeon's
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith("ort-cpu was fitted on Intel(R) Xeon(R)") and "lpm adapt" in notes[0]
    assert capsys.readouterr().err == ""


def test_identity_functions_read_the_environment_each_time(monkeypatch):
    monkeypatch.setenv(HOST_IDENTITY_VAR, "epyc")
    assert hardware.cpu_model().startswith("AMD EPYC")
    monkeypatch.setenv(HOST_IDENTITY_VAR, "xeon")
    assert hardware.cpu_model().startswith("Intel")
