"""Which dataset a search or training runs on: `digits` and `textures` (built in) or `cifar10` (from a folder
the user names); `check_resolution` refuses a bad name or size before anything is loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.search.data import ImageData, check_cifar_resolution, check_digits_resolution, load_cifar10, load_digits
from lpm_zoo.search.options import DATASETS
from lpm_zoo.search.textures import check_texture_resolution, load_textures

_RESOLUTION: dict[str, Callable[[int | None], int]] = {
    "digits": check_digits_resolution, "textures": check_texture_resolution, "cifar10": check_cifar_resolution}


def check_resolution(name: str, resolution: int | None) -> int:
    """The image size the dataset `name` is loaded at (`resolution`, None for its default), or a one-line refusal."""
    if name not in _RESOLUTION:
        raise LpmError(f"unknown dataset {clip(name)}; choose one of {', '.join(DATASETS)}")
    return _RESOLUTION[name](resolution)


def load_data(name: str, data_dir: str | Path | None = None, resolution: int | None = None) -> ImageData:
    """The named dataset: `digits` or `textures` (built in) or `cifar10` (from `data_dir`)."""
    px = check_resolution(name, resolution)
    if name == "digits":
        return load_digits(px)
    if name == "textures":
        return load_textures(px)
    if data_dir is None:
        raise LpmError("--dataset cifar10 needs --data-dir DIR holding cifar-10-batches-bin/ "
                       "(the binary version of CIFAR-10)")
    return load_cifar10(data_dir)
