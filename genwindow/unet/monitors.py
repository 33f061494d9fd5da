"""Monitors that watch generalization and memorization while a diffusion model trains.

A monitor has a ``name``, a set of ``steps`` at which it runs (its cadence) and a
``measure(context)`` that returns named float values. The trainer runs the due monitors
before the optimizer step, writes their values to the log and hands them to the schedule.
Every monitor is deterministic: fixed probe items, fixed probe noises, fixed sample seeds,
so a resumed run measures exactly what an uninterrupted one does.

Extra monitors (for example the exact ones of the Gaussian-mixture source) follow the same
protocol and are passed to ``genwindow.unet.trainer.train``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from genwindow.errors import ConfigError, require
from genwindow.unet import metrics
from genwindow.unet.data import DataSplit
from genwindow.unet.diffusion import Diffusion

# Diffusion times of the loss and denoiser probes; t = 0.01 is DDPM index 40 with the
# default schedule, the low-noise end where copying shows first.
DEFAULT_PROBE_TIMES = (0.01, 0.05, 0.2, 1.0)


def log_spaced_steps(total: int, per_decade: float, first: int = 1) -> list[int]:
    """Return the distinct integer steps first·10^(j/per_decade) up to ``total``, with 0
    and ``total`` included."""
    require(per_decade > 0, f"points per decade must be positive, got {per_decade}")
    first = max(1, min(first, total))
    count = int(math.ceil(per_decade * math.log10(max(total / first, 1.0)))) + 1
    values = np.unique(np.round(first * np.logspace(
        0, math.log10(max(total / first, 1.0)), count)).astype(np.int64))
    return sorted({0, total, *(int(v) for v in values if v <= total)})


def parse_cadence(spec: str, total: int, option: str, first: int = 1) -> list[int]:
    """Turn ``log:P`` (P points per decade), ``every:N`` or ``off`` into a list of steps."""
    spec = spec.strip()
    if spec == "off":
        return []
    kind, _, value = spec.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind == "log" and number > 0:
        return log_spaced_steps(total, number, first)
    if kind == "every" and number >= 1 and number == int(number):
        return sorted(set(range(0, total + 1, int(number))) | {total})
    raise ConfigError(f"{option} must be 'log:P' (P > 0 points per decade), 'every:N' "
                      f"(N ≥ 1 steps) or 'off', got {spec!r}")


@dataclass
class MonitorContext:
    """Inputs of a monitor: the model to measure (EMA weights when enabled) in eval mode,
    and the run's data and diffusion."""

    model: torch.nn.Module
    diffusion: Diffusion
    split: DataSplit
    device: torch.device
    step: int
    autocast: bool = False
    cache: dict = field(default_factory=dict)   # shared by monitors of the same step


class Monitor(Protocol):
    name: str
    steps: set[int]

    def measure(self, context: MonitorContext) -> dict[str, float]: ...


def _probe_batch(items: torch.Tensor, labels: torch.Tensor | None, probes: int):
    """Repeat ``items`` cyclically to ``probes`` rows, so small sets get several noises."""
    count = max(probes, len(items))
    rows = torch.arange(count) % len(items)
    return items[rows], None if labels is None else labels[rows]


def _model_eps(context: MonitorContext, x: torch.Tensor, k: torch.Tensor,
               labels: torch.Tensor | None, batch_size: int = 1024) -> torch.Tensor:
    outputs = []
    with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=context.autocast):
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            outputs.append(context.model(x[rows], k[rows], None if labels is None
                                         else labels[rows]).float())
    return torch.cat(outputs)


def _time_key(t: float) -> str:
    return f"{t:g}"


