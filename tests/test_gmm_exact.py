"""Exact pieces of the Gaussian-mixture experiment: score, density, sampling, KL, f_mem."""

import math

import numpy as np
import pytest
import torch

from genwindow.errors import ConfigError
from genwindow.unet.gmm import (GaussianMixture, ddpm_alpha_bar, ddpm_times, exact_epsilon,
                                gaussian_entropy, sample_split)
from genwindow.unet.gmm_monitors import (ExactMonitor, ddim_sample, euler_maruyama_sample,
                                         fraction_memorized, kl_divergence, kl_time_grid,
                                         score_of_eps)

MIXTURES = {
    "default": GaussianMixture.symmetric(d=8),
    "uneven": GaussianMixture.symmetric(d=5, mean=0.7, weights=(0.3, 0.7),
                                        variances=(0.5, 2.0)),
    "three": GaussianMixture.from_arrays([[2.0, 0.0, -1.0], [-1.0, 1.5, 0.0], [0, 0, 3.0]],
                                         [0.2, 0.5, 0.3], [1.0, 0.3, 0.05]),
}

# Fine log-spaced grid on which the trapezoid error of the entropy integral is far below
# the Monte Carlo error of the tests; at t = 10 p_t differs from N(0, I) by O(e^{-20}).
FINE_TIMES = np.geomspace(1e-5, 10.0, 400)


@pytest.mark.parametrize("name", list(MIXTURES))
def test_score_matches_autograd(name):
    mixture = MIXTURES[name]
    generator = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(200, mixture.d, dtype=torch.float64, generator=generator)
    t = torch.exp(torch.empty(200, dtype=torch.float64).uniform_(-9, 2, generator=generator))
    x.requires_grad_(True)
    grad, = torch.autograd.grad(mixture.log_density(x, t).sum(), x)
    assert torch.allclose(mixture.score(x.detach(), t), grad, rtol=0, atol=1e-10)
    scalar_t = float(t[0])
    grad0, = torch.autograd.grad(mixture.log_density(x, scalar_t).sum(), x)
    assert torch.allclose(mixture.score(x.detach(), scalar_t), grad0, rtol=0, atol=1e-10)


def test_score_tanh_closed_form():
    mixture = MIXTURES["default"]
    x = torch.randn(100, 8, dtype=torch.float64)
    mu = torch.ones(8, dtype=torch.float64)
    for t in (1e-4, 0.1, 1.0, 4.0):
        expected = mu * math.exp(-t) * torch.tanh(x @ mu * math.exp(-t)).unsqueeze(1) - x
        assert torch.allclose(mixture.score(x, t), expected, rtol=0, atol=1e-12)


def test_density_normalised_in_one_dimension():
    mixture = GaussianMixture.symmetric(d=1, mean=1.3, weights=(0.4, 0.6),
                                        variances=(0.5, 1.5))
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64).unsqueeze(1)
    for t in (0.0, 0.3, 2.0):
        mass = torch.trapezoid(mixture.log_density(grid, t).exp(), grid[:, 0])
        assert abs(float(mass) - 1.0) < 1e-9


def test_sample_split_pure_and_nested():
    mixture = MIXTURES["default"]
    train_a, held_a = sample_split(mixture, 128, 500, seed=3)
    train_b, held_b = sample_split(mixture, 512, 500, seed=3)
    train_c, _ = sample_split(mixture, 128, 500, seed=4)
    assert np.array_equal(train_a, train_b[:128])
    assert np.array_equal(held_a, held_b)
    assert not np.array_equal(train_a, train_c)
    assert np.array_equal(sample_split(mixture, 128, 500, seed=3)[0], train_a)


def test_samples_have_mixture_moments():
    mixture = MIXTURES["uneven"]
    x = mixture.sample(200_000, seed=0)
    mean = np.asarray(mixture.weights) @ np.asarray(mixture.means)
    # 5 standard errors of the mean; the largest variance of a coordinate is below 3.
    assert np.all(np.abs(x.mean(0) - mean) < 5 * math.sqrt(3 / len(x)))
    cov_err = np.abs(np.cov(x, rowvar=False) - mixture.covariance())
    assert cov_err.max() < 5 * 3 * math.sqrt(2 / len(x))


def test_invalid_options_name_the_option():
    with pytest.raises(ConfigError, match="weights"):
        GaussianMixture.symmetric(d=4, weights=(0.5, 0.6))
    with pytest.raises(ConfigError, match="variances"):
        GaussianMixture.symmetric(d=4, variances=(1.0, -1.0))
    with pytest.raises(ConfigError, match="mean"):
        GaussianMixture.symmetric(d=4, mean=[1.0, 2.0])
    with pytest.raises(ConfigError, match="dimension"):
        GaussianMixture.symmetric(d=0)


@pytest.mark.parametrize("name", ["default", "uneven"])
def test_kl_zero_for_samples_of_p0(name):
    mixture = MIXTURES[name]
    samples = torch.as_tensor(mixture.sample(4000, seed=11))
    estimate = kl_divergence(samples, mixture.score, mixture, FINE_TIMES, seed=5)
    assert estimate.kl_se < 0.08
    assert abs(estimate.kl) < 4 * estimate.kl_se


