"""Run the cpu-digits preset for several training-set sizes n, one after the other.

Each run is exactly `genwindow unet train --preset cpu-digits --n N --steps S --seed SEED
--out results/unet/cpu-digits/nN` (folder nN-seedSEED for SEED > 0); rerunning resumes.
Afterwards:

    genwindow unet evaluate results/unet/cpu-digits/n* --out results/unet/cpu-digits

Usage: OMP_NUM_THREADS=1 python benchmarks/unet_cpu_digits.py N:STEPS[:SEED] ...
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from genwindow.unet.config import CPU_DIGITS
from genwindow.unet.trainer import train


def main(pairs: list[str]) -> None:
    torch.set_num_threads(1)
    for pair in pairs:
        n, steps, *rest = (int(v) for v in pair.split(":"))
        seed = rest[0] if rest else 0
        folder = f"n{n}" if seed == 0 else f"n{n}-seed{seed}"
        start = time.perf_counter()
        result = train(replace(CPU_DIGITS, n=n, steps=steps, seed=seed),
                       Path("results/unet/cpu-digits") / folder, progress=False)
        print(f"n={n} seed={seed}: {result.status} at step {result.step} after "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