class LossMonitor:
    """Training and held-out denoising losses at fixed diffusion times with fixed noises.

    Reports ``train_loss_t{t}``, ``test_loss_t{t}``, ``gen_gap_t{t}`` per time, and
    ``train_loss``, ``test_loss``, ``gen_gap`` averaged over the times.
    """

    name = "losses"

    def __init__(self, split: DataSplit, diffusion: Diffusion, steps: list[int],
                 times=DEFAULT_PROBE_TIMES, probes: int = 512, seed: int = 0):
        self.steps = set(steps)
        self.times = tuple(float(t) for t in times)
        self.indices = [int(k) for k in diffusion.index_of_time(self.times)]
        generator = torch.Generator().manual_seed(seed + 101)
        self.sets = {}
        for role, items, labels in (("train", split.train, split.train_labels),
                                    ("test", split.heldout, split.heldout_labels)):
            x0, y = _probe_batch(items.cpu(), None if labels is None else labels.cpu(), probes)
            noises = [torch.randn(x0.shape, generator=generator) for _ in self.times]
            self.sets[role] = (x0, y, noises)

    @torch.no_grad()
    def measure(self, context: MonitorContext) -> dict[str, float]:
        values: dict[str, float] = {}
        device = context.device
        for role, (x0, labels, noises) in self.sets.items():
            x0 = x0.to(device)
            labels = None if labels is None else labels.to(device)
            losses = []
            for t, k, noise in zip(self.times, self.indices, noises):
                noise = noise.to(device)
                kk = torch.full((len(x0),), k, device=device, dtype=torch.long)
                eps = _model_eps(context, context.diffusion.q_sample(x0, kk, noise), kk, labels)
                loss = float((eps - noise).pow(2).mean())
                values[f"{role}_loss_t{_time_key(t)}"] = loss
                losses.append(loss)
            values[f"{role}_loss"] = float(np.mean(losses))
        for t in self.times:
            key = _time_key(t)
            values[f"gen_gap_t{key}"] = values[f"test_loss_t{key}"] - values[f"train_loss_t{key}"]
        values["gen_gap"] = values["test_loss"] - values["train_loss"]
        return values


class DenoiserMonitor:
    """Distance of the network's denoiser to the empirical optimal denoiser, relative to its
    distance to the Gaussian (linear) denoiser of the training set.

    On noised held-out items x_k: ``denoiser_ratio_t{t}`` = E‖D_θ − D_emp‖² / E‖D_θ − D_lin‖²,
    below 1 when the network is closer to the memorizing denoiser; ``denoiser_ratio`` is the
    geometric mean over the times. Both references are unconditional, so class-conditional
    networks are evaluated with the null label ∅.
    """

    name = "denoiser"

    def __init__(self, split: DataSplit, diffusion: Diffusion, steps: list[int],
                 times=DEFAULT_PROBE_TIMES, probes: int = 256, seed: int = 0):
        self.steps = set(steps)
        self.times = tuple(float(t) for t in times)
        self.indices = [int(k) for k in diffusion.index_of_time(self.times)]
        generator = torch.Generator().manual_seed(seed + 202)
        x0, _ = _probe_batch(split.heldout.cpu(), None, probes)
        x0 = x0[:probes]
        self.train = split.train.cpu()
        linear = metrics.GaussianDenoiser(self.train)
        self.points, self.empirical, self.gaussian = [], [], []
        for k in self.indices:
            ab = float(diffusion.alpha_bar[k])
            noise = torch.randn(x0.shape, generator=generator)
            xk = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * noise
            self.points.append(xk)
            self.empirical.append(metrics.empirical_denoiser(xk, self.train, ab))
            self.gaussian.append(linear(xk, ab))

    @torch.no_grad()
    def measure(self, context: MonitorContext) -> dict[str, float]:
        values, ratios = {}, []
        for t, k, xk, emp, lin in zip(self.times, self.indices, self.points, self.empirical,
                                      self.gaussian):
            kk = torch.full((len(xk),), k, device=context.device, dtype=torch.long)
            eps = _model_eps(context, xk.to(context.device), kk, None)
            net = context.diffusion.denoise(eps.double().cpu(), xk.double(), k)
            to_emp = float((net - emp).pow(2).flatten(1).sum(1).mean())
            to_lin = float((net - lin).pow(2).flatten(1).sum(1).mean())
            key = _time_key(t)
            values[f"denoiser_emp_t{key}"] = to_emp
            values[f"denoiser_lin_t{key}"] = to_lin
            values[f"denoiser_ratio_t{key}"] = to_emp / max(to_lin, 1e-300)
            ratios.append(values[f"denoiser_ratio_t{key}"])
        values["denoiser_ratio"] = float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-300)))))
        return values


@dataclass(frozen=True)
class SampleSettings:
    """Settings of the sampling monitors: count, first seed, sampler and its steps."""

    count: int = 200
    seed: int = 1_000_000
    sampler: str = "ddim"
    steps: int = 50
    guidance: float = 1.0
    batch_size: int = 500


