"""Speed of the cpu-gmm preset and the cost of each exact monitor, on one thread.

    OMP_NUM_THREADS=1 python benchmarks/gmm_speed.py --out results/gmm/speed

For each n: training steps per second of the lean loop's update (full batch, W = 128, three
blocks, SGD with momentum), then the seconds of one call of each monitor, and its share of
training time at the cadence of the sweeps in results/gmm (losses and score error every 500
steps; samples, f_mem and KL at 12 log-spaced steps of a 20,000-step run). Writes a CSV and
prints a table; results are the median of ``--repeats`` timings.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genwindow.io import format_table, write_csv, write_json
from genwindow.unet.data import load_data
from genwindow.unet.gmm import ddpm_alpha_bar, mixture_of_split
from genwindow.unet.gmm_monitors import (ExactMonitor, ddim_sample, euler_maruyama_sample,
                                         fraction_memorized, kl_divergence, kl_time_grid,
                                         score_of_eps)
from genwindow.unet.gmm_run import GMMRunConfig, run_gmm
from genwindow.unet.models import ModelConfig, build_model


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def lean_loop_step_seconds(n: int, steps: int) -> float:
    """Return the training seconds per step of ``run_gmm`` (the loop of ``gmm run`` and
    ``gmm sweep``), read from its own clock, which stops during monitors. The monitors run
    only at the first and last step and are kept small."""
    config = GMMRunConfig(n=n, steps=steps, evals=1, first_eval=steps, monitor_every=steps,
                          samples=50, sampler_steps=2, kl_times=16, heldout=64)
    frame = run_gmm(config)
    return float(frame["train_seconds"].iloc[-1]) / steps


def bench(n: int, steps: int, repeats: int, samples: int) -> list[dict]:
    split = load_data("gmm", n, seed=0)
    mixture = mixture_of_split(split)
    alpha_bar = ddpm_alpha_bar()
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="mlp", width=128, blocks=3, dropout=0.0), (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=6e-3, momentum=0.95)
    sqrt_ab = torch.tensor(np.sqrt(alpha_bar), dtype=torch.float32)
    sqrt_1mab = torch.tensor(np.sqrt(1 - alpha_bar), dtype=torch.float32)
    x0 = split.train

    def train_steps():
        for _ in range(steps):
            k = torch.randint(0, 1000, (n,))
            noise = torch.randn(x0.shape)
            xt = sqrt_ab[k, None] * x0 + sqrt_1mab[k, None] * noise
            loss = (model(xt, k) - noise).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    # The plain loop and genwindow's loop alternate, so that both see the same machine load.
    train_steps()   # warm-up
    plain, lean = [], []
    for _ in range(repeats):
        plain.append(median_seconds(train_steps, 1) / steps)
        lean.append(lean_loop_step_seconds(n, steps))
    step_seconds, lean_seconds = statistics.median(plain), statistics.median(lean)

    def eps(x, k):
        return model(x.float(), k).double()

    monitor = ExactMonitor(mixture, split.train.double().numpy(),
                           split.heldout.double().numpy(), alpha_bar)
    grid = kl_time_grid(alpha_bar, 48)
    x = ddim_sample(eps, alpha_bar, samples, 8, 100)
    score = score_of_eps(eps, alpha_bar)
    with torch.no_grad():
        costs = {
            "losses (train + held-out probes)": (lambda: monitor.losses(eps), "every 500"),
            "score error (20 steps × 512 points)": (lambda: monitor.score_errors(eps),
                                                    "every 500"),
            f"DDIM-100 sampling ({samples})": (
                lambda: ddim_sample(eps, alpha_bar, samples, 8, 100), "12 per run"),
            f"Euler–Maruyama-200 sampling ({samples})": (
                lambda: euler_maruyama_sample(eps, alpha_bar, samples, 8, 200), "12 per run"),
            f"Euler–Maruyama-1000 sampling ({samples})": (
                lambda: euler_maruyama_sample(eps, alpha_bar, samples, 8, 1000), "12 per run"),
            f"f_mem ({samples} samples)": (lambda: fraction_memorized(x, split.train),
                                           "12 per run"),
            f"KL estimate ({samples} samples × 48 times)": (
                lambda: kl_divergence(x, score, mixture, grid), "12 per run"),
        }
        rows = [{"n": n, "item": "training step, plain loop (reference)",
                 "seconds": step_seconds, "steps_per_second": 1 / step_seconds,
                 "cadence": "every step", "share_of_training": float("nan")},
                {"n": n, "item": "training step, genwindow gmm run",
                 "seconds": lean_seconds, "steps_per_second": 1 / lean_seconds,
                 "cadence": "every step", "share_of_training": float("nan")}]
        run_steps = 20_000 * n / 128
        for name, (action, cadence) in costs.items():
            seconds = median_seconds(action, repeats)
            calls = run_steps / 500 if cadence == "every 500" else 12
            rows.append({"n": n, "item": name, "seconds": seconds,
                         "steps_per_second": float("nan"), "cadence": cadence,
                         "share_of_training": seconds * calls / (run_steps * step_seconds)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="128,512,1024", help="training-set sizes")
    parser.add_argument("--steps", type=int, default=200, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per item (median)")
    parser.add_argument("--samples", type=int, default=1000, help="generated samples")
    parser.add_argument("--out", default="results/gmm/speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in [int(v) for v in args.n.split(",")]:
        rows += bench(n, args.steps, args.repeats, args.samples)
    frame = pd.DataFrame(rows)
    out = Path(args.out)
    write_csv(out / "gmm_speed.csv", frame)
    write_json(out / "machine.json", {"processor": platform.processor(),
                                      "machine": platform.machine(),
                                      "torch": torch.__version__, "threads": 1})
    print(format_table(frame, floatfmt=".3g"))


if __name__ == "__main__":
    main()
