"""The built-in `textures` task: where do two real textures meet? Boundary orientation, from scikit-image's photographs.

Why this task: scikit-learn's digits are too easy to tell a convolution from a skip connection (issue 14),
and so is naming the source photograph of a patch: a network whose normal cells are all `skip_connect`
(one 3x3 stem convolution, then 1x1 convolutions, poolings and a global average) is a bag of local
texture features, and a bag of features names a texture about as well as DARTS_V2 does (measured:
BENCHMARKS.md, "The textures task"). What a bag of features cannot do is *locate*: this task asks for
the orientation of a texture-defined boundary, the filter-rectify-filter problem of texture segmentation.

Each image is 32x32 grey pixels: two patches of two different photographs bundled in scikit-image's wheel
(`skimage/data/*.png|jpg`: brick, grass, gravel, a cat's fur, coffee, coins, the Hubble deep field, a
stained tissue, a retina, ...), each standardised to zero mean and unit variance (so there is no
brightness or contrast edge, only a change of texture), joined along a straight line through a point near
the centre. The label is the line's orientation: 0, 45, 90 or 135 degrees (4 classes, chance 25%).
Finding it needs texture features first and then a spatial filter over them, which stacked
convolutions have and a skip-only cell has not.

Leak-free by construction: every photograph is cut into 64x64 blocks, a seeded draw sends a quarter of
its blocks to the test split and the rest to training, every patch lies inside one block, and test images
are built only from test patches, so no test pixel is ever seen in training. Patches are 32 pixels of
the photograph, downsampled to `resolution` (16 by default; 32, 16 or 8: the same field of view). Almost
flat patches (grey std below 0.03, e.g. the black sky of the Hubble field) are redrawn. Deterministic
given `seed`; nothing is downloaded: the photographs are files of the installed scikit-image package,
located without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.search.data import ImageData

TEXTURE_IMAGES: tuple[str, ...] = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "retina.jpg", "rocket.jpg", "text.png",
)
"""The photographs whose textures are joined (scikit-image 0.26 ships each of them in its wheel)."""

PATCH = 32  # pixels of the photograph in one patch (before downsampling to the task's resolution)
BLOCK = 64  # side of the blocks that are sent whole to train or test
RESOLUTIONS = (32, 16, 8)
TEST_BLOCK_SHARE = 0.25
MIN_PATCH_STD = 0.03  # grey levels in [0, 1]; flatter patches carry no texture and are redrawn
ORIENTATIONS = (0, 45, 90, 135)  # degrees of the boundary line: the class labels, in order
CENTRE_JITTER = 4  # the line passes within this many pixels of the centre (each axis)
TRAIN_IMAGES = 6400
TEST_IMAGES = 2400
PATCHES_PER_IMAGE = {"train": 200, "test": 80}  # per photograph: the pools images are drawn from


def skimage_data_dir() -> Path:
    """The folder of photographs inside the installed scikit-image (found without importing it)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise LpmError("--dataset textures reads the photographs bundled with scikit-image, which is not "
                       "installed; install it (pip install scikit-image) or use --dataset digits")
    folder = Path(spec.origin).parent / "data"
    missing = [n for n in TEXTURE_IMAGES if not (folder / n).is_file()]
    if missing:
        raise LpmError(f"scikit-image at {folder.parent} lacks {len(missing)} of the task's photographs "
                       f"(e.g. {missing[0]}); install a scikit-image that ships them (0.26 does)")
    return folder


def grey_image(path: Path) -> np.ndarray:
    """The photograph as float32 grey levels in [0, 1]."""
    from PIL import Image  # a dependency of matplotlib and scikit-image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def split_blocks(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of the image's 64x64 blocks, shuffled and split into (train, test)."""
    rows, cols = shape[0] // BLOCK, shape[1] // BLOCK
    corners = np.array([(r * BLOCK, c * BLOCK) for r in range(rows) for c in range(cols)])
    corners = corners[rng.permutation(len(corners))]
    n_test = max(1, int(round(TEST_BLOCK_SHARE * len(corners))))
    return corners[n_test:], corners[:n_test]


