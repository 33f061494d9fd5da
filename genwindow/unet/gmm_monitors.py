"""Exact monitors for the Gaussian-mixture experiment: denoising losses, score error, KL
divergence to P0 and the memorized fraction, with their statistical errors.

None of them needs a feature extractor, because the noised density of P0 is exact
(genwindow.unet.gmm). A network enters as ``eps_fn(x, step)``: x of shape (N, d), step an
integer tensor (N,) of DDPM steps (0-based), returning the predicted noise (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from genwindow.errors import require
from genwindow.unet.diffusion import ddim_indices, ddim_steps
from genwindow.unet.gmm import (GaussianMixture, ddpm_times, exact_epsilon,
                                gaussian_entropy)
from genwindow.unet.metrics import MEMORIZATION_RATIO, memorized

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]



@dataclass(frozen=True)
class KLEstimate:
    """KL(P_gen ‖ P0) = −H(P_gen) − E_gen log P0, in nats, with standard errors."""

    kl: float
    kl_se: float
    cross_entropy: float      # −E_gen log P0 (Monte Carlo under the exact density)
    cross_entropy_se: float
    entropy: float            # H(P_gen) from the score integral along diffusion time
    entropy_se: float
    n_samples: int


def score_of_eps(eps_fn: EpsFn, alpha_bar: np.ndarray) -> ScoreFn:
    """Return the score s(x, t) = −ε(x, k) / sqrt(1 − ᾱ_k) of an ε-network at DDPM times.

    ``t`` must be one of the DDPM times t_k = −½ log ᾱ_k; any other value raises, because
    the network was trained only at those times.
    """
    times = ddpm_times(alpha_bar)

    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        k = int(np.argmin(np.abs(times - t)))
        if abs(times[k] - t) > 1e-9 * max(1.0, t):
            raise ValueError(f"time {t} is not a DDPM step time; use ddpm_times()")
        steps = torch.full((x.shape[0],), k, dtype=torch.long)
        eps = eps_fn(x, steps).to(torch.float64)
        return -eps / math.sqrt(1.0 - alpha_bar[k])

    return score


def integration_weights(times: np.ndarray) -> np.ndarray:
    """Return trapezoid weights for ∫_0^{t_K} g dt from values at ascending ``times``.

    The piece [0, t_1] takes g(t_1) (a rectangle), because the score is not evaluated at
    t = 0 where a learned score may be singular.
    """
    times = np.asarray(times, dtype=np.float64)
    assert times.ndim == 1 and np.all(np.diff(times) > 0), "times must ascend"
    weights = np.zeros_like(times)
    gaps = np.diff(times)
    weights[:-1] += 0.5 * gaps
    weights[1:] += 0.5 * gaps
    weights[0] += times[0]
    return weights


@torch.no_grad()
def entropy_per_sample(samples: torch.Tensor, score_fn: ScoreFn, times: np.ndarray,
                       seed: int = 0) -> tuple[np.ndarray, float]:
    """Return per-sample terms h_j with mean ≈ H(P) for samples of P and P's score, and H_T.

    Along the forward process the entropy obeys dH(p_t)/dt = E_{p_t}||∇log p_t||² − d, so
    H(p_0) = H(p_T) − ∫_0^T (E_{p_t}||s(x, t)||² − d) dt (de Bruijn's identity for the
    Ornstein–Uhlenbeck process). Each sample is noised independently at every grid time;
    H(p_T) is taken as the entropy of the Gaussian with p_T's covariance, whose error is
    O(e^{−4T}). The integrand is rewritten as ||s||² − ||x_t||² + e^{−2t}(||x_0||² − d),
    which has the same mean because E[||x_t||² | x_0] = e^{−2t}||x_0||² + Δ_t d, but a far
    smaller variance at large t, where s ≈ −x_t. With a learned score in place of s this is the estimate of the entropy of
    the generated distribution that the Gaussian-mixture experiment of Bonnaire et al.
    (2025, arXiv:2505.17638) uses; it assumes the learned score is the score of the noised
    generated distribution.
    """
    x0 = samples.to(torch.float64)
    n, d = x0.shape
    times = np.asarray(times, dtype=np.float64)
    weights = integration_weights(times)
    generator = torch.Generator().manual_seed(int(seed))

    integral = torch.zeros(n, dtype=torch.float64)
    norm0 = (x0**2).sum(1)
    for t, w in zip(times, weights):
        noise = torch.randn(n, d, dtype=torch.float64, generator=generator)
        xt = math.exp(-t) * x0 + math.sqrt(-math.expm1(-2 * t)) * noise
        s = score_fn(xt, float(t)).to(torch.float64)
        control = math.exp(-2 * t) * (norm0 - d) - (xt**2).sum(1)
        integral += w * ((s**2).sum(1) + control)

    t_max = float(times[-1])
    cov = np.atleast_2d(np.cov(x0.numpy(), rowvar=False))
    cov_t = math.exp(-2 * t_max) * cov - math.expm1(-2 * t_max) * np.eye(d)
    h_t = gaussian_entropy(cov_t)
    return h_t - integral.numpy(), h_t


def kl_divergence(samples: torch.Tensor, score_fn: ScoreFn, mixture: GaussianMixture,
                  times: np.ndarray, seed: int = 0) -> KLEstimate:
    """Estimate KL(P_gen ‖ P0) from samples of P_gen and the score of P_gen.

    The cross-entropy −E log P0 is a Monte Carlo mean under the exact density of P0; the
    entropy of P_gen comes from ``entropy_per_sample``. Both use the same samples, so the
    standard error of the KL is that of the per-sample difference.
    """
    require(samples.shape[0] >= 2, "the KL estimate needs at least 2 samples")
    entropy_terms, _ = entropy_per_sample(samples, score_fn, times, seed)
    cross_terms = -mixture.log_density(samples.to(torch.float64), 0.0).numpy()
    kl_terms = cross_terms - entropy_terms
    n = len(kl_terms)

    def mean_se(values):
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(n))

    kl, kl_se = mean_se(kl_terms)
    cross, cross_se = mean_se(cross_terms)
    entropy, entropy_se = mean_se(entropy_terms)
    return KLEstimate(kl, kl_se, cross, cross_se, entropy, entropy_se, n)


def kl_time_grid(alpha_bar: np.ndarray, num_times: int = 64) -> np.ndarray:
    """Return ``num_times`` DDPM step times, log-spaced in step index, ascending and unique.

    Log spacing puts half the points at small t, where the integrand varies fastest.
    """
    total = len(alpha_bar)
    index = np.unique(np.round(np.geomspace(1, total, num_times)).astype(int) - 1)
    return ddpm_times(alpha_bar)[index]


# ---------------------------------------------------------------------- memorization
@torch.no_grad()
def fraction_memorized(samples: torch.Tensor, train: torch.Tensor,
                       ratio: float = MEMORIZATION_RATIO) -> tuple[float, float]:
    """Return (f_mem, its binomial standard error) under the nearest-neighbour rule of
    genwindow.unet.metrics.memorized."""
    require(train.shape[0] >= 2, "f_mem needs at least 2 training points")
    f = float(memorized(samples, train, ratio).mean())
    return f, math.sqrt(max(f * (1 - f), 0.0) / samples.shape[0])


# ---------------------------------------------------------------------- losses and score
class ExactMonitor:
    """Denoising losses on fixed probes and the score error against the exact score.

    The probes (DDPM steps and noises for every training and held-out point; noised
    samples of P0 at a grid of steps) are drawn once from ``seed``, so successive calls
    differ only through the network.
    """

    def __init__(self, mixture: GaussianMixture, train: np.ndarray, held_out: np.ndarray,
                 alpha_bar: np.ndarray, probes_per_point: int = 4,
                 score_steps: int = 20, score_points: int = 512, seed: int = 0):
        self.mixture = mixture
        self.alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
        total = len(self.alpha_bar)
        generator = torch.Generator().manual_seed(int(seed))
        self.train_probe = self._loss_probe(train, probes_per_point, total, generator)
        self.held_out_probe = self._loss_probe(held_out, probes_per_point, total, generator)

        # Score probes: points of p_t at steps spread uniformly over 0 … T−1, so that the
        # mean over them estimates the excess of the step-averaged denoising loss.
        self.score_step_index = np.unique(np.linspace(0, total - 1, score_steps).round()
                                          .astype(int))
        times = ddpm_times(self.alpha_bar)
        x0 = torch.as_tensor(mixture.sample(score_points, seed, stream=7))
        self.score_probe = []
        for k in self.score_step_index:
            noise = torch.randn(x0.shape, dtype=torch.float64, generator=generator)
            xt = math.sqrt(self.alpha_bar[k]) * x0 + math.sqrt(1 - self.alpha_bar[k]) * noise
            target = exact_epsilon(mixture, xt, float(times[k]))
            self.score_probe.append((int(k), xt, target))

    def _loss_probe(self, points, repeats, total, generator):
        x0 = torch.as_tensor(np.asarray(points, dtype=np.float64)).repeat(repeats, 1)
        steps = torch.randint(0, total, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, dtype=torch.float64, generator=generator)
        a = torch.as_tensor(self.alpha_bar)[steps].unsqueeze(1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return xt, steps, noise

    @staticmethod
    def _loss(eps_fn, probe, chunk=8192) -> float:
        xt, steps, noise = probe
        total = 0.0
        for start in range(0, xt.shape[0], chunk):
            part = slice(start, start + chunk)
            eps = eps_fn(xt[part], steps[part]).to(torch.float64)
            total += float(((eps - noise[part]) ** 2).sum())
        return total / noise.numel()

    @torch.no_grad()
    def losses(self, eps_fn: EpsFn) -> dict[str, float]:
        """Return train_loss, test_loss (held out) and gen_gap, per coordinate."""
        train = self._loss(eps_fn, self.train_probe)
        test = self._loss(eps_fn, self.held_out_probe)
        return {"train_loss": train, "test_loss": test, "gen_gap": test - train}

    @torch.no_grad()
    def score_errors(self, eps_fn: EpsFn) -> dict[str, float]:
        """Return score_error = mean over steps of E||ε_θ − ε*||²/d = E Δ_t||s_θ − s||²/d,
        and each step's value as ``score_error_k<step>``."""
        result = {}
        for k, xt, target in self.score_probe:
            steps = torch.full((xt.shape[0],), k, dtype=torch.long)
            eps = eps_fn(xt, steps).to(torch.float64)
            result[f"score_error_k{k}"] = float(((eps - target) ** 2).mean())
        result["score_error"] = float(np.mean(list(result.values())))
        return result


