"""Run the cpu-digits preset for several training-set sizes n, one after the other.

Each run is exactly `genwindow unet train --preset cpu-digits --n N --steps S --out
results/unet/cpu-digits/nN`; rerunning resumes. Afterwards:

    genwindow unet evaluate results/unet/cpu-digits/n* --out results/unet/cpu-digits

Usage: OMP_NUM_THREADS=1 python benchmarks/unet_cpu_digits.py N:STEPS [N:STEPS ...]
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
        n, steps = (int(v) for v in pair.split(":"))
        start = time.perf_counter()
        result = train(replace(CPU_DIGITS, n=n, steps=steps),
                       Path("results/unet/cpu-digits") / f"n{n}", progress=False)
        print(f"n={n}: {result.status} at step {result.step} after "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
