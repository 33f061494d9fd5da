"""Gaussian-equivalence constants of the random-features score model.

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638v2, section 3 and supplement C.
For a data point x ~ N(0, Σ) noised to x_t = e^{-t} x + sqrt(Δ_t) ξ, a feature
σ(w·x_t / sqrt(d)) with w ~ N(0, I_d) has the pre-activation h = e^{-t} σ_x u + sqrt(Δ_t) v,
u, v ~ N(0, 1), with σ_x² = Tr Σ / d and Γ_t² = Var h = e^{-2t} σ_x² + Δ_t. The constants are

    µ1 = E[z σ(Γ_t z)]                     ‖σ‖² = E[σ(Γ_t z)²]
    a_t = E[u σ(h)] / (e^{-t} σ_x)         b_t = E[v σ(h)]
    v_t² = E_u[(E_v σ(h))²] − a_t² e^{-2t} σ_x²
    s_t² = ‖σ‖² − a_t² e^{-2t} σ_x² − v_t² − b_t²

so that a_t = µ1/Γ_t, b_t = sqrt(Δ_t) µ1/Γ_t and v_t² + s_t² = ‖σ‖² − µ1² (Stein's lemma).
All expectations use Gauss–Hermite quadrature (probabilists' nodes), one- or two-dimensional,
never Monte Carlo. Each function takes ``xp`` (numpy or jax.numpy) so that JAX can
differentiate through t.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from genwindow.errors import require

# 160 probabilists' Gauss–Hermite nodes integrate tanh(Γ z) z^k to about 1e-15 for
# Γ ≤ 3; the tests check the values against adaptive quadrature to 1e-10.
QUADRATURE_NODES = 160


def _tanh(x, xp):
    return xp.tanh(x)


def _erf(x, xp):
    if xp is np:
        from scipy.special import erf

        return erf(x)
    import jax.scipy.special

    return jax.scipy.special.erf(x)


def _sin(x, xp):
    return xp.sin(x)


def _arctan(x, xp):
    return xp.arctan(x)


# Odd activations only: E σ(z) = 0 for every centred Gaussian z, which the model assumes.
ACTIVATIONS = {"tanh": _tanh, "erf": _erf, "sin": _sin, "arctan": _arctan}


def activation(name: str):
    """Return the activation function ``f(x, xp)`` registered as ``name``."""
    require(name in ACTIVATIONS,
            f"--activation: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def gauss_hermite(nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Return probabilists' Gauss–Hermite nodes and weights normalised to sum to 1."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return x, w / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class GEConstants:
    """Gaussian-equivalence constants at one diffusion time t (see the module docstring)."""

    t: float
    Delta_t: float
    Gamma_t2: float
    mu1: float
    a_t: float
    b_t: float
    v_t2: float
    s_t2: float
    sigma_norm2: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def ge_constants_arrays(t, sigma_x2=1.0, activation_name: str = "tanh", xp=np,
                        nodes: int = QUADRATURE_NODES) -> dict:
    """Compute the constants for an array of diffusion times ``t`` (any shape).

    Returns a dict of arrays with the shape of ``t``: Delta_t, Gamma_t2, mu1, a_t, b_t,
    v_t2, s_t2, sigma_norm2. Differentiable in ``t`` and ``sigma_x2`` when ``xp`` is
    jax.numpy.
    """
    sigma = activation(activation_name)
    z, w = gauss_hermite(nodes)
    t = xp.asarray(t, dtype=xp.float64)
    sigma_x2 = xp.asarray(sigma_x2, dtype=xp.float64)
    decay2 = xp.exp(-2.0 * t)
    delta = 1.0 - decay2
    gamma2 = decay2 * sigma_x2 + delta
    gamma = xp.sqrt(gamma2)
    signal = xp.sqrt(decay2 * sigma_x2)  # e^{-t} σ_x, the standard deviation of the data part

    # One-dimensional integrals over z ~ N(0, 1): trailing axis of length `nodes`.
    g = gamma[..., None] * z
    sigma_g = sigma(g, xp)
    mu1 = xp.sum(w * z * sigma_g, axis=-1)
    sigma_norm2 = xp.sum(w * sigma_g**2, axis=-1)

    # Two-dimensional integral: inner average over the noise v, outer over the data u.
    h = (signal[..., None, None] * z[:, None]
         + xp.sqrt(delta)[..., None, None] * z[None, :])
    inner = xp.sum(w[None, :] * sigma(h, xp), axis=-1)
    outer = xp.sum(w * inner**2, axis=-1)

    a_t = mu1 / gamma
    b_t = xp.sqrt(delta) * mu1 / gamma
    v_t2 = outer - a_t**2 * signal**2
    s_t2 = sigma_norm2 - a_t**2 * signal**2 - v_t2 - b_t**2
    return {"Delta_t": delta, "Gamma_t2": gamma2, "mu1": mu1, "a_t": a_t, "b_t": b_t,
            "v_t2": v_t2, "s_t2": s_t2, "sigma_norm2": sigma_norm2}


def ge_constants(t: float, sigma_x2: float = 1.0, activation_name: str = "tanh",
                 nodes: int = QUADRATURE_NODES) -> GEConstants:
    """Compute the Gaussian-equivalence constants at one diffusion time ``t`` > 0.

    ``sigma_x2`` is the mean data variance Tr Σ / d (1 for Σ = I).
    """
    require(np.isfinite(t) and t > 0, f"--t: diffusion time must be positive, got {t}")
    require(np.isfinite(sigma_x2) and sigma_x2 > 0,
            f"--sigma-x: data variance must be positive, got {sigma_x2}")
    values = ge_constants_arrays(t, sigma_x2, activation_name, np, nodes)
    return GEConstants(t=float(t), **{k: float(v) for k, v in values.items()})
