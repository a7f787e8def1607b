"""Image data for search and evaluation: CIFAR-10 from a local binary archive, scikit-learn's digits, or textures.

Everything is held in memory as float tensors (normalised, NCHW); batches come from seeded
permutations and augmentation draws from an explicit `torch.Generator`, so a run resumed from a
checkpoint sees exactly the batches it would have seen. CIFAR-10 is read from the *binary* version
(`cifar-10-batches-bin/*.bin`, records of 1 label byte + 3072 pixel bytes); nothing is unpickled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.search.options import DATASET_CLASSES

CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_TRAIN = tuple(f"data_batch_{k}.bin" for k in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
DIGITS_MAX_RESOLUTION = 64  # 8x8 images upsampled further hold nothing new; at 64 the set is 88 MB of floats


@dataclass
class ImageData:
    """Train and test splits as tensors, plus the augmentation that suits them."""

    name: str
    x_train: torch.Tensor  # (N, 3, H, W) float32, normalised
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    crop_padding: int  # random-crop padding of training batches (DARTS: 4 on CIFAR)
    flip: bool  # random horizontal flips (not for digits)

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    def fingerprint(self) -> str:
        """SHA-256 of both splits' images and labels (shapes, dtypes and bytes; hashed in place, not copied): the
        same on two machines only when they trained on the same data, so an accuracy that differs between CPUs
        says whether the data did."""
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            arr = t.detach().cpu().contiguous().numpy()
            h.update(f"{arr.shape}{arr.dtype}".encode())
            h.update(arr)
        return h.hexdigest()


def check_digits_resolution(resolution: int | None) -> int:
    """The digits' image size (`resolution`, None for 16), or a one-line refusal."""
    px = 16 if resolution is None else resolution  # `is None`, not falsy: --resolution 0 is refused
    if not 8 <= px <= DIGITS_MAX_RESOLUTION or px % 8:
        raise LpmError(f"digits resolution must be a multiple of 8 from 8 to {DIGITS_MAX_RESOLUTION} "
                       f"(8, 16, 32, ...), got {clip(px)}")
    return px


def check_cifar_resolution(resolution: int | None) -> int:
    """CIFAR-10's image size: 32 (None for the default), or a one-line refusal."""
    if resolution not in (None, 32):
        raise LpmError(f"CIFAR-10 images are 32x32; --resolution {clip(resolution)} is not supported")
    return 32


def load_digits(resolution: int = 16, test_fraction: float = 0.2) -> ImageData:
    """scikit-learn's 8x8 digits, upsampled to `resolution` and repeated to 3 channels; a fixed test split."""
    from sklearn.datasets import load_digits as _sk_digits

    check_digits_resolution(resolution)
    d = _sk_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    if resolution != 8:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = ((x - 0.5) / 0.5).repeat(1, 3, 1, 1).contiguous()
    y = torch.as_tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))  # fixed split
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return ImageData("digits", x[train], y[train], x[test], y[test], DATASET_CLASSES["digits"],
                     crop_padding=resolution // 8, flip=False)


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one CIFAR-10 binary batch file."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise LpmError(f"{path} is not a CIFAR-10 binary batch: its size {raw.size} is not a multiple of "
                       f"{_CIFAR_RECORD} bytes (1 label + 3072 pixels)")
    rec = raw.reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise LpmError(f"{path} holds label {labels.max()}; CIFAR-10 labels are 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _find_cifar_dir(data_dir: Path) -> Path:
    for cand in (data_dir, data_dir / "cifar-10-batches-bin"):
        if (cand / _CIFAR_TEST).is_file() and all((cand / f).is_file() for f in _CIFAR_TRAIN):
            return cand
    if (data_dir / "cifar-10-batches-py").is_dir() or (data_dir / "data_batch_1").is_file():
        raise LpmError(f"{data_dir} holds the Python (pickled) version of CIFAR-10, which lpm does not unpickle; "
                       "get the binary version (cifar-10-binary.tar.gz) and extract it there")
    raise LpmError(f"CIFAR-10 not found in {data_dir}: expected cifar-10-batches-bin/ with data_batch_1..5.bin "
                   "and test_batch.bin (extract cifar-10-binary.tar.gz there)")


def load_cifar10(data_dir: str | Path) -> ImageData:
    """CIFAR-10 (50k train, 10k test) from the binary archive layout under `data_dir`, normalised."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise LpmError(f"--data-dir {data_dir} does not exist; point it at the folder holding cifar-10-batches-bin/")
    root = _find_cifar_dir(data_dir)
    parts = [read_cifar_bin(root / f) for f in _CIFAR_TRAIN]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = read_cifar_bin(root / _CIFAR_TEST)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def norm(a: np.ndarray) -> torch.Tensor:
        return (torch.as_tensor(a, dtype=torch.float32) / 255.0 - mean) / std

    return ImageData("cifar10", norm(x_tr), torch.as_tensor(y_tr), norm(x_te), torch.as_tensor(y_te),
                     DATASET_CLASSES["cifar10"], crop_padding=4, flip=True)


def split_halves(n: int, portion: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS' split of the training set: the first `portion` trains w, the rest trains α."""
    k = int(np.floor(portion * n))
    return torch.arange(k), torch.arange(k, n)


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator,
            cutout: int = 0) -> torch.Tensor:
    """Random crop with zero padding, optional horizontal flip and cutout, drawn from `generator`."""
    n, c, h, w = x.shape
    if padding > 0:
        xp = F.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :]
        x = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    if cutout > 0:  # DARTS' Cutout: a length x length square (clipped at the border) set to 0
        cy = torch.randint(0, h, (n,), generator=generator)[:, None, None]
        cx = torch.randint(0, w, (n,), generator=generator)[:, None, None]
        yy = torch.arange(h)[None, :, None]
        xx = torch.arange(w)[None, None, :]
        half = cutout // 2
        hole = (yy >= cy - half) & (yy < cy + half) & (xx >= cx - half) & (xx < cx + half)
        x = x * (~hole).unsqueeze(1).to(x.dtype)
    return x


def batches(index: torch.Tensor, batch_size: int, epoch_seed: int) -> list[torch.Tensor]:
    """The epoch's batches of `index`, shuffled by a generator seeded from `epoch_seed` (reproducible)."""
    perm = index[torch.randperm(len(index), generator=torch.Generator().manual_seed(epoch_seed))]
    return [perm[k:k + batch_size] for k in range(0, len(perm), batch_size)]


def iterate(data: ImageData, index: torch.Tensor, batch_size: int, epoch_seed: int, generator: torch.Generator,
            train: bool = True, cutout: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches of the training tensors, augmented when `train`, starting at batch `start`."""
    for b in batches(index, batch_size, epoch_seed)[start:]:
        x = data.x_train[b]
        if train:
            x = augment(x, data.crop_padding, data.flip, generator, cutout)
        yield x, data.y_train[b]
