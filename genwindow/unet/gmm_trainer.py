"""The Gaussian-mixture experiment on the diffusion trainer of genwindow.unet.trainer.

``CPU_GMM`` is the trainer configuration of Bonnaire, Urfin, Biroli, Mézard (2025),
arXiv:2505.17638, supplement B, at d = 8: residual MLP of three blocks of width 128, SGD with
momentum 0.95 and rate 6e−3, full batch, no gradient clipping. The trainer's own loss,
denoiser and sample monitors are off, and two monitors of this module replace them with exact
ones. A schedule reads train_loss, test_loss, gen_gap and score_error (against the exact
score) every ``exact_every`` steps, and f_mem with the KL divergence at log-spaced steps.

The trainer's config.json has no field for the mixture's dimension or mean, nor for the
exact monitors' sampler and cadence (its own ``sampler`` fields belong to the trainer's image
monitors, which are off). ``train_gmm`` keeps these in ``gmm.json`` beside it and rejects a
resume with other values.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from genwindow.unet.config import TrainConfig
from genwindow.unet.gmm import mixture_of_split
from genwindow.unet.gmm_monitors import (ExactMonitor, ddim_sample, euler_maruyama_sample,
                                         fraction_memorized, kl_divergence, kl_time_grid,
                                         score_of_eps)

CPU_GMM = TrainConfig(
    data="gmm", n=128, model="mlp", width=128, blocks=3, dropout=0.0, optimizer="sgd",
    lr=6e-3, momentum=0.95, batch=0, grad_clip=0.0, ema=0.0, steps=20_000,
    checkpoint_every=5000, log_every=500, loss_every="off", denoiser_every="off",
    fmem_every="off", quality_every="off", samples=1000, sampler="ddim", sampler_steps=100)

CPU_GMM_ADAM = replace(CPU_GMM, optimizer="adam", lr=6e-4)


def _eps_function(context):
    device = context.device

    def eps(x, k):
        return context.model(x.float().to(device), k.to(device)).double().cpu()
    return eps


class GMMExactLossMonitor:
    """train_loss, test_loss, gen_gap and score_error against the exact score."""

    name = "gmm_exact"

    def __init__(self, split, alpha_bar, steps, seed: int = 0):
        self.steps = set(steps)
        self.monitor = ExactMonitor(mixture_of_split(split), split.train.double().cpu().numpy(),
                                    split.heldout.double().cpu().numpy(), alpha_bar, seed=seed)

    @torch.no_grad()
    def measure(self, context) -> dict[str, float]:
        eps = _eps_function(context)
        return {**self.monitor.losses(eps), **self.monitor.score_errors(eps)}


class GMMSampleMonitor:
    """f_mem (with its binomial standard error) and KL(P_gen ‖ P0) from generated samples."""

    name = "gmm_samples"

    def __init__(self, split, alpha_bar, steps, samples: int = 1000, sampler: str = "em",
                 sampler_steps: int = 1000, kl_times: int = 48, seed: int = 0):
        self.steps = set(steps)
        self.mixture = mixture_of_split(split)
        self.train = split.train.double().cpu()
        self.alpha_bar = alpha_bar
        self.samples, self.sampler, self.sampler_steps = samples, sampler, sampler_steps
        self.grid = kl_time_grid(alpha_bar, kl_times)
        self.seed = seed

    @torch.no_grad()
    def measure(self, context) -> dict[str, float]:
        eps = _eps_function(context)
        d = self.mixture.d
        if self.sampler == "em":
            x = euler_maruyama_sample(eps, self.alpha_bar, self.samples, d, self.sampler_steps,
                                      self.seed)
        else:
            x = ddim_sample(eps, self.alpha_bar, self.samples, d, self.sampler_steps, self.seed)
        f, f_se = fraction_memorized(x, self.train)
        kl = kl_divergence(x, score_of_eps(eps, self.alpha_bar), self.mixture, self.grid,
                           seed=self.seed + context.step)
        return {"f_mem": f, "f_mem_se": f_se, "kl": kl.kl, "kl_se": kl.kl_se,
                "cross_entropy": kl.cross_entropy, "entropy": kl.entropy}


def train_gmm(config: TrainConfig, out: str | Path, *, d: int = 8, mean: float = 1.0,
              exact_every: int = 500, samples_per_decade: float = 4.0,
              sampler: str = "em", sampler_steps: int = 1000, progress: bool = True):
    """Train ``config`` on the ``gmm`` source with the exact monitors; return the RunResult.

    A batch of 0 means full batch (n), as in the Gaussian-mixture experiment.
    """
    from genwindow.errors import require
    from genwindow.unet import monitors as mon
    from genwindow.unet.data import load_data
    from genwindow.unet.diffusion import Diffusion
    from genwindow.unet.trainer import train

    require(config.data == "gmm", f"--data must be gmm for the exact monitors, got "
                                  f"{config.data!r}")
    require(exact_every >= 1, f"--exact-every must be at least 1, got {exact_every}")
    require(sampler in ("em", "ddim"), f"--sampler must be em or ddim, got {sampler!r}")
    lowest = 2 if sampler == "em" else 1
    require(lowest <= sampler_steps <= 1000,
            f"--sampler-steps must be in {lowest} … 1000 for {sampler}, got {sampler_steps}")
    if config.batch == 0:
        config = replace(config, batch=config.n)
    _check_monitor_options(Path(out), {"d": d, "mean": mean, "exact_every": exact_every,
                                       "sampler": sampler, "sampler_steps": sampler_steps})
    split = load_data("gmm", config.n, config.seed, d=d, mean=mean, heldout=config.heldout)
    alpha_bar = Diffusion(config.diffusion_config()).alpha_bar
    exact_steps = sorted(set(range(0, config.steps + 1, exact_every)) | {config.steps})
    sample_steps = [0] + mon.log_spaced_steps(config.steps, samples_per_decade,
                                              config.monitor_first)
    monitors = [GMMExactLossMonitor(split, alpha_bar, exact_steps, seed=config.seed),
                GMMSampleMonitor(split, alpha_bar, sample_steps, samples=config.samples,
                                 sampler=sampler, sampler_steps=sampler_steps,
                                 seed=config.seed)]
    return train(config, out, progress=progress, extra_monitors=monitors, split=split)


def _check_monitor_options(out: Path, options: dict) -> None:
    """Write ``gmm.json`` in a new run folder, or check it against ``options`` on resume."""
    import json

    from genwindow.errors import ConfigError
    from genwindow.io import write_json

    path = out / "gmm.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except ValueError as error:
            raise ConfigError(f"{path} is not valid JSON ({error}); give a new --out") from error
        if saved != options:
            listed = ", ".join(f"{key} = {saved.get(key)!r} there, {value!r} now"
                               for key, value in options.items() if saved.get(key) != value)
            raise ConfigError(f"{out} was trained with other options ({listed}); rerun with "
                              f"its options to resume it, or give a new --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, options)
