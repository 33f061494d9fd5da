"""Noise-prediction networks ε_θ(x_k, k, c): the paper's U-Net and a residual MLP.

Both take a batch x of shape (B, *shape), the DDPM step index k as a (B,) tensor (any real
value in [0, T)), and optional class labels c of shape (B,) in {0, …, num_classes}; the label
``num_classes`` is the null condition ∅ that condition dropout trains, for classifier-free
guidance (Ho and Salimans, 2022, arXiv:2207.12598). Labels ``None`` means ∅ for every item.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genwindow.errors import require

MODEL_KINDS = ("unet", "mlp")


def timestep_embedding(k: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of step indices k, shape (B,) -> (B, dim) (Vaswani et al., 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=k.device,
                                                           dtype=torch.float32) / half)
    args = k.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class ConditionEmbedding(nn.Module):
    """Time embedding plus, for class-conditional nets, a learned label embedding."""

    def __init__(self, base_dim: int, out_dim: int, num_classes: int):
        super().__init__()
        self.base_dim = base_dim
        self.num_classes = num_classes
        self.time_mlp = nn.Sequential(nn.Linear(base_dim, out_dim), nn.SiLU(),
                                      nn.Linear(out_dim, out_dim))
        # num_classes + 1 rows: the last one is the null condition ∅.
        self.label = nn.Embedding(num_classes + 1, out_dim) if num_classes else None

    def forward(self, k: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        embedding = self.time_mlp(timestep_embedding(k, self.base_dim))
        if self.label is not None:
            if labels is None:
                labels = torch.full_like(k, self.num_classes, dtype=torch.long)
            embedding = embedding + self.label(labels.long())
        return embedding


# ---------------------------------------------------------------------------------------
# Residual MLP

class MLPBlock(nn.Module):
    """h + Linear(SiLU(Linear(LayerNorm(h)) + emb)), the second layer zero-initialised."""

    def __init__(self, width: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.norm2 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        y = self.fc1(self.norm(h)) + self.emb(emb)
        y = self.fc2(self.dropout(F.silu(self.norm2(y))))
        return h + y


class ResidualMLP(nn.Module):
    """Residual MLP on flattened items: in-projection, ``blocks`` blocks of ``width``, out."""

    def __init__(self, shape: tuple[int, ...], width: int = 256, blocks: int = 4,
                 dropout: float = 0.0, num_classes: int = 0):
        super().__init__()
        self.shape = tuple(shape)
        dim = math.prod(self.shape)
        self.embed = ConditionEmbedding(width, width, num_classes)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(MLPBlock(width, width, dropout) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, k: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(k, labels)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h))).reshape(x.shape)


# ---------------------------------------------------------------------------------------
# U-Net

def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv, add the embedding, GroupNorm–SiLU–dropout–conv, skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = _group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads,
                                                 h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))   # (b, heads, hw, c/heads)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """The U-Net of the paper's image experiments, a DDPM-style net (Ho et al., 2020).

    Three resolution levels with channel multipliers ``channel_mult`` of ``width``, two
    residual blocks each, four-head attention at the two coarsest levels, GroupNorm and SiLU,
    dropout, and a sinusoidal time embedding of size 4·width.
    """

    def __init__(self, shape: tuple[int, ...], width: int = 32,
                 channel_mult: tuple[int, ...] = (1, 2, 4), blocks_per_level: int = 2,
                 attention_levels: tuple[int, ...] = (1, 2), heads: int = 4,
                 dropout: float = 0.1, num_classes: int = 0):
        super().__init__()
        require(len(shape) == 3, f"the U-Net needs images of shape (C, H, W), got {shape}; "
                                 f"use --model mlp for vector data")
        channels, height, _ = shape
        factor = 2 ** (len(channel_mult) - 1)
        require(height % factor == 0,
                f"the U-Net with {len(channel_mult)} levels needs image sizes divisible by "
                f"{factor}, got {height}")
        self.shape = tuple(shape)
        emb_dim = 4 * width
        self.embed = ConditionEmbedding(width, emb_dim, num_classes)
        self.inp = nn.Conv2d(channels, width, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [width]
        ch = width
        for level, mult in enumerate(channel_mult):
            for _ in range(blocks_per_level):
                block = nn.ModuleList([ResBlock(ch, width * mult, emb_dim, dropout)])
                ch = width * mult
                if level in attention_levels:
                    block.append(AttentionBlock(ch, heads))
                self.down.append(block)
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout),
                                  AttentionBlock(ch, heads),
                                  ResBlock(ch, ch, emb_dim, dropout)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(blocks_per_level + 1):
                block = nn.ModuleList([ResBlock(ch + skips.pop(), width * mult, emb_dim,
                                                dropout)])
                ch = width * mult
                if level in attention_levels:
                    block.append(AttentionBlock(ch, heads))
                if level != 0 and i == blocks_per_level:
                    block.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    block.append(nn.Conv2d(ch, ch, 3, padding=1))
                self.up.append(block)

        self.out_norm = _group_norm(ch)
        self.out = nn.Conv2d(ch, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, k: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(k, labels)
        h = self.inp(x)
        hs = [h]
        for block in self.down:
            h = _run_block(block, h, emb)
            hs.append(h)
        h = _run_block(self.mid, h, emb)
        for block in self.up:
            h = _run_block(block, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))


def _run_block(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
    return h


# ---------------------------------------------------------------------------------------
# Construction from a configuration

@dataclass(frozen=True)
class ModelConfig:
    """Architecture options; ``blocks`` is used by the MLP, ``dropout`` by both."""

    kind: str = "unet"          # "unet" or "mlp"
    width: int = 32             # U-Net base channels W, or the MLP's hidden width
    blocks: int = 4             # residual blocks of the MLP
    dropout: float = 0.1
    channel_mult: tuple[int, ...] = (1, 2, 4)
    heads: int = 4

    def as_dict(self) -> dict:
        return asdict(self)


def build_model(config: ModelConfig, shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    """Return the network that ``config`` describes for items of ``shape``."""
    require(config.kind in MODEL_KINDS,
            f"--model must be one of {', '.join(MODEL_KINDS)}, got {config.kind!r}")
    require(config.width >= 1, f"--width must be at least 1, got {config.width}")
    require(0.0 <= config.dropout < 1.0, f"--dropout must be in [0, 1), got {config.dropout}")
    if config.kind == "mlp":
        require(config.blocks >= 1, f"--blocks must be at least 1, got {config.blocks}")
        return ResidualMLP(shape, width=config.width, blocks=config.blocks,
                           dropout=config.dropout, num_classes=num_classes)
    require(config.width % config.heads == 0 and config.width % 4 == 0,
            f"--width must be a multiple of 4 and of the {config.heads} attention heads for "
            f"the U-Net, got {config.width}")
    return UNet(shape, width=config.width, channel_mult=tuple(config.channel_mult),
                heads=config.heads, dropout=config.dropout, num_classes=num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