def test_kl_shifted_gaussian_closed_form():
    d = 6
    truth = GaussianMixture.from_arrays(np.zeros((1, d)), [1.0], [1.0])
    shift = np.linspace(-0.5, 0.8, d)
    fitted = GaussianMixture.from_arrays(shift[None, :], [1.0], [1.0])
    samples = torch.as_tensor(fitted.sample(4000, seed=2))
    estimate = kl_divergence(samples, fitted.score, truth, FINE_TIMES, seed=6)
    expected = 0.5 * float(shift @ shift)
    assert abs(estimate.kl - expected) < 4 * estimate.kl_se
    assert abs(estimate.entropy - gaussian_entropy(np.eye(d))) < 4 * estimate.entropy_se


def test_kl_wrong_variance_closed_form():
    d, variance = 4, 1.8
    truth = GaussianMixture.from_arrays(np.zeros((1, d)), [1.0], [1.0])
    fitted = GaussianMixture.from_arrays(np.zeros((1, d)), [1.0], [variance])
    samples = torch.as_tensor(fitted.sample(4000, seed=8))
    estimate = kl_divergence(samples, fitted.score, truth, FINE_TIMES, seed=9)
    expected = 0.5 * d * (variance - 1 - math.log(variance))
    assert abs(estimate.kl - expected) < 4 * estimate.kl_se
    assert estimate.kl > 4 * estimate.kl_se


def exact_eps_fn(mixture, alpha_bar):
    times = torch.as_tensor(ddpm_times(alpha_bar))

    def eps(x, steps):
        return exact_epsilon(mixture, x.to(torch.float64), times[steps])
    return eps


def test_kl_on_ddpm_grid_with_exact_eps():
    mixture = MIXTURES["default"]
    alpha_bar = ddpm_alpha_bar()
    score = score_of_eps(exact_eps_fn(mixture, alpha_bar), alpha_bar)
    samples = torch.as_tensor(mixture.sample(3000, seed=12))
    estimate = kl_divergence(samples, score, mixture, kl_time_grid(alpha_bar), seed=3)
    # The 64-point DDPM grid adds a trapezoid bias; 0.02 nats is well above it for P0.
    assert abs(estimate.kl) < 4 * estimate.kl_se + 0.02


def test_kl_grid_of_minimum_size_unbiased():
    from genwindow.unet.gmm_run import MIN_KL_TIMES

    mixture = MIXTURES["default"]
    alpha_bar = ddpm_alpha_bar()
    score = score_of_eps(exact_eps_fn(mixture, alpha_bar), alpha_bar)
    samples = torch.as_tensor(mixture.sample(1000, seed=3))
    coarse = kl_divergence(samples, score, mixture, kl_time_grid(alpha_bar, 8), seed=1)
    smallest = kl_divergence(samples, score, mixture, kl_time_grid(alpha_bar, MIN_KL_TIMES),
                             seed=1)
    # 8 times bias the estimate by more than 2 standard errors, 16 do not.
    assert abs(coarse.kl) > 2 * coarse.kl_se
    assert abs(smallest.kl) < 2 * smallest.kl_se


def test_samplers_with_exact_eps_reach_p0():
    mixture = MIXTURES["default"]
    alpha_bar = ddpm_alpha_bar()
    eps = exact_eps_fn(mixture, alpha_bar)
    score = score_of_eps(eps, alpha_bar)
    grid = kl_time_grid(alpha_bar)
    for sampler in ("em", "em-200", "ddim"):
        if sampler == "em":
            x = euler_maruyama_sample(eps, alpha_bar, 2000, mixture.d, seed=1)
        elif sampler == "em-200":
            x = euler_maruyama_sample(eps, alpha_bar, 2000, mixture.d, 200, seed=1)
        else:
            x = ddim_sample(eps, alpha_bar, 2000, mixture.d, num_steps=100, seed=1)
        estimate = kl_divergence(x, score, mixture, grid, seed=2)
        assert abs(estimate.kl) < 4 * estimate.kl_se + 0.03, sampler
        positive = float((x.sum(1) > 0).double().mean())
        assert abs(positive - 0.5) < 4 * math.sqrt(0.25 / 2000), sampler


def test_fraction_memorized_cases():
    mixture = MIXTURES["default"]
    train = torch.as_tensor(mixture.sample(64, seed=0))
    copies = train.repeat(4, 1) + 1e-3 * torch.randn(256, 8, dtype=torch.float64)
    f, se = fraction_memorized(copies, train)
    assert f == 1.0
    assert se == 0.0
    fresh = torch.as_tensor(mixture.sample(2000, seed=1))
    f_fresh, se_fresh = fraction_memorized(fresh, train)
    assert f_fresh < 0.02
    assert se_fresh <= 0.5 / math.sqrt(2000)
    midway = train[:1] + 0.5 * (train[1:2] - train[:1])
    assert fraction_memorized(midway, train)[0] == 0.0


def test_exact_monitor_on_exact_eps():
    mixture = MIXTURES["default"]
    alpha_bar = ddpm_alpha_bar()
    train, held_out = sample_split(mixture, 256, 1024, seed=0)
    monitor = ExactMonitor(mixture, train, held_out, alpha_bar, probes_per_point=8)
    eps = exact_eps_fn(mixture, alpha_bar)
    errors = monitor.score_errors(eps)
    assert errors["score_error"] < 1e-20
    losses = monitor.losses(eps)
    # The exact ε does not know the training set: the gap is noise of order
    # sqrt(var / (n · probes)); the per-coordinate loss variance is below 2.
    assert abs(losses["gen_gap"]) < 4 * math.sqrt(2 / (256 * 8 * 8) + 2 / (1024 * 8 * 8))
    shifted = lambda x, k: eps(x, k) + 0.1
    assert abs(monitor.score_errors(shifted)["score_error"] - 0.01) < 1e-12