def cut_patches(img: np.ndarray, corners: np.ndarray, count: int, rng: np.random.Generator,
                name: str) -> tuple[np.ndarray, np.ndarray]:
    """`count` textured PATCHxPATCH patches, each inside one of the given blocks, standardised; and their origins."""
    out = np.empty((count, PATCH, PATCH), dtype=np.float32)
    origins = np.empty((count, 2), dtype=np.int64)
    k = tries = 0
    while k < count:
        tries += 1
        if tries > 50 * count:
            raise LpmError(f"{name}: too few textured patches (std >= {MIN_PATCH_STD}) in its blocks")
        y0, x0 = corners[rng.integers(len(corners))]
        dy, dx = rng.integers(0, BLOCK - PATCH + 1, size=2)
        p = img[y0 + dy:y0 + dy + PATCH, x0 + dx:x0 + dx + PATCH]
        std = float(p.std())
        if std < MIN_PATCH_STD:
            continue
        out[k] = (p - p.mean()) / std
        origins[k] = (y0 + dy, x0 + dx)
        k += 1
    return out, origins


def boundary_masks(orientation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, PATCH, PATCH) booleans: the side of a line of the given orientation through a point near the centre."""
    n = len(orientation)
    theta = np.deg2rad(np.asarray(orientation, dtype=np.float64))[:, None, None]
    centre = (PATCH - 1) / 2 + rng.integers(-CENTRE_JITTER, CENTRE_JITTER + 1, size=(2, n, 1, 1))
    yy, xx = np.mgrid[0:PATCH, 0:PATCH]
    # The line's normal points along theta: a 0-degree boundary is a vertical line, 90 a horizontal one.
    return (xx[None] - centre[1]) * np.cos(theta) + (yy[None] - centre[0]) * np.sin(theta) > 0


def compose(pools: list[np.ndarray], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` images of two textures from two different photographs' pools, and their orientation labels."""
    n_img = len(pools)
    first = rng.integers(n_img, size=count)
    second = (first + rng.integers(1, n_img, size=count)) % n_img  # always another photograph
    labels = rng.integers(len(ORIENTATIONS), size=count)
    masks = boundary_masks(np.asarray(ORIENTATIONS)[labels], rng)
    a = np.stack([pools[i][rng.integers(len(pools[i]))] for i in first])
    b = np.stack([pools[i][rng.integers(len(pools[i]))] for i in second])
    return np.where(masks, a, b).astype(np.float32), labels.astype(np.int64)


def check_texture_resolution(resolution: int | None) -> int:
    """The textures task's image size (`resolution`, None for 16), or a one-line refusal."""
    px = 16 if resolution is None else resolution
    if px not in RESOLUTIONS:
        raise LpmError(f"the textures task cuts {PATCH}x{PATCH} patches; --resolution {clip(px)} is not one "
                       f"of {', '.join(map(str, RESOLUTIONS))}")
    return px


def load_textures(resolution: int = 16, seed: int = 0, train_images: int = TRAIN_IMAGES,
                  test_images: int = TEST_IMAGES) -> ImageData:
    """The textures task: 4 boundary orientations, balanced in expectation; grey repeated to 3 channels."""
    check_texture_resolution(resolution)
    folder = skimage_data_dir()
    pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for k, name in enumerate(TEXTURE_IMAGES):
        rng = np.random.default_rng([seed, k])
        img = grey_image(folder / name)
        train_blocks, test_blocks = split_blocks(img.shape, rng)
        for split, blocks in (("train", train_blocks), ("test", test_blocks)):
            pools[split].append(cut_patches(img, blocks, PATCHES_PER_IMAGE[split], rng, name)[0])

    def split(name: str, count: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = compose(pools[name], count, np.random.default_rng([seed, len(TEXTURE_IMAGES) + stream]))
        t = torch.from_numpy(x).unsqueeze(1)
        if resolution != PATCH:
            t = F.avg_pool2d(t, PATCH // resolution)
        return t.repeat(1, 3, 1, 1).contiguous(), torch.from_numpy(y)

    x_tr, y_tr = split("train", train_images, 0)
    x_te, y_te = split("test", test_images, 1)
    # No flips: a mirror image turns a 45-degree boundary into a 135-degree one. Crops keep the orientation.
    return ImageData("textures", x_tr, y_tr, x_te, y_te, len(ORIENTATIONS), crop_padding=resolution // 8, flip=False)
