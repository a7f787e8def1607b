"""Device names are hardware slugs; a store filed under another name on the same hardware keeps it."""

from __future__ import annotations

import pytest

from lpm_zoo.backends.device import device_name, store_device_name
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.hardware import cpu_fingerprint, cpu_model, cpu_slug
from lpm_zoo.published import DARTS_V2, get_genotype
from lpm_zoo.store import Measurement, MeasurementStore

pytestmark = pytest.mark.host  # names and fingerprints are this host's: rerun as each stated CPU
HERE = cpu_slug(cpu_model())
PC_DARTS = get_genotype("PC_DARTS_cifar")
OTHER_CPU = {"kind": "cpu", "model": "AMD EPYC 7763 64-Core Processor", "logical_cores": 2, "isa": ["avx2"]}


def _row(name: str, hardware: dict, g=DARTS_V2, backend: str = "ort") -> Measurement:
    return Measurement(g, backend, name, "cifar-b1", 5.0, 0.1, [5.0], {"statistic": "min", "hardware": hardware})


@pytest.mark.parametrize(("model", "slug"), [
    ("Intel(R) Xeon(R) Platinum 8488C", "xeon"), ("AMD EPYC 7763 64-Core Processor", "epyc"),
    ("Intel(R) Core(TM) i7-12700H", "i7"), ("AMD Ryzen 9 7950X 16-Core Processor", "ryzen"),
    ("Apple M2 Pro", "m2"), ("Intel(R) Xeon(R) Processor", "xeon"), ("Neoverse-N1", "neoverse-n1"),
])
def test_cpu_slugs(model, slug):
    assert cpu_slug(model) == slug


def test_the_default_name_is_this_cpus_slug():
    assert device_name("cpu") == HERE and HERE != "" and "/" not in HERE
    assert device_name("cpu", "lab-box_2") == "lab-box_2"
    with pytest.raises(Exception, match="--device-name"):
        device_name("cpu", "x" * 65)


def test_a_store_resumes_under_the_name_it_has_for_this_hardware(tmp_path):
    db = tmp_path / "s.db"
    with MeasurementStore(db) as s:
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == HERE  # a new store: the slug
        s.add(_row("cpu", cpu_fingerprint()))  # filed as `cpu` before names were slugs, on this machine
        assert s.devices("ort", "cifar-b1") == {"cpu": cpu_fingerprint()}
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == "cpu"
        assert store_device_name(s, "ort", "cpu", "cifar-b1", "mine") == "mine"  # --device-name wins
        assert store_device_name(s, "torch", "cpu", "cifar-b1") == HERE  # another backend: its own rows
        s.add(_row("old-amd", OTHER_CPU, PC_DARTS))  # another machine's rows are never continued
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == "cpu"


def test_another_machines_store_is_read_but_not_continued(tmp_path):
    db = tmp_path / "s.db"
    with MeasurementStore(db) as s:
        s.add(_row("epyc-lab", OTHER_CPU))
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == HERE
        assert store_device_name(s, "ort", "cpu", "cifar-b1", reading=True) == "epyc-lab"  # its scale: its only name
        s.add(_row("other", OTHER_CPU, PC_DARTS))
        assert store_device_name(s, "ort", "cpu", "cifar-b1", reading=True) == HERE  # two: none is guessed


def test_fit_takes_the_stores_only_device_and_refuses_to_guess_between_two(tmp_path, capsys):
    from lpm_zoo.synthetic import make_synthetic_store

    db = tmp_path / "s.db"
    make_synthetic_store(str(db), 60, device="lab1")
    zoo = tmp_path / "zoo"
    argv = ["fit", "--db", str(db), "--backend", "synth", "--profile", "cifar-b1", "--predictor", "lut",
            "--zoo-dir", str(zoo)]
    assert main(argv) == 0
    assert (zoo / "synth-lab1").is_dir()  # named <backend>-<the store's device>
    make_synthetic_store(str(db), 60, device="lab2", seed=3)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "several devices ('lab1', 'lab2')" in err and "--device-name" in err and len(err.splitlines()) == 1
    assert main([*argv, "--device-name", "lab2", "--name", "b"]) == 0 and (zoo / "b").is_dir()


