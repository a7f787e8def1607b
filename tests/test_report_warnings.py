"""The sweep report says "slower" for a slower cell, and warns of trials too short to mean anything (issue 35)."""

from __future__ import annotations

from lpm_zoo.search.sweep.report import MIN_TRAIN_STEPS, write_report

SETTINGS = {"search": ["--epochs", "1"], "measure": {"backend": "ort", "device": "cpu", "flags": [],
                                                       "profiles": ["cifar-b1", "cifar-b1-both"]}}


def _row(lam: str, seed: int, acc: float, whole: float, dataset: str = "digits") -> dict:
    return {"trial": f"{lam}-{seed}", "kind": "search", "method": "darts", "dataset": dataset, "predictor": "ort-cpu",
            "lambda": lam, "noise": 0.0, "seed": seed, "reference": None, "test_acc": acc / 100,
            "latency_ms_cifar-b1": whole / 2, "latency_ms_cifar-b1-both": whole, "predicted_ms": None,
            "skip_normal": 2, "madds_M": 500.0}


def test_a_slower_cell_is_called_slower_not_negative_faster(tmp_path):
    rows = [_row("0", 0, 90, 20.0), _row("rel0.5", 0, 90, 20.56)]  # 2.8% slower than λ = 0
    text = write_report(tmp_path, rows, {**SETTINGS, "train": []}).read_text()
    assert "- rel0.5: whole network 2.8% slower, accuracy +0.00 points: does not meet the claim" in text
    assert "are 2.8% slower than λ = 0" in text
    assert "-2.8% faster" not in text and "Warning" not in text  # trained for long enough, well above chance


def test_trials_at_chance_and_short_trainings_are_warned_of(tmp_path):
    rows = [_row("0", 0, 11.25, 20.0), _row("rel0.5", 0, 91.0, 18.0),  # digits: 10 classes, chance 10%
            _row("0", 0, 27.0, 20.0, dataset="textures")]  # textures: 4 classes, chance 25%
    text = write_report(tmp_path, rows, {**SETTINGS, "train": ["--max-steps", "5"]}).read_text()
    assert "**Warning: trials too short to mean anything.**" in text
    assert (f"- each evaluation training stopped after 5 steps (--train-max-steps): fewer than {MIN_TRAIN_STEPS}"
            in text)
    assert ("- 1 of 2 trials on digits reached a test accuracy within 5 points of chance (10% for 10 classes): "
            "0-0 (11.25%)") in text
    assert "- 1 of 1 trials on textures reached a test accuracy within 5 points of chance (25% for 4 classes)" in text


def test_the_class_counts_are_the_loaders():
    from lpm_zoo.search.options import DATASET_CLASSES, DATASETS
    from lpm_zoo.search.textures import ORIENTATIONS

    assert set(DATASET_CLASSES) == set(DATASETS) and DATASET_CLASSES["textures"] == len(ORIENTATIONS)
