"""One draw of the random-features score model: features W, data X, and the GE noise Ω.

Model (Bonnaire, Urfin, Biroli, Mézard 2025, arXiv:2505.17638v2, section 3): data
x ~ N(0, Σ) in R^d, score s_A(x) = (A / sqrt(p)) σ(W x / sqrt(d)) with W ∈ R^{p×d} of i.i.d.
N(0, 1) entries, trained at one diffusion time t. Σ is diagonal with a few eigenvalue levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genwindow.errors import require
from genwindow.theory.constants import GEConstants, activation, ge_constants


def sigma_diagonal(d: int, levels=(1.0,), weights=(1.0,)) -> np.ndarray:
    """Return the d eigenvalues of Σ: level k repeated round(weight_k · d) times.

    The last level takes whatever rounding leaves, so the result always has length d.
    """
    levels = np.asarray(levels, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    require(levels.ndim == 1 and levels.size >= 1 and np.all(levels > 0),
            f"--sigma-levels: need positive eigenvalues of Σ, got {levels.tolist()}")
    require(weights.shape == levels.shape,
            f"--sigma-weights: need one weight per level ({levels.size}), "
            f"got {weights.tolist()}")
    require(np.all(weights > 0) and abs(weights.sum() - 1.0) < 1e-9,
            f"--sigma-weights: weights must be positive and sum to 1, got {weights.tolist()}")
    counts = np.round(weights * d).astype(int)
    counts[-1] = d - counts[:-1].sum()
    require(np.all(counts >= 1),
            f"--d: d = {d} gives some level of Σ no dimension (weights {weights.tolist()} "
            f"round to counts {counts.tolist()}); raise --d or the small weights")
    return np.repeat(levels, counts)


@dataclass(frozen=True)
class RFInstance:
    """Sizes, constants and random matrices of one draw (float64)."""

    d: int
    p: int
    n: int
    t: float
    activation: str
    sigma_diag: np.ndarray  # (d,) eigenvalues of Σ
    W: np.ndarray  # (p, d) random features, N(0, 1) entries
    X: np.ndarray  # (d, n) training data, columns x_ν ~ N(0, Σ)
    Omega: np.ndarray  # (p, n) N(0, 1); the nonlinear part of the Gaussian-equivalent features
    seed: int
    constants: GEConstants = field(repr=False)

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    @property
    def psi_n(self) -> float:
        return self.n / self.d

    @property
    def sigma_t_diag(self) -> np.ndarray:
        """Eigenvalues of Σ_t = e^{-2t} Σ + Δ_t I, the covariance of the noised data."""
        return np.exp(-2 * self.t) * self.sigma_diag + self.constants.Delta_t

    def features(self, x: np.ndarray) -> np.ndarray:
        """Return σ(W x / sqrt(d)) for the rows of ``x`` (m, d), as an (m, p) array."""
        return activation(self.activation)(x @ self.W.T / np.sqrt(self.d), np)


def sizes_from_ratios(d: int, psi_p: float, psi_n: float) -> tuple[int, int]:
    """Return (p, n) = (round(ψ_p d), round(ψ_n d)), rejecting ratios that d cannot carry."""
    require(isinstance(d, (int, np.integer)) and d >= 2, f"--d: need an integer ≥ 2, got {d}")
    require(np.isfinite(psi_p) and psi_p > 0, f"--psi-p: ψ_p = p/d must be positive, got {psi_p}")
    require(np.isfinite(psi_n) and psi_n > 0, f"--psi-n: ψ_n = n/d must be positive, got {psi_n}")
    p, n = int(round(psi_p * d)), int(round(psi_n * d))
    # ψ·d must land within 1% of a whole size, so that the ratios written to the results
    # are the ones that were computed.
    for name, ratio, size in (("--psi-p", psi_p, p), ("--psi-n", psi_n, n)):
        require(size >= 1 and abs(size - ratio * d) <= 0.01 * ratio * d,
                f"--d: d = {d} cannot carry {name} {ratio}: ψ·d = {ratio * d:.4g} is not "
                f"within 1% of a whole size ≥ 1; raise --d or choose ψ·d whole")
    return p, n


def estimate_bytes(d: int, p: int, n: int, features: str = "gaussian-equivalent",
                   points: int = 400) -> float:
    """Return an estimate of the peak memory of one closed-form curve, in bytes (float64)."""
    draws = p * d + d * n + p * n
    if features == "true" or n + d >= p:
        matrices = 6.0 * p * p + 3 * 4096 * p
    else:
        r = n + d
        matrices = 3.0 * p * r + 5.0 * r * r
    rank = min(n + d, p)
    return 8.0 * (draws + matrices + 4.0 * points * rank)


def sample_instance(d: int, psi_p: float, psi_n: float, t: float, seed: int = 0,
                    activation: str = "tanh", sigma_levels=(1.0,),
                    sigma_weights=(1.0,)) -> RFInstance:
    """Draw W, X and Ω for sizes d, p = ψ_p d, n = ψ_n d from ``seed``.

    W, X and Ω come from independent child streams of one SeedSequence, so changing n
    leaves W unchanged and changing p leaves X unchanged.
    """
    require(isinstance(seed, (int, np.integer)) and seed >= 0,
            f"--seed: need an integer ≥ 0, got {seed}")
    p, n = sizes_from_ratios(d, psi_p, psi_n)
    sigma_diag = sigma_diagonal(d, sigma_levels, sigma_weights)
    constants = ge_constants(t, float(sigma_diag.mean()), activation)
    rng_w, rng_x, rng_omega = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(3))
    W = rng_w.standard_normal((p, d))
    X = np.sqrt(sigma_diag)[:, None] * rng_x.standard_normal((d, n))
    Omega = rng_omega.standard_normal((p, n))
    return RFInstance(d=d, p=p, n=n, t=float(t), activation=activation,
                      sigma_diag=sigma_diag, W=W, X=X, Omega=Omega, seed=seed,
                      constants=constants)
