"""Search for the cpu-digits protocol: how fast does a residual MLP memorize the 8×8 digits?

Each named variant trains on n = 16 digits (one CPU thread) with only the loss and f_mem
monitors on, and writes its run folder under results/unet/protocol/VARIANT. Usage:

    OMP_NUM_THREADS=1 python benchmarks/unet_protocol_search.py VARIANT [VARIANT ...]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from genwindow.unet.config import TrainConfig
from genwindow.unet.trainer import train

BASE = TrainConfig(n=16, steps=8000, loss_every="log:4", denoiser_every="off",
                   fmem_every="log:4", quality_every="off", monitor_first=500, samples=200,
                   log_every=500, checkpoint_every=2000, snapshots_per_decade=1.0)

VARIANTS = {
    # Starting point: batch = n = 16, Adam 1e-3, width 256.
    "w256-adam1e-3-b16": replace(BASE, width=256, lr=1e-3, noise_repeats=1),
    # The same without gradient clipping.
    "w256-adam1e-3-b16-noclip": replace(BASE, width=256, lr=1e-3, noise_repeats=1,
                                        grad_clip=0.0),
    # Width 512 with clipping, batch 16 items.
    "w512-adam1e-3-b16": replace(BASE, width=512, lr=1e-3, noise_repeats=1),
    # Width 512, every item with 16 noise draws per step (256 rows per batch).
    "w512-adam1e-3-r16": replace(BASE, width=512, lr=1e-3, noise_repeats=16),
    "w512-adam3e-3-r16": replace(BASE, width=512, lr=3e-3, noise_repeats=16),
    "w256-adam1e-3-r16": replace(BASE, width=256, lr=1e-3, noise_repeats=16),
    "w512-adam1e-3-r4": replace(BASE, width=512, lr=1e-3, noise_repeats=4),
    "w512-sgd1e-2-r16": replace(BASE, width=512, optimizer="sgd", lr=1e-2, noise_repeats=16),
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    for name in names:
        start = time.perf_counter()
        result = train(VARIANTS[name], Path("results/unet/protocol") / name, progress=False)
        print(f"{name}: {result.status} at step {result.step} in "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
