"""The Gaussian-mixture data of Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638,
supplement B, with its exact noised density and score.

P0 = Σ_k w_k N(m_k, σ_k² I_d); the default is ½ N(µ, I_d) + ½ N(−µ, I_d) with µ = 1_d. The
forward process x_t = e^{−t} x_0 + sqrt(Δ_t) ξ, Δ_t = 1 − e^{−2t}, keeps it a mixture:
p_t = Σ_k w_k N(e^{−t} m_k, v_k(t) I_d) with v_k(t) = e^{−2t} σ_k² + Δ_t. So log p_t and its
gradient, the score, are exact at every t. For the default mixture the score reduces to
s(x, t) = µ e^{−t} tanh(µ·x e^{−t}) − x.

The DDPM discretisation (betas linear in 1e−4 … 2e−2, T = 1000) maps step k to diffusion
time t_k = −½ log ᾱ_k, because then e^{−t_k} = sqrt(ᾱ_k) and Δ_{t_k} = 1 − ᾱ_k; an
ε-predicting network has the score −ε / sqrt(Δ_t) at that time.

Everything here is float64 torch and pure: the same arguments give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtr

from genwindow.errors import require


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of isotropic Gaussians in R^d: weights w_k, means m_k, variances σ_k²."""

    means: tuple[tuple[float, ...], ...]   # K rows of d coordinates
    weights: tuple[float, ...]             # K weights, summing to 1
    variances: tuple[float, ...]           # K per-component variances σ_k² > 0

    @property
    def d(self) -> int:
        return len(self.means[0])

    @property
    def n_components(self) -> int:
        return len(self.weights)

    @classmethod
    def symmetric(cls, d: int = 8, mean=1.0, weights=(0.5, 0.5),
                  variances=(1.0, 1.0)) -> "GaussianMixture":
        """Return w_1 N(µ, σ_1² I) + w_2 N(−µ, σ_2² I) with µ = mean·1_d, or µ = mean if a vector.

        Raises ConfigError naming the option when a value is invalid.
        """
        require(isinstance(d, (int, np.integer)) and d >= 1,
                f"gmm dimension d must be an integer ≥ 1, got {d!r}")
        mu = np.broadcast_to(np.asarray(mean, dtype=np.float64), (d,)).copy() \
            if np.ndim(mean) == 0 else np.asarray(mean, dtype=np.float64)
        require(mu.shape == (d,), f"gmm mean must be a number or {d} numbers (one per "
                                  f"dimension), got {len(mu)} numbers")
        require(bool(np.all(np.isfinite(mu))), f"gmm mean must be finite, got {mean!r}")
        return cls.from_arrays(np.stack([mu, -mu]), weights, variances)

    @classmethod
    def from_arrays(cls, means, weights, variances) -> "GaussianMixture":
        """Return the mixture with means (K, d), weights (K,) and variances (K,), checked."""
        means = np.atleast_2d(np.asarray(means, dtype=np.float64))
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        variances = np.asarray(variances, dtype=np.float64).reshape(-1)
        k = means.shape[0]
        require(weights.shape == (k,), f"gmm weights need one value per component ({k}), "
                                       f"got {weights.tolist()}")
        require(variances.shape == (k,), f"gmm variances need one value per component "
                                         f"({k}), got {variances.tolist()}")
        require(bool(np.all(weights > 0)) and abs(weights.sum() - 1.0) < 1e-9,
                f"gmm weights must be positive and sum to 1, got {weights.tolist()}")
        require(bool(np.all(np.isfinite(variances))) and bool(np.all(variances > 0)),
                f"gmm variances must be positive, got {variances.tolist()}")
        return cls(means=tuple(tuple(float(v) for v in row) for row in means),
                   weights=tuple(float(w) for w in weights),
                   variances=tuple(float(v) for v in variances))

    def to_dict(self) -> dict:
        return {"means": [list(m) for m in self.means], "weights": list(self.weights),
                "variances": list(self.variances)}

    # ------------------------------------------------------------------ tensors
    def _tensors(self, device=None):
        means = torch.tensor(self.means, dtype=torch.float64, device=device)
        log_weights = torch.log(torch.tensor(self.weights, dtype=torch.float64, device=device))
        variances = torch.tensor(self.variances, dtype=torch.float64, device=device)
        return means, log_weights, variances

    def _component_logits(self, x: torch.Tensor, t):
        """Return log(w_k N(x; e^{−t} m_k, v_k I)) of shape (N, K), the means e^{−t} m_k
        of shape (N, K, d) and the variances v_k(t) of shape (N, K)."""
        means, log_weights, variances = self._tensors(x.device)
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        t = t.reshape(-1, 1) if t.ndim else t.reshape(1, 1)          # (N or 1, 1)
        decay = torch.exp(-t)                                         # e^{−t}
        delta = -torch.expm1(-2.0 * t)                                # Δ_t, exact near t = 0
        v = decay**2 * variances + delta                              # (N or 1, K)
        shifted = decay.unsqueeze(-1) * means                         # (N or 1, K, d)
        sq = ((x.unsqueeze(1) - shifted) ** 2).sum(-1)                # (N, K)
        logits = log_weights - 0.5 * self.d * torch.log(2 * math.pi * v) - 0.5 * sq / v
        return logits, shifted, v

    def log_density(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """Return log p_t(x) for x of shape (N, d) and t a scalar or shape (N,); shape (N,)."""
        logits, _, _ = self._component_logits(x.to(torch.float64), t)
        return torch.logsumexp(logits, dim=1)

    def score(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """Return ∇_x log p_t(x) = Σ_k r_k(x) (e^{−t} m_k − x) / v_k(t); shape (N, d).

        r_k are the posterior responsibilities, a softmax of the component log-densities.
        """
        x = x.to(torch.float64)
        logits, shifted, v = self._component_logits(x, t)
        responsibilities = torch.softmax(logits, dim=1)               # (N, K)
        per_component = (shifted - x.unsqueeze(1)) / v.unsqueeze(-1)  # (N, K, d)
        return (responsibilities.unsqueeze(-1) * per_component).sum(1)

    def covariance(self) -> np.ndarray:
        """Return the (d, d) covariance of P0."""
        means = np.asarray(self.means)
        weights = np.asarray(self.weights)
        centre = weights @ means
        spread = (weights[:, None] * (means - centre)).T @ (means - centre)
        return spread + float(weights @ np.asarray(self.variances)) * np.eye(self.d)

    # ------------------------------------------------------------------ samples
    def sample(self, n: int, seed: int, stream: int = 0) -> np.ndarray:
        """Draw n points of P0 as float64 (n, d), a pure function of (n, seed, stream).

        Row i is built from the i-th row of one (n, d + 1) standard normal draw, whose first
        entry picks the component through the normal CDF. So the first m points are the same
        for every n ≥ m, and training sets of different sizes are nested.
        """
        require(n >= 0, f"number of samples must be ≥ 0, got {n}")
        rng = np.random.default_rng([int(seed), int(stream)])
        draws = rng.standard_normal((n, self.d + 1))
        cumulative = np.cumsum(self.weights)
        component = np.minimum(np.searchsorted(cumulative, ndtr(draws[:, 0]), side="right"),
                               self.n_components - 1)
        means = np.asarray(self.means)[component]
        scale = np.sqrt(np.asarray(self.variances))[component]
        return means + scale[:, None] * draws[:, 1:]


TRAIN_STREAM = 0
HELD_OUT_STREAM = 1


def sample_split(mixture: GaussianMixture, n: int, n_held_out: int, seed: int):
    """Return (train (n, d), held_out (n_held_out, d)) float64 arrays for ``seed``.

    The two sets come from independent streams, so the held-out set does not depend on n
    and the training sets of one seed are nested in n.
    """
    require(n >= 1, f"gmm training-set size n must be ≥ 1, got {n}")
    require(n_held_out >= 1, f"gmm held-out size must be ≥ 1, got {n_held_out}")
    return (mixture.sample(n, seed, TRAIN_STREAM),
            mixture.sample(n_held_out, seed, HELD_OUT_STREAM))


# ---------------------------------------------------------------------- DDPM time map
def ddpm_alpha_bar(num_steps: int = 1000, beta_start: float = 1e-4,
                   beta_end: float = 2e-2) -> np.ndarray:
    """Return ᾱ_k = Π_{i ≤ k} (1 − β_i) for the linear betas, k = 0 … num_steps − 1."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return np.exp(np.cumsum(np.log1p(-betas)))


def ddpm_times(alpha_bar: np.ndarray) -> np.ndarray:
    """Return the diffusion time t_k = −½ log ᾱ_k of each DDPM step."""
    return -0.5 * np.log(np.asarray(alpha_bar, dtype=np.float64))


def exact_epsilon(mixture: GaussianMixture, x: torch.Tensor, t) -> torch.Tensor:
    """Return the optimal noise prediction ε*(x, t) = −sqrt(Δ_t) s(x, t); shape (N, d)."""
    t64 = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    delta = -torch.expm1(-2.0 * t64)
    scale = torch.sqrt(delta).reshape(-1, 1) if t64.ndim else torch.sqrt(delta)
    return -scale * mixture.score(x, t)


def gaussian_entropy(covariance: np.ndarray) -> float:
    """Return the differential entropy ½ log det(2πe Σ) of N(·, Σ), in nats."""
    sign, logdet = np.linalg.slogdet(2 * math.pi * math.e * np.asarray(covariance))
    assert sign > 0, "covariance must be positive definite"
    return 0.5 * float(logdet)


# ---------------------------------------------------------------------- data source
DEFAULT_HELD_OUT = 2048


def _register_source():
    # data.py imports this module lazily to register the source, so the import is here.
    from genwindow.unet.data import DataSplit, register_data_source

    @register_data_source("gmm")
    def gmm_source(n: int, seed: int = 0, *, d: int = 8, mean=1.0, weights=(0.5, 0.5),
                   variances=(1.0, 1.0), heldout: int | None = None,
                   **unused) -> DataSplit:
        """½ N(µ, σ_1² I_d) + ½ N(−µ, σ_2² I_d), µ = mean·1_d (Bonnaire et al. 2025,
        arXiv:2505.17638, supplement B): n training points and ``heldout`` held-out points
        (2048 by default), a pure function of (options, n, seed); the data are not centred,
        because the exact score refers to P0 itself."""
        extra = sorted(k for k, v in unused.items() if v is not None and k != "centre")
        require(not extra, f"--data gmm does not take option(s) {', '.join(extra)}")
        mixture = GaussianMixture.symmetric(d=d, mean=mean, weights=weights,
                                            variances=variances)
        held = DEFAULT_HELD_OUT if heldout is None else heldout
        train, held_out = sample_split(mixture, n, held, seed)
        return DataSplit(name="gmm", train=torch.from_numpy(train).float(),
                         heldout=torch.from_numpy(held_out).float(), shape=(mixture.d,),
                         mean=torch.zeros(mixture.d),
                         info={"mixture": mixture.to_dict(), "heldout": held})

    return gmm_source


gmm_source = _register_source()


def mixture_of_split(split) -> GaussianMixture:
    """Return the mixture that a ``gmm`` DataSplit was drawn from (stored in its info)."""
    info = split.info or {}
    require("mixture" in info, f"data source {split.name!r} is not a Gaussian mixture; "
                               f"the exact monitors need --data gmm")
    spec = info["mixture"]
    return GaussianMixture.from_arrays(spec["means"], spec["weights"], spec["variances"])
