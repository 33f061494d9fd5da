"""Monitors and measures against exact cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genwindow.unet import metrics
from genwindow.unet.data import DataSplit, load_data
from genwindow.unet.diffusion import Diffusion, DiffusionConfig
from genwindow.unet.monitors import (MemorizationMonitor, MonitorContext, SampleSettings,
                                     generated_samples, log_spaced_steps, parse_cadence)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", 64, seed=0)


def test_f_mem_is_one_for_training_images(digits):
    result = metrics.f_mem(digits.train, digits.train)
    assert result["f_mem"] == 1.0
    assert result["f_mem_low"] == 1.0


def test_f_mem_is_zero_for_heldout_images(digits):
    result = metrics.f_mem(digits.heldout, digits.train)
    assert result["f_mem"] == 0.0
    assert result["f_mem_high"] == 0.0


def test_f_mem_ratio_threshold():
    train = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    # Distances 2 and 8 (ratio 1/4, a copy); 4 and 6 (ratio 2/3, not a copy).
    samples = torch.tensor([[2.0, 0.0], [4.0, 0.0]])
    assert list(metrics.memorized(samples, train)) == [True, False]


def test_bootstrap_interval_matches_binomial():
    flags = np.zeros(400)
    flags[:100] = 1
    low, high = metrics.bootstrap_interval(flags, resamples=4000)
    half_width = 1.96 * math.sqrt(0.25 * 0.75 / 400)
    assert abs(low - (0.25 - half_width)) < 0.01
    assert abs(high - (0.25 + half_width)) < 0.01


def test_empirical_denoiser_is_nearest_image_at_tiny_noise(digits):
    diffusion = Diffusion(DiffusionConfig())
    alpha_bar = float(diffusion.alpha_bar[0])        # t ≈ 5e-5
    generator = torch.Generator().manual_seed(0)
    target = digits.train[:10]
    x = math.sqrt(alpha_bar) * target + math.sqrt(1 - alpha_bar) * torch.randn(
        target.shape, generator=generator)
    denoised = metrics.empirical_denoiser(x, digits.train, alpha_bar)
    assert torch.allclose(denoised, target.double(), atol=1e-9)


def test_empirical_denoiser_is_mean_at_pure_noise(digits):
    x = torch.randn(4, 1, 8, 8)
    denoised = metrics.empirical_denoiser(x, digits.train, 1e-16)
    assert torch.allclose(denoised, digits.train.double().mean(0).expand(4, 1, 8, 8),
                          atol=1e-6)


def test_gaussian_denoiser_matches_direct_formula():
    generator = torch.Generator().manual_seed(1)
    train = torch.randn(200, 3, generator=generator) @ torch.tensor(
        [[1.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.0, 0.0, 2.0]]) + 1.0
    denoiser = metrics.GaussianDenoiser(train)
    a = train.double()
    mean = a.mean(0)
    cov = (a - mean).T @ (a - mean) / len(a)
    ab = 0.3
    x = torch.randn(5, 3, generator=generator).double()
    gain = math.sqrt(ab) * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(3))
    expected = mean + (x - math.sqrt(ab) * mean) @ gain.T
    assert torch.allclose(denoiser(x, ab), expected, atol=1e-10)


def test_frechet_distance_exact_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert abs(metrics.frechet_distance(a, a)) < 1e-8
    shifted = a + np.array([1.0, 2.0, 0.0, 0.0])
    # Same covariance, means 5 apart in squared norm.
    assert abs(metrics.frechet_distance(a, shifted) - 5.0) < 1e-6
    # Scaled copies: FD = Tr(Σ) (1 − s)² for Σ_b = s² Σ_a.
    scaled = 3.0 * (a - a.mean(0)) + a.mean(0)
    trace = np.trace(np.cov(a, rowvar=False))
    assert abs(metrics.frechet_distance(a, scaled) - 4.0 * trace) < 1e-6 * trace


def test_kid_near_zero_for_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    far = rng.normal(size=(400, 8)) + 2.0
    same = metrics.kernel_inception_distance(a, b)
    different = metrics.kernel_inception_distance(a, far)
    assert abs(same) < 0.05
    assert different > 20 * max(abs(same), 1e-3)


def test_tau_gen_rule():
    steps = np.array([0, 10, 100, 1000, 10000])
    fd = np.array([100.0, 50.0, 12.0, 10.0, 11.0])
    # Threshold 10 + 0.1 × 90 = 19: first reached at step 100.
    assert metrics.tau_gen(steps, fd) == 100.0
    assert math.isnan(metrics.tau_gen(steps, np.full(5, 3.0)))


def test_tau_mem_rule():
    steps = np.array([0, 100, 200, 400])
    low = np.array([0.0, 0.0, 0.02, 0.1])
    assert metrics.tau_mem(steps, low) == (200.0, 100.0)
    tau, _ = metrics.tau_mem(steps, np.zeros(4))
    assert math.isnan(tau)


def test_power_law_fit_recovers_exponent():
    n = np.array([16, 32, 64, 128])
    fit = metrics.fit_power_law(n, 3.0 * n**1.2)
    assert abs(fit["exponent"] - 1.2) < 1e-10
    assert abs(fit["prefactor"] - 3.0) < 1e-8


def test_log_spaced_steps():
    steps = log_spaced_steps(1000, 2, first=10)
    assert steps == [0, 10, 32, 100, 316, 1000]
    assert parse_cadence("every:300", 1000, "--x") == [0, 300, 600, 900, 1000]
    assert parse_cadence("off", 1000, "--x") == []


class ConditionBlind(torch.nn.Module):
    """A class-conditional net whose output ignores the label."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Module()
        self.embed.label = torch.nn.Embedding(4, 1)     # marks the net as conditional
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x, k, labels=None):
        return self.linear(x) * 0.1


