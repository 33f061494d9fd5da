"""Training runs of the Gaussian-mixture experiment with exact monitors.

The setup of Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638, supplement B: data
from the ``gmm`` source, the DDPM forward process (linear betas 1e−4 … 2e−2, T = 1000), a
residual MLP of three blocks of width W with a sinusoidal time embedding, full-batch SGD with
momentum 0.95 and learning rate 6e−3 (or Adam 6e−4). Every step draws a fresh DDPM step and
noise for each training point. A schedule of genwindow.schedules sets the learning-rate
factor of every step and may stop the run. It receives train_loss, test_loss, gen_gap and
score_error every ``monitor_every`` steps, and f_mem at the evaluation steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from genwindow.errors import require

OPTIMIZERS = ("sgd", "adam")
SAMPLERS = ("ddim", "em")


@dataclass(frozen=True)
class GMMRunConfig:
    """One training run; ``None`` in ``out`` keeps everything in memory."""

    d: int = 8                   # data dimension
    mean: float = 1.0            # µ = mean · 1_d
    n: int = 128                 # training points
    seed: int = 0                # data, initialisation, noise and probes
    width: int = 128             # MLP width W
    blocks: int = 3              # residual blocks
    optimizer: str = "sgd"       # "sgd" (with momentum) or "adam"
    lr: float = 6e-3             # base learning rate
    momentum: float = 0.95       # SGD momentum
    steps: int = 40_000          # step budget
    schedule: str = "constant"   # a genwindow.schedules spec
    evals: int = 14              # log-spaced steps that measure f_mem and KL
    first_eval: int = 100        # first of them (step 0 is always measured too)
    monitor_every: int = 250     # steps between loss and score-error measurements
    samples: int = 1000          # generated samples for f_mem and KL
    sampler: str = "em"          # "em" (Euler–Maruyama) or "ddim"
    sampler_steps: int = 1000    # sampler steps (DDPM step times evenly spaced in index)
    kl_times: int = 48           # diffusion times of the entropy integral
    heldout: int = 2048          # held-out points for test_loss
    fmem_level: float = 0.1      # f_mem level whose crossing defines tau_mem

    def check(self) -> "GMMRunConfig":
        """Return self, or raise ConfigError naming the first invalid option."""
        for name in ("d", "n", "width", "blocks", "steps", "evals", "first_eval",
                     "monitor_every", "samples", "sampler_steps", "kl_times", "heldout"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1,
                    f"--{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        require(self.n >= 2, f"--n must be at least 2 for f_mem, got {self.n}")
        require(self.optimizer in OPTIMIZERS,
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        require(self.sampler in SAMPLERS,
                f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        require(math.isfinite(self.lr) and self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        require(0 < self.fmem_level < 1,
                f"--fmem-level must be in (0, 1), got {self.fmem_level}")
        require(2 <= self.sampler_steps <= 1000,
                f"--sampler-steps must be in 2 … 1000, got {self.sampler_steps}")
        require(isinstance(self.seed, int) and self.seed >= 0,
                f"--seed must be an integer ≥ 0, got {self.seed!r}")
        require(self.samples >= 2, f"--samples must be at least 2 for the KL estimate and "
                                   f"its standard error, got {self.samples}")
        require(self.kl_times >= MIN_KL_TIMES,
                f"--kl-times must be at least {MIN_KL_TIMES}, because the entropy integral "
                f"over fewer diffusion times is biased; got {self.kl_times}")
        from genwindow.resources import check_memory

        check_memory(self.estimate_bytes(), f"full-batch training on n = {self.n} points",
                     "--n")
        return self

    def estimate_bytes(self) -> float:
        """Return an estimate of the peak memory of a run: the float32 activations of a
        full-batch step (about 6 W-wide tensors per block, kept for the backward pass) plus
        the training data and the float64 loss probes."""
        per_point = 4 * self.width * (6 * self.blocks + 4) + 64 * self.d
        probes = 4 * (self.n + self.heldout) * self.d * 8 * 3
        return float(self.n * per_point + probes)


# The entropy of P_gen is an integral over diffusion time. With the exact score and 1,000
# samples of P0 at d = 8, the KL estimate is −0.57 ± 0.23 nats at 8 log-spaced times,
# −0.10 ± 0.15 at 16 and −0.01 ± 0.13 at 48, so fewer than 16 times bias it
# (tests/test_gmm_exact.py repeats the 8- and 16-time cases).
MIN_KL_TIMES = 16

# The metrics that the loop passes to a schedule. gen_gap and rel_gap are derived from the
# two losses, and f_mem and kl arrive only at the log-spaced evaluation steps.
SCHEDULE_METRICS = ("train_loss", "test_loss", "gen_gap", "rel_gap", "score_error", "f_mem",
                    "kl")


def make_run_schedule(config: "GMMRunConfig"):
    """Build the schedule of ``config``, or raise ConfigError naming --schedule when its spec
    is invalid or its controller reads a metric this loop does not measure."""
    from genwindow.schedules.registry import make_schedule

    schedule = make_schedule(config.schedule, total_steps=config.steps, n=config.n,
                             psi_n=config.n / config.d)
    metric = getattr(schedule, "metric", None)
    require(metric is None or metric in SCHEDULE_METRICS,
            f"--schedule {config.schedule!r} reads metric {metric!r}, which gmm runs do not "
            f"measure; use one of {', '.join(SCHEDULE_METRICS)}")
    return schedule


PRESETS = {
    # d = 8, W = 128: generalizes within a few thousand steps and memorizes within minutes
    # on one CPU thread for n of a few hundred.
    "cpu-gmm": GMMRunConfig(),
    "cpu-gmm-adam": GMMRunConfig(optimizer="adam", lr=6e-4),
}


def eval_steps(config: GMMRunConfig) -> np.ndarray:
    """Return the steps at which f_mem and KL are measured: 0, then log-spaced."""
    first = min(config.first_eval, config.steps)
    spaced = np.geomspace(first, config.steps, config.evals).round().astype(int)
    return np.unique(np.concatenate([[0], spaced]))


def run_gmm(config: GMMRunConfig, out: str | Path | None = None, progress=None,
            checkpoint_every: int = 1000):
    """Train one network and return its monitor log as a pandas DataFrame.

    With ``out``, writes config.json, metrics.jsonl (a line per measurement, as it happens)
    and metrics.csv there. ``progress(row)`` is called with each measured row. Every
    ``checkpoint_every`` steps the whole state (network, optimizer, schedule, noise
    generator, log) goes to ``checkpoint.pt``, so that calling again with the same config
    after an interruption resumes there and logs the same rows as an uninterrupted run
    (all but the clock columns). The checkpoint is removed when the run finishes.
    """
    import pandas as pd
    import torch

    from genwindow.io import append_jsonl, write_csv, write_json
    from genwindow.unet.data import load_data
    from genwindow.unet.gmm import ddpm_alpha_bar, mixture_of_split
    from genwindow.unet.gmm_monitors import ExactMonitor
    from genwindow.unet.models import ModelConfig, build_model

    config.check()
    schedule = make_run_schedule(config)
    split = load_data("gmm", config.n, seed=config.seed, d=config.d, mean=config.mean,
                      heldout=config.heldout)
    mixture = mixture_of_split(split)
    alpha_bar = ddpm_alpha_bar()
    total = len(alpha_bar)

    torch.manual_seed(config.seed)
    model = build_model(ModelConfig(kind="mlp", width=config.width, blocks=config.blocks,
                                    dropout=0.0), (config.d,))
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    monitor = ExactMonitor(mixture, split.train.double().numpy(),
                           split.heldout.double().numpy(), alpha_bar, seed=config.seed)
    evaluator = _Evaluator(config, mixture, split.train, alpha_bar)

    sqrt_ab = torch.tensor(np.sqrt(alpha_bar), dtype=torch.float32)
    sqrt_1mab = torch.tensor(np.sqrt(1 - alpha_bar), dtype=torch.float32)
    x0 = split.train
    generator = torch.Generator().manual_seed(config.seed + 1_000_003)

    def eps_fn(x, k):
        return model(x.float(), k).double()

    evals = set(eval_steps(config).tolist())
    rows = []
    train_seconds = monitor_seconds = 0.0
    lr_factor = 1.0
    lr_time = 0.0   # Σ of the learning-rate factors so far: training time at the base rate
    stopped = False
    step = 0
    saved = _load_checkpoint(out, config) if out is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        generator.set_state(saved["generator"])
        rows, step = saved["rows"], saved["step"]
        lr_factor, lr_time = saved["lr_factor"], saved["lr_time"]
        train_seconds, monitor_seconds = saved["train_seconds"], saved["monitor_seconds"]
    if out is not None:
        out = Path(out)
        write_json(out / "config.json", {**asdict(config), "mixture": mixture.to_dict()})
        # Rows logged after the checkpoint are measured again, so the log restarts from it.
        (out / "metrics.jsonl").unlink(missing_ok=True)
        for row in rows:
            append_jsonl(out / "metrics.jsonl", row)

    while True:
        if out is not None and step > 0 and step % checkpoint_every == 0:
            _save_checkpoint(out, {
                "config": asdict(config), "step": step, "rows": rows,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "generator": generator.get_state(),
                "lr_factor": lr_factor, "lr_time": lr_time,
                "train_seconds": train_seconds, "monitor_seconds": monitor_seconds})
        # Monitors at this step (before its update); the schedule receives what they measured.
        metrics = {}
        final = step == config.steps or stopped
        if step % config.monitor_every == 0 or step in evals or final:
            started = time.perf_counter()
            model.eval()
            metrics.update(monitor.losses(eps_fn))
            score = monitor.score_errors(eps_fn)
            metrics["score_error"] = score["score_error"]
            if step in evals or final:
                metrics.update(evaluator(eps_fn, step))
            model.train()
            monitor_seconds += time.perf_counter() - started
            row = {"step": step, "lr_factor": lr_factor, "lr_time": lr_time, **metrics,
                   "train_seconds": train_seconds, "monitor_seconds": monitor_seconds}
            if step in evals or final:
                row.update({k: v for k, v in score.items() if k != "score_error"})
            rows.append(row)
            if out is not None:
                append_jsonl(out / "metrics.jsonl", row)
            if progress is not None:
                progress(row)
        if final:
            break

        action = schedule.update(step, {k: v for k, v in metrics.items()
                                        if k in SCHEDULE_METRICS})
        lr_factor = float(action.lr_factor)
        lr_time += lr_factor
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor

        started = time.perf_counter()
        k = torch.randint(0, total, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        xt = sqrt_ab[k, None] * x0 + sqrt_1mab[k, None] * noise
        loss = (model(xt, k) - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_seconds += time.perf_counter() - started
        step += 1
        stopped = bool(action.stop)

    frame = pd.DataFrame(rows)
    if out is not None:
        write_csv(out / "metrics.csv", frame)
        (out / CHECKPOINT).unlink(missing_ok=True)
    return frame


CHECKPOINT = "checkpoint.pt"


def _save_checkpoint(out: Path, state: dict) -> None:
    """Write ``state`` to out/checkpoint.pt atomically (a temporary file, then a rename)."""
    import os

    import torch

    partial = out / (CHECKPOINT + ".partial")
    torch.save(state, partial)
    os.replace(partial, out / CHECKPOINT)


def _load_checkpoint(out: str | Path, config: GMMRunConfig) -> dict | None:
    """Return the checkpoint of an interrupted run of ``config`` in ``out``, or None.

    Raises ConfigError when the checkpoint belongs to another configuration or cannot be
    read, because resuming it would mix two runs in one log.
    """
    import torch

    from genwindow.errors import ConfigError

    path = Path(out) / CHECKPOINT
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=False)
    except Exception as error:   # a truncated or foreign file
        raise ConfigError(f"{path} is invalid or truncated ({error}); delete it to start "
                          f"the run again") from error
    listed = config_differences(saved["config"], config)
    if listed:
        raise ConfigError(f"{out} contains an interrupted run with other options ({listed}); "
                          f"rerun with its options to resume it, or give a new --out")
    return saved


def config_differences(saved: dict, config: GMMRunConfig) -> str:
    """Return the options whose value in ``saved`` (a run's config.json) differs from
    ``config``, as "name = saved there, current now" joined by commas. The string is empty
    when none differs."""
    return ", ".join(f"{key} = {saved.get(key)!r} there, {value!r} now"
                     for key, value in asdict(config).items() if saved.get(key) != value)


class _Evaluator:
    """Generate samples with fixed seeds and measure f_mem and the KL divergence to P0."""

    def __init__(self, config: GMMRunConfig, mixture, train, alpha_bar):
        from genwindow.unet.gmm_monitors import kl_time_grid

        self.config = config
        self.mixture = mixture
        self.train = train.double()
        self.alpha_bar = alpha_bar
        self.grid = kl_time_grid(alpha_bar, config.kl_times)

    def __call__(self, eps_fn, step: int) -> dict[str, float]:
        from genwindow.unet.gmm_monitors import (ddim_sample, euler_maruyama_sample,
                                                 fraction_memorized, kl_divergence,
                                                 score_of_eps)

        c = self.config
        # The same sampler seed at every step, so curves differ only through the network.
        if c.sampler == "ddim":
            x = ddim_sample(eps_fn, self.alpha_bar, c.samples, c.d, c.sampler_steps, c.seed)
        else:
            x = euler_maruyama_sample(eps_fn, self.alpha_bar, c.samples, c.d,
                                      c.sampler_steps, c.seed)
        f, f_se = fraction_memorized(x, self.train)
        kl = kl_divergence(x, score_of_eps(eps_fn, self.alpha_bar), self.mixture, self.grid,
                           seed=c.seed + step)
        low, high = wilson_interval(f, c.samples)
        return {"f_mem": f, "f_mem_se": f_se, "f_mem_low": low, "f_mem_high": high,
                "kl": kl.kl, "kl_se": kl.kl_se, "cross_entropy": kl.cross_entropy,
                "entropy": kl.entropy, "entropy_se": kl.entropy_se}


def wilson_interval(fraction: float, count: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson 95% interval of a binomial proportion (exactly 0 when f = 0)."""
    centre = (fraction + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(fraction * (1 - fraction) / count + z * z / (4 * count**2)) \
        / (1 + z * z / count)
    return (0.0 if fraction == 0 else max(0.0, centre - half)), min(1.0, centre + half)


def with_options(config: GMMRunConfig, **options) -> GMMRunConfig:
    """Return ``config`` with the options that are not None replaced."""
    return replace(config, **{k: v for k, v in options.items() if v is not None})