# ---------------------------------------------------------------------- samplers
@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, alpha_bar: np.ndarray, n: int, d: int, num_steps: int = 100,
                seed: int = 0) -> torch.Tensor:
    """Draw n samples with deterministic DDIM on ``num_steps`` evenly spaced steps, the
    step rule of genwindow.unet.diffusion. All n starting points come from one ``seed``.
    Returns float64 (n, d)."""
    indices = ddim_indices(len(alpha_bar), num_steps)
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, d, dtype=torch.float64, generator=generator)

    def eps_at(x, k):
        return eps_fn(x, torch.full((n,), k, dtype=torch.long)).to(torch.float64)

    return ddim_steps(eps_at, x, alpha_bar, indices)


@torch.no_grad()
def euler_maruyama_sample(eps_fn: EpsFn, alpha_bar: np.ndarray, n: int, d: int,
                          num_steps: int | None = None, seed: int = 0) -> torch.Tensor:
    """Draw n samples by Euler–Maruyama on the reverse SDE dx = [x + 2 s(x, t)] dt' + √2 dW
    (time running backwards) from N(0, I_d) at the last DDPM step time.

    The steps visit ``num_steps`` DDPM step times evenly spaced in index (all of them when
    None, the 1,000 steps of Bonnaire et al. 2025). One Tweedie denoising step
    x0 = e^{t_0}(x + Δ_{t_0} s) at the smallest time ends the run; returns float64 (n, d).
    """
    total = len(alpha_bar)
    num_steps = total if num_steps is None else num_steps
    require(2 <= num_steps <= total,
            f"Euler–Maruyama steps must be in 2 … {total}, got {num_steps}")
    times = ddpm_times(alpha_bar)
    index = np.unique(np.linspace(0, total - 1, num_steps).round().astype(int))
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, d, dtype=torch.float64, generator=generator)
    for upper, lower in zip(index[:0:-1], index[-2::-1]):
        h = float(times[upper] - times[lower])
        eps = eps_fn(x, torch.full((n,), int(upper), dtype=torch.long)).to(torch.float64)
        score = -eps / math.sqrt(1 - alpha_bar[upper])
        noise = torch.randn(n, d, dtype=torch.float64, generator=generator)
        x = x + h * (x + 2 * score) + math.sqrt(2 * h) * noise
    eps = eps_fn(x, torch.zeros(n, dtype=torch.long)).to(torch.float64)
    delta0 = 1 - float(alpha_bar[0])
    return math.exp(times[0]) * (x - math.sqrt(delta0) * eps)
