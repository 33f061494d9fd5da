"""DDPM forward process, ε-prediction loss, and the DDIM and ancestral samplers.

Ho, Jain, Abbeel (2020), arXiv:2006.11239: linear betas β_1 … β_T, ᾱ_k = Π_{i≤k} (1 − β_i),
x_k = sqrt(ᾱ_k) x_0 + sqrt(1 − ᾱ_k) ε. Index k runs over 0 … T−1 (index 0 is the first
noising step). The continuous time of the Ornstein–Uhlenbeck process used by the theory,
x_t = e^{−t} x_0 + sqrt(1 − e^{−2t}) ξ, matches index k at t = −½ log ᾱ_k; ``time_of_index``
and ``index_of_time`` are the only places that convert. DDIM: Song, Meng, Ermon (2021),
arXiv:2010.02502, with η = 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from genwindow.errors import require

SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class DiffusionConfig:
    """The DDPM noise schedule: T steps with betas linear from ``beta_start`` to ``beta_end``."""

    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2

    def as_dict(self) -> dict:
        return asdict(self)


class Diffusion:
    """The noise schedule as float64 numpy arrays plus float32 device copies for training."""

    def __init__(self, config: DiffusionConfig = DiffusionConfig(), device="cpu"):
        require(config.steps >= 2, f"--diffusion-steps must be at least 2, got {config.steps}")
        require(0 < config.beta_start <= config.beta_end < 1,
                f"betas must satisfy 0 < beta_start ≤ beta_end < 1, got "
                f"{config.beta_start}, {config.beta_end}")
        self.config = config
        self.T = config.steps
        self.betas = np.linspace(config.beta_start, config.beta_end, config.steps,
                                 dtype=np.float64)
        self.alpha_bar = np.cumprod(1.0 - self.betas)
        self.sqrt_ab = torch.tensor(np.sqrt(self.alpha_bar), dtype=torch.float32, device=device)
        self.sqrt_1mab = torch.tensor(np.sqrt(1.0 - self.alpha_bar), dtype=torch.float32,
                                      device=device)

    # Time conversion ------------------------------------------------------------------

    def time_of_index(self, k) -> np.ndarray:
        """Return the continuous time t = −½ log ᾱ_k of DDPM indices k (float64)."""
        return -0.5 * np.log(self.alpha_bar[np.asarray(k, dtype=np.int64)])

    def index_of_time(self, t) -> np.ndarray:
        """Return the DDPM index whose time −½ log ᾱ_k is nearest to t (t = 0.01 -> 40)."""
        times = -0.5 * np.log(self.alpha_bar)
        t = np.asarray(t, dtype=np.float64)
        require(np.all(t > 0), f"diffusion times must be positive, got {t}")
        require(np.all(t <= times[-1] * 1.0001),
                f"diffusion time {t.max()} is beyond the last DDPM step (t = {times[-1]:.3f})")
        right = np.clip(np.searchsorted(times, t), 1, len(times) - 1)
        left = right - 1
        choose_left = np.abs(times[left] - t) <= np.abs(times[right] - t)
        return np.where(choose_left, left, right)

    # Forward process and loss ---------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Return x_k = sqrt(ᾱ_k) x_0 + sqrt(1 − ᾱ_k) ε for a (B,) tensor of indices k."""
        view = (-1,) + (1,) * (x0.dim() - 1)
        return self.sqrt_ab[k].view(view) * x0 + self.sqrt_1mab[k].view(view) * noise

    def loss_per_item(self, model, x0: torch.Tensor, k: torch.Tensor, noise: torch.Tensor,
                      labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return ‖ε_θ(x_k, k, c) − ε‖² / D per item, shape (B,)."""
        prediction = model(self.q_sample(x0, k, noise), k, labels)
        return (prediction.float() - noise).pow(2).flatten(1).mean(dim=1)

    def denoise(self, eps: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        """Return the denoiser x̂_0 = (x_k − sqrt(1 − ᾱ_k) ε̂) / sqrt(ᾱ_k) at one index k."""
        ab = float(self.alpha_bar[k])
        return (x - np.sqrt(1.0 - ab) * eps) / np.sqrt(ab)

    # Sampling -------------------------------------------------------------------------

    def ddim_indices(self, num_steps: int) -> np.ndarray:
        """Return the decreasing DDPM indices that a ``num_steps``-step DDIM run visits."""
        return ddim_indices(self.T, num_steps)

    @torch.no_grad()
    def sample(self, model, seeds: Sequence[int], shape: tuple[int, ...], *,
               sampler: str = "ddim", num_steps: int = 50, labels: torch.Tensor | None = None,
               guidance: float = 1.0, batch_size: int = 256, device="cpu",
               on_step: Callable | None = None) -> torch.Tensor:
        """Generate one sample per seed; sample i depends on seeds[i] alone.

        ``sampler`` is "ddim" (deterministic, ``num_steps`` steps) or "ddpm" (ancestral,
        all T steps). With ``labels``, ε = ε(x, ∅) + guidance · (ε(x, c) − ε(x, ∅)) (guidance 1
        is the conditional model). ``on_step(k, eps_cond, eps_uncond, rows)`` sees both
        predictions of class-conditional sampling at each step, for the Wen et al. measure.
        """
        require(sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}, "
                                     f"got {sampler!r}")
        require(len(seeds) >= 1, "need at least one sample seed")
        outputs = []
        for start in range(0, len(seeds), batch_size):
            rows = slice(start, min(start + batch_size, len(seeds)))
            batch_labels = None if labels is None else labels[rows].to(device)
            generators = [torch.Generator().manual_seed(int(s)) for s in seeds[rows]]
            x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
            run = self._ddim if sampler == "ddim" else self._ancestral
            outputs.append(run(model, x, generators, num_steps, batch_labels, guidance,
                               device, on_step, rows).cpu())
        return torch.cat(outputs)

    def predict_eps(self, model, x: torch.Tensor, k: int, labels: torch.Tensor | None,
                    guidance: float, on_step=None, rows=None) -> torch.Tensor:
        kk = torch.full((x.shape[0],), k, device=x.device, dtype=torch.long)
        if labels is None:
            return model(x, kk, None).float()
        eps_cond = model(x, kk, labels).float()
        eps_uncond = model(x, kk, None).float()
        if on_step is not None:
            on_step(k, eps_cond, eps_uncond, rows)
        return eps_uncond + guidance * (eps_cond - eps_uncond)

    def _ddim(self, model, x, generators, num_steps, labels, guidance, device, on_step, rows):
        def eps_at(x, k):
            return self.predict_eps(model, x, k, labels, guidance, on_step, rows)

        return ddim_steps(eps_at, x, self.alpha_bar, self.ddim_indices(num_steps))

    def _ancestral(self, model, x, generators, num_steps, labels, guidance, device, on_step,
                   rows):
        shape = tuple(x.shape[1:])
        for k in range(self.T - 1, -1, -1):
            eps = self.predict_eps(model, x, k, labels, guidance, on_step, rows)
            beta, ab = float(self.betas[k]), float(self.alpha_bar[k])
            mean = (x - beta / np.sqrt(1.0 - ab) * eps) / np.sqrt(1.0 - beta)
            if k == 0:
                return mean
            # Posterior variance β̃_k = β_k (1 − ᾱ_{k−1}) / (1 − ᾱ_k).
            variance = beta * (1.0 - float(self.alpha_bar[k - 1])) / (1.0 - ab)
            z = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
            x = mean + np.sqrt(variance) * z
        return x


def ddim_indices(total: int, num_steps: int) -> np.ndarray:
    """Return the decreasing DDPM indices, evenly spaced over 0 … total − 1, that a
    ``num_steps``-step DDIM run visits."""
    require(1 <= num_steps <= total,
            f"--sampler-steps must be between 1 and {total}, got {num_steps}")
    return np.unique(np.round(np.linspace(0, total - 1, num_steps)).astype(np.int64))[::-1]


def ddim_steps(eps_at: Callable, x: torch.Tensor, alpha_bar: np.ndarray,
               indices: np.ndarray) -> torch.Tensor:
    """Run deterministic DDIM (η = 0, Song, Meng, Ermon 2021, arXiv:2010.02502) from x at
    DDPM index ``indices[0]`` down the decreasing ``indices``, and return the denoised x̂_0
    of the last one. ``eps_at(x, k)`` is the noise prediction at one integer index k.
    """
    for i, k in enumerate(indices):
        eps = eps_at(x, int(k))
        ab = float(alpha_bar[k])
        x0 = (x - np.sqrt(1.0 - ab) * eps) / np.sqrt(ab)
        if i + 1 == len(indices):
            return x0
        ab_prev = float(alpha_bar[indices[i + 1]])
        x = np.sqrt(ab_prev) * x0 + np.sqrt(1.0 - ab_prev) * eps
    return x