def generated_samples(context: MonitorContext, settings: SampleSettings):
    """Return (samples, labels, wen per sample or None), generated once per step and shared
    by every sampling monitor of that step. Class-conditional models sample the classes in
    turn and record Wen et al.'s ‖ε(x_k, c) − ε(x_k, ∅)‖ along the way."""
    key = ("samples", settings)
    if key in context.cache:
        return context.cache[key]
    seeds = list(range(settings.seed, settings.seed + settings.count))
    labels = None
    wen_sum = wen_steps = None
    on_step = None
    if context.split.num_classes and _is_conditional(context.model):
        labels = torch.arange(settings.count) % context.split.num_classes
        wen_sum = torch.zeros(settings.count, dtype=torch.float64)
        wen_steps = torch.zeros(settings.count, dtype=torch.float64)

        def on_step(k, eps_cond, eps_uncond, rows):
            wen_sum[rows] += (eps_cond - eps_uncond).flatten(1).norm(dim=1).double().cpu()
            wen_steps[rows] += 1

    with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=context.autocast):
        samples = context.diffusion.sample(
            context.model, seeds, context.split.shape, sampler=settings.sampler,
            num_steps=settings.steps, labels=labels, guidance=settings.guidance,
            batch_size=settings.batch_size, device=context.device, on_step=on_step)
    wen = None if wen_sum is None else (wen_sum / wen_steps).numpy()
    context.cache[key] = (samples.float(), labels, wen)
    return context.cache[key]


def _is_conditional(model: torch.nn.Module) -> bool:
    inner = getattr(model, "module", model)
    return getattr(getattr(inner, "embed", None), "label", None) is not None


class MemorizationMonitor:
    """f_mem of generated samples with its bootstrap 95% interval, and for class-conditional
    models the Wen et al. (ICLR 2024) magnitude ``wen_magnitude`` (mean over samples)."""

    name = "f_mem"

    def __init__(self, steps: list[int], settings: SampleSettings = SampleSettings(),
                 resamples: int = 1000):
        self.steps = set(steps)
        self.settings = settings
        self.resamples = resamples

    def measure(self, context: MonitorContext) -> dict[str, float]:
        samples, _, wen = generated_samples(context, self.settings)
        values = metrics.f_mem(samples, context.split.train, resamples=self.resamples,
                               seed=context.step)
        d1, d2, _ = metrics.nearest_two(samples, context.split.train)
        values["nn_ratio_median"] = float(np.median(d1 / np.maximum(d2, 1e-300)))
        if wen is not None:
            values["wen_magnitude"] = float(wen.mean())
            values["wen_per_sample"] = [float(v) for v in wen]
        return values


class QualityMonitor:
    """Fréchet distance and KID between generated and held-out items in encoder features
    (``fd``, ``kid``), plus ``fid`` and ``inception_kid`` with a local Inception network."""

    name = "quality"

    def __init__(self, split: DataSplit, steps: list[int],
                 settings: SampleSettings = SampleSettings(), inception: str | None = None,
                 device="cpu", encoder_seed: int = 0):
        from genwindow.unet.features import InceptionFeatures, load_or_train_encoder

        self.steps = set(steps)
        self.settings = settings
        self.encoder, self.encoder_key = load_or_train_encoder(split, seed=encoder_seed)
        self.reference = self.encoder.features(split.heldout.cpu())
        # FD of the training items themselves: what a model that only copies would reach.
        self.fd_train = metrics.frechet_distance(self.encoder.features(split.train.cpu()),
                                                 self.reference) if split.n >= 2 else None
        self.mean = split.mean.cpu() if split.mean is not None else torch.zeros(split.shape)
        self.inception = None
        if inception is not None:
            self.inception = InceptionFeatures(inception, device=device)
            self.inception_reference = self.inception(self._to_unit(split.heldout.cpu()))

    def _to_unit(self, items: torch.Tensor) -> torch.Tensor:
        return ((items + self.mean) + 1.0) / 2.0

    def measure(self, context: MonitorContext) -> dict[str, float]:
        samples, _, _ = generated_samples(context, self.settings)
        features = self.encoder.features(samples)
        values = {"fd": metrics.frechet_distance(features, self.reference),
                  "kid": metrics.kernel_inception_distance(features, self.reference),
                  "fd_train": self.fd_train}
        if self.inception is not None:
            inception_features = self.inception(self._to_unit(samples))
            values["fid"] = metrics.frechet_distance(inception_features,
                                                     self.inception_reference)
            values["inception_kid"] = metrics.kernel_inception_distance(
                inception_features, self.inception_reference)
        return values


def run_monitors(monitors, context: MonitorContext) -> tuple[dict, dict[str, float]]:
    """Run the monitors due at ``context.step``; return (values, seconds per monitor)."""
    values, seconds = {}, {}
    for monitor in monitors:
        if context.step not in monitor.steps:
            continue
        start = time.perf_counter()
        values.update(monitor.measure(context))
        seconds[monitor.name] = time.perf_counter() - start
    return values, seconds
