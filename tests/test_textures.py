"""The built-in textures task: real photographs, leak-free splits, deterministic, clear errors."""

import importlib.util

import numpy as np
import pytest
import torch

from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.search import textures
from lpm_zoo.search.datasets import load_data
from lpm_zoo.search.textures import (
    BLOCK,
    ORIENTATIONS,
    PATCH,
    TEXTURE_IMAGES,
    boundary_masks,
    compose,
    cut_patches,
    grey_image,
    load_textures,
    skimage_data_dir,
    split_blocks,
)


@pytest.fixture(scope="module")
def task():
    return load_data("textures")


def test_shapes_sizes_and_balance(task):
    assert task.name == "textures" and task.num_classes == len(ORIENTATIONS) == 4
    assert task.x_train.shape[1:] == (3, 16, 16) and task.x_test.shape[1:] == (3, 16, 16)  # default resolution
    assert len(task.y_test) >= 2000  # issue 14: enough test images for half-point differences
    for y in (task.y_train, task.y_test):  # labels drawn uniformly: each orientation about a quarter
        share = torch.bincount(y, minlength=4).float() / len(y)
        assert (share - 0.25).abs().max() < 0.03
    assert torch.equal(task.x_test[:, 0], task.x_test[:, 2])  # grey: three equal channels
    assert not task.flip  # a mirror turns a 45-degree boundary into a 135-degree one


def test_deterministic_given_a_seed_and_different_across_seeds(task):
    again = load_textures(16, seed=0)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.y_test, task.y_test)
    other = load_textures(16, seed=1, train_images=10, test_images=10)
    assert not torch.equal(other.x_test, task.x_test[:10])


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_the_label_is_the_orientation_of_the_boundary(orientation):
    mask = boundary_masks(np.array([orientation] * 50), np.random.default_rng(0))
    assert mask.any((1, 2)).all() and (~mask).any((1, 2)).all()  # the line crosses every image
    # Constant along the line's direction: a 0-degree boundary is vertical, 90 horizontal, 45/135 diagonal.
    shift = {0: (1, 0), 90: (0, 1), 45: (1, -1), 135: (1, 1)}[orientation]
    moved = np.roll(mask, shift, axis=(1, 2))
    inner = (slice(None), slice(1, -1), slice(1, -1))
    assert (moved[inner] == mask[inner]).mean() > 0.97  # only pixels on the line itself may differ


def test_each_image_joins_two_different_photographs():
    pools = [np.full((3, PATCH, PATCH), float(k), dtype=np.float32) for k in range(len(TEXTURE_IMAGES))]
    x, y = compose(pools, 200, np.random.default_rng(3))
    for img in x:
        assert len(np.unique(img)) == 2
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_no_test_pixel_is_seen_in_training():
    folder = skimage_data_dir()
    for label, name in enumerate(TEXTURE_IMAGES):
        rng = np.random.default_rng([0, label])
        img = grey_image(folder / name)
        train_blocks, test_blocks = split_blocks(img.shape, rng)
        assert len(test_blocks) >= 1 and len(train_blocks) >= 3 * len(test_blocks) - 3
        assert not {tuple(c) for c in train_blocks} & {tuple(c) for c in test_blocks}
        masks = {}
        for split, blocks in (("train", train_blocks), ("test", test_blocks)):
            _, origins = cut_patches(img, blocks, 60, rng, name)
            mask = np.zeros(img.shape, dtype=bool)
            for y, x in origins:
                by, bx = (y // BLOCK) * BLOCK, (x // BLOCK) * BLOCK  # the block the patch starts in ...
                assert y + PATCH <= by + BLOCK and x + PATCH <= bx + BLOCK  # ... holds all of it
                assert any((blocks == (by, bx)).all(1))
                mask[y:y + PATCH, x:x + PATCH] = True
            masks[split] = mask
        assert not (masks["train"] & masks["test"]).any(), name


def test_lower_resolutions_keep_the_field_of_view(task):
    full = load_data("textures", resolution=32)
    assert full.x_test.shape[1:] == (3, 32, 32)
    expected = torch.nn.functional.avg_pool2d(full.x_test[:5], 2)
    assert torch.allclose(task.x_test[:5], expected, atol=1e-5)
    assert torch.equal(full.y_test, task.y_test)


@pytest.mark.parametrize("res", [24, 64, 0])
def test_a_resolution_the_task_cannot_provide_is_refused(res):
    with pytest.raises(LpmError, match="not one of 32, 16, 8"):
        load_textures(res)


def test_missing_scikit_image_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(textures.importlib.util, "find_spec",
                        lambda name, *a: None if name == "skimage" else real(name, *a))
    with pytest.raises(LpmError, match="pip install scikit-image"):
        load_textures(32)


def test_cli_refuses_bad_task_input_in_one_line_before_any_epoch(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["search", "--dataset", "textures", "--resolution", "24", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--resolution 24" in err and len(err.strip().splitlines()) == 1 and not (out / "checkpoint.pt").exists()
    assert main(["train", "--genotype", "DARTS_V2", "--dataset", "textures", "--resolution", "12"]) == 2
    assert "--resolution 12" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--genotype", "DARTS_V2", "--dataset", "imagenet"])
    assert e.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_train_runs_on_textures(tmp_path, capsys):
    assert main(["train", "--genotype", "DARTS_V2", "--dataset", "textures", "--epochs", "1", "--max-steps", "2",
                 "--channels", "4", "--layers", "3", "--json", "--no-progress"]) == 0
    import json

    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["dataset"] == "textures" and 0 <= res["test_acc"] <= 1 and res["epochs_done"] == 1
