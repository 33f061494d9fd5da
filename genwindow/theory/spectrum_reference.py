"""Slow reference solver for Theorem 3.1: Levenberg–Marquardt with continuation in ε.

This follows the route of Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638: the
three complex equations (q, r, s) are written as six real ones and solved by
Levenberg–Marquardt (scipy.optimize.root, method 'lm'), starting from q = s = −1/z and
r = −(Tr Σ/d)/z at Im z = 100 and lowering Im z step by step to 1e−9, each solve starting
from the previous one. It exists to check the fast solver in :mod:`genwindow.theory.spectrum` and to time it;
use the fast solver for everything else.

Convention as in the fast solver: z = λ + iε and Im q > 0 (the authors' script uses
z = λ − iε and the conjugate solution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import root

from genwindow.theory.spectrum import SpectrumModel

# The continuation of the authors' script: ε = 100, 99, ..., 1, then down to 1e-9.
PAPER_EPSILONS = tuple(float(e) for e in range(100, 0, -1)) + (
    0.9, 0.7, 0.5, 0.3, 0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)


def theorem_equations(model: SpectrumModel, q, r, s, z):
    """Return the three residuals of Theorem 3.1 exactly as stated (no elimination)."""
    k = model.constants
    psi_p = model.psi_p
    decay2 = np.exp(-2.0 * model.t)
    D = (1.0 + (k.a_t**2 * decay2 * psi_p / model.psi_n) * r
         + (psi_p * k.v_t2 / model.psi_n) * q)
    s_hat = k.b_t**2 * psi_p + 1.0 / q
    r_hat = psi_p * k.a_t**2 * decay2 / D
    s_rhs = sum(w / (s_hat + lam * r_hat) for lam, w in zip(model.sigma.levels,
                                                            model.sigma.weights))
    r_rhs = sum(w * lam / (s_hat + lam * r_hat) for lam, w in zip(model.sigma.levels,
                                                                  model.sigma.weights))
    third = (psi_p * (k.s_t2 - z) + psi_p * k.v_t2 / D + (1.0 - psi_p) / q - s / q**2)
    return s - s_rhs, r - r_rhs, third


def _real_residuals(x, model: SpectrumModel, z: complex):
    q, r, s = x[0] + 1j * x[1], x[2] + 1j * x[3], x[4] + 1j * x[5]
    e1, e2, e3 = theorem_equations(model, q, r, s, z)
    return np.array([e1.real, e1.imag, e2.real, e2.imag, e3.real, e3.imag])


@dataclass(frozen=True)
class ReferenceSolution:
    """q, r, s at z = λ + i ε_final for each λ, with the final residual and LM status."""

    lam: np.ndarray
    epsilon: float
    q: np.ndarray
    r: np.ndarray
    s: np.ndarray
    residual: np.ndarray  # max |equation residual| at the final ε
    success: np.ndarray


def solve_reference(model: SpectrumModel, lam, epsilons=PAPER_EPSILONS,
                    xtol: float = 1e-15) -> ReferenceSolution:
    """Solve at z = λ + iε for each λ by continuation along ``epsilons`` (decreasing).

    ``xtol`` is tighter than scipy's default so that the final q is accurate to ~1e-12
    where LM converges.
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    out_q = np.empty(lam.size, dtype=complex)
    out_r = np.empty(lam.size, dtype=complex)
    out_s = np.empty(lam.size, dtype=complex)
    residual = np.empty(lam.size)
    success = np.empty(lam.size, dtype=bool)
    mean_sigma = model.sigma.mean
    for i, value in enumerate(lam):
        z = value + 1j * epsilons[0]
        q0 = -1.0 / z
        x = np.array([q0.real, q0.imag, (mean_sigma * q0).real, (mean_sigma * q0).imag,
                      q0.real, q0.imag])
        for eps in epsilons:
            result = root(_real_residuals, x, args=(model, value + 1j * eps), method="lm",
                          options={"xtol": xtol, "ftol": xtol})
            x = result.x
        out_q[i] = x[0] + 1j * x[1]
        out_r[i] = x[2] + 1j * x[3]
        out_s[i] = x[4] + 1j * x[5]
        residual[i] = np.max(np.abs(_real_residuals(x, model, value + 1j * epsilons[-1])))
        success[i] = bool(result.success)
    return ReferenceSolution(lam=lam, epsilon=float(epsilons[-1]), q=out_q, r=out_r, s=out_s,
                             residual=residual, success=success)