class ConditionShift(ConditionBlind):
    """Adds 0.5 to every output coordinate when a real label (not ∅ = 3) is given."""

    def forward(self, x, k, labels=None):
        out = super().forward(x, k, labels)
        if labels is None:
            return out
        return out + 0.5 * (labels != 3).float()[:, None]


def _vector_split():
    generator = torch.Generator().manual_seed(0)
    return DataSplit(name="v", train=torch.randn(8, 4, generator=generator),
                     heldout=torch.randn(8, 4, generator=generator), shape=(4,),
                     train_labels=torch.arange(8) % 3, heldout_labels=torch.arange(8) % 3,
                     num_classes=3)


@pytest.mark.parametrize("model_class,expected", [(ConditionBlind, 0.0),
                                                  (ConditionShift, 0.5 * 2.0)])
def test_wen_magnitude_exact(model_class, expected):
    torch.manual_seed(0)
    split = _vector_split()
    diffusion = Diffusion(DiffusionConfig(steps=100))
    context = MonitorContext(model_class().eval(), diffusion, split, torch.device("cpu"), 0)
    settings = SampleSettings(count=6, steps=10)
    _, labels, wen = generated_samples(context, settings)
    assert labels is not None
    # ‖0.5 · 1_4‖ = 1 per step for the shifted net, 0 for the blind one.
    assert np.allclose(wen, expected, atol=1e-6)
    values = MemorizationMonitor([0], settings).measure(context)
    assert abs(values["wen_magnitude"] - expected) < 1e-6
    assert len(values["wen_per_sample"]) == 6


def test_encoder_trained_once_and_cached(tmp_path, monkeypatch, digits):
    from genwindow.unet import features

    monkeypatch.setenv("GENWINDOW_CACHE", str(tmp_path))
    first, key = features.load_or_train_encoder(digits)
    cached = list((tmp_path / "encoders").glob("*.pt"))
    assert len(cached) == 1
    assert key in cached[0].name
    second, second_key = features.load_or_train_encoder(digits)
    assert second_key == key
    assert np.array_equal(first.features(digits.heldout), second.features(digits.heldout))
    # The encoder separates the classes of its held-out digits well above chance (10%).
    logits = second(digits.heldout)
    accuracy = float((logits.argmax(1) == digits.heldout_labels).float().mean())
    assert accuracy > 0.5


class MeanColour(torch.nn.Module):
    """A stand-in Inception network: features are the mean of each colour channel."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def test_inception_features_from_torchscript(tmp_path):
    from genwindow.unet.features import InceptionFeatures

    path = tmp_path / "inception.pt"
    torch.jit.script(MeanColour()).save(str(path))
    network = InceptionFeatures(path)
    images = torch.rand(6, 1, 8, 8)
    values = network(images)
    assert values.shape == (6, 3)
    expected = (images * 255).round().mean(dim=(2, 3)).double().numpy()
    assert np.allclose(values[:, 0], expected[:, 0], atol=1e-6)


def test_inception_missing_file(tmp_path):
    from genwindow.errors import ConfigError
    from genwindow.unet.features import InceptionFeatures

    with pytest.raises(ConfigError, match="file not found"):
        InceptionFeatures(tmp_path / "absent.pt")


class EmpiricalEps(torch.nn.Module):
    """The ε-network whose denoiser is exactly the empirical optimal denoiser of ``train``."""

    def __init__(self, diffusion, train):
        super().__init__()
        self.diffusion = diffusion
        self.train_items = train

    def forward(self, x, k, labels=None):
        ab = float(self.diffusion.alpha_bar[int(k[0])])
        denoised = metrics.empirical_denoiser(x, self.train_items, ab).float()
        return (x - math.sqrt(ab) * denoised) / math.sqrt(1 - ab)


def test_denoiser_monitor_zero_for_empirical_net(digits):
    from genwindow.unet.monitors import DenoiserMonitor

    diffusion = Diffusion(DiffusionConfig())
    monitor = DenoiserMonitor(digits, diffusion, [0], times=(0.01, 0.2), probes=32)
    context = MonitorContext(EmpiricalEps(diffusion, digits.train), diffusion, digits,
                             torch.device("cpu"), 0)
    values = monitor.measure(context)
    for t in ("0.01", "0.2"):
        # float32 rounding of ε, amplified by 1/sqrt(ᾱ), is the only difference.
        assert values[f"denoiser_emp_t{t}"] < 1e-6 * values[f"denoiser_lin_t{t}"]
    assert values["denoiser_ratio"] < 1e-6
