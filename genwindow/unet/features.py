"""Feature encoders for sample quality: one genwindow trains itself, or a local Inception.

The built-in encoder is a small convolutional classifier trained once per dataset on the
images that every split reserves for it (never part of a training set). Sources with class
labels train it on the labels; sources without train it to predict which of four rotations
was applied (Gidaris, Singh, Komodakis, 2018, arXiv:1803.07728). Its penultimate layer (64
features) is the feature space of the Fréchet distance and KID. Trained encoders are cached
under the SHA-256 of their training images and settings, so every run of a dataset shares one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genwindow.errors import ConfigError
from genwindow.unet.data import DataSplit, content_hash

ENCODER_VERSION = 1
ENCODER_EPOCHS = 30
FEATURE_DIM = 64


def cache_dir() -> Path:
    """Return the encoder cache folder: $GENWINDOW_CACHE, else ~/.cache/genwindow."""
    root = os.environ.get("GENWINDOW_CACHE") or Path.home() / ".cache" / "genwindow"
    return Path(root) / "encoders"


class SmallEncoder(nn.Module):
    """Three convolutions and global average pooling to 64 features, then a linear head."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64), nn.SiLU(),
            nn.Conv2d(64, FEATURE_DIM, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(FEATURE_DIM, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        self.eval()
        device = next(self.parameters()).device
        parts = [self.body(x[i:i + batch_size].to(device).float()).cpu()
                 for i in range(0, len(x), batch_size)]
        return torch.cat(parts).double().numpy()


def _rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rotated = torch.cat([torch.rot90(images, r, dims=(2, 3)) for r in range(4)])
    labels = torch.arange(4).repeat_interleave(len(images))
    return rotated, labels


def train_encoder(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int,
                  seed: int = 0, epochs: int = ENCODER_EPOCHS) -> SmallEncoder:
    """Train the small encoder on CPU, deterministically for a given seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if labels is None:
            inputs, targets = _rotations(images.cpu().float())
            classes = 4
        else:
            inputs, targets = images.cpu().float(), labels.cpu().long()
            classes = num_classes
        model = SmallEncoder(images.shape[1], classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        batch = min(128, len(inputs))
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), batch):
                rows = order[start:start + batch]
                loss = F.cross_entropy(model(inputs[rows]), targets[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    model.eval()
    return model


def load_or_train_encoder(split: DataSplit, seed: int = 0) -> tuple[SmallEncoder, str]:
    """Return the cached encoder of ``split``'s reserved images, training it on a miss."""
    if split.encoder_images is None or len(split.encoder_images) < 2:
        raise ConfigError(f"data source {split.name} reserves no encoder images, so the "
                          f"quality monitor has no feature encoder; set --quality-every off")
    if not split.is_image:
        raise ConfigError(f"the quality monitor needs images; {split.name} has items of "
                          f"shape {split.shape}; set --quality-every off")
    tensors = [split.encoder_images]
    if split.encoder_labels is not None:
        tensors.append(split.encoder_labels.float())
    key = content_hash(*tensors)[:24] + f"-v{ENCODER_VERSION}-s{seed}"
    path = cache_dir() / f"{key}.pt"
    classes = split.num_classes if split.encoder_labels is not None else 4
    if path.exists():
        model = SmallEncoder(split.shape[0], classes)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        return model, key
    model = train_encoder(split.encoder_images, split.encoder_labels, split.num_classes, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model, key


class InceptionFeatures:
    """Features of a local TorchScript Inception network, for the usual FID.

    The file must be a TorchScript module that maps uint8 images (B, 3, H, W) to 2048
    features, like the ``inception-2015-12-05.pt`` file that NVlabs' StyleGAN2-ADA metrics
    use (called with ``return_features=True``); modules without that keyword are called with
    the images alone. Nothing is downloaded.
    """

    def __init__(self, path: str | Path, device="cpu"):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--inception {path}: file not found; give the path of a "
                              f"TorchScript Inception network")
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"--inception {path}: not a TorchScript module ({error})")
        self.device = device

    @torch.no_grad()
    def __call__(self, images01: torch.Tensor, batch_size: int = 100) -> np.ndarray:
        """Return features of images with values in [0, 1], shape (B, C, H, W)."""
        parts = []
        for start in range(0, len(images01), batch_size):
            x = images01[start:start + batch_size]
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = (x.clamp(0, 1) * 255).round().to(torch.uint8).to(self.device)
            try:
                out = self.model(x, return_features=True)
            except RuntimeError:
                out = self.model(x)
            parts.append(out.float().cpu())
        return torch.cat(parts).double().numpy()