def test_a_stores_odd_device_name_never_becomes_a_zoo_directory(tmp_path, capsys):
    db = tmp_path / "s.db"
    with MeasurementStore(db) as s:
        s.add(Measurement(DARTS_V2, "ort", "../../evil\n", "cifar-b1", 5.0, 0.1, [5.0], {"statistic": "min"}))
        s.add(Measurement(PC_DARTS, "ort", "../../evil\n", "cifar-b1", 6.0, 0.1, [6.0], {"statistic": "min"}))
    zoo = tmp_path / "zoo"
    assert main(["fit", "--db", str(db), "--backend", "ort", "--profile", "cifar-b1", "--predictor", "lut",
                 "--zoo-dir", str(zoo)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a plain word" in err and len(err.splitlines()) == 1 and not zoo.exists()


def test_a_stores_odd_names_are_never_adopted_and_measure_keeps_this_machines_name(tmp_path):
    db = tmp_path / "s.db"
    with MeasurementStore(db) as s:
        s.add(_row("Tesla P100\n../x", cpu_fingerprint()))  # this hardware, but not a plain word
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == HERE
        assert store_device_name(s, "ort", "cpu", "cifar-b1", reading=True) == HERE


def test_an_mlp_split_of_whole_genotypes_is_not_fine_tuned_and_a_mismatched_file_is_refused(tmp_path):
    import numpy as np

    from lpm_zoo.adaptation.finetune import can_finetune, finetune
    from lpm_zoo.errors import LpmError
    from lpm_zoo.predictors import create_predictor, load_predictor
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.sampler import sample_unique_arrays

    ops, inputs, _ = sample_unique_arrays(60, seed=2, cells=2)
    y = 5 + ops.sum(1) * 0.01
    p = create_predictor("mlp-split", epochs=2).fit((ops, inputs), y)
    assert not can_finetune(p)
    with pytest.raises(LpmError, match="fine-tuning needs"):
        finetune(p, ops[:10], inputs[:10], y[:10])
    assert can_finetune(create_predictor("mlp-split", epochs=2).fit((ops[:, :8], inputs[:, :8]), y))
    from safetensors.numpy import load_file, save_file

    one = create_predictor("mlp-split", epochs=2, members=1).fit((ops, inputs), y)
    for model, prefixes in ((one, [""]), (p, [f"member{j}." for j in range(5)])):
        model.save(str(tmp_path / "m"))
        state = load_file(str(tmp_path / "m" / "model.safetensors"))
        for pre in prefixes:  # a first layer that reads all 224 bits, beside a reduction-cell term
            state[f"{pre}layer0.weight"] = np.zeros((224, 256), np.float32)
        save_file(state, str(tmp_path / "m" / "model.safetensors"))
        with pytest.raises(LpmError, match="cannot read the model"):
            load_predictor(tmp_path / "m")
    p.save(str(tmp_path / "m"))
    state = load_file(str(tmp_path / "m" / "model.safetensors"))
    state["layer0.weight"] = state["member0.layer0.weight"]  # a stray single-network key beside the members
    save_file(state, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(LpmError, match="cannot read the model"):
        load_predictor(tmp_path / "m")
    assert get_profile("cifar-b1-both").cells == 2


def test_an_isa_cap_is_other_hardware_it_is_recorded_named_and_not_mixed_with_uncapped_rows(tmp_path, monkeypatch):
    from lpm_zoo.hardware import describe, same_hardware

    plain = cpu_fingerprint()
    assert "isa_limit" not in plain
    db = tmp_path / "s.db"
    with MeasurementStore(db) as s:
        s.add(_row("cpu", plain))  # uncapped rows of this machine, filed under the old name
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        capped = cpu_fingerprint()
        assert capped["isa_limit"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
        assert same_hardware(plain, capped) is False and same_hardware(capped, cpu_fingerprint()) is True
        assert describe(capped).endswith("capped avx2,AVX2")
        assert device_name("cpu") == HERE + "-avx2"  # kernels capped to AVX2 time like another chip
        assert store_device_name(s, "ort", "cpu", "cifar-b1") == HERE + "-avx2"  # the uncapped `cpu` is not continued
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", "x" * 500)
        with pytest.raises(LpmError, match=r"ATEN_CPU_CAPABILITY='x+…\(500 chars\) is not a value"):
            cpu_fingerprint()  # a stray value is refused (torch would ignore it), its echo clipped
    hostile = {**plain, "isa_limit": {str(i): "y" * 999 for i in range(10_000)}}  # a fingerprint read from a file
    assert len(describe(hostile)) < 200 and same_hardware(plain, hostile) is False


def test_a_capped_predictor_used_uncapped_is_noted_and_not_when_the_cap_matches(monkeypatch):
    from types import SimpleNamespace

    from lpm_zoo.predictors.zoo import hardware_note

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    p = SimpleNamespace(meta={"hardware": cpu_fingerprint(), "backend": "torch", "profile": "cifar-b1"})
    assert hardware_note(p, "torch-here-avx2") is None  # the same cap: this machine's own kind
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    note = hardware_note(p, "torch-here-avx2")
    assert note and "capped avx2" in note and "lpm adapt --from torch-here-avx2 --backend torch" in note
