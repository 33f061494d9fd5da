"""Timescales read off a learning curve, and their formula values.

Definitions (stated again in every output that reports them):

- tau_gen: the training time of the minimum of the score error.
- tau_mem: the first time at which the generalization gap L_gen = L_test − L_train reaches
  half of its τ → ∞ value.
- tau_mem_score: the first time after tau_gen at which the score error has risen a fraction
  ``rise`` (default 10%) above its minimum.

Formula values (Bonnaire, Urfin, Biroli, Mézard 2025, arXiv:2505.17638v2, section 3):
tau_gen ≈ 1/(Δ_t µ1²) and tau_mem = ψ_p/(Δ_t λ_min) with
λ_min = s_t² + v_t² (1 − sqrt(ψ_p/ψ_n))², the left edge of the first bulk of U.
Crossing times are interpolated linearly in log τ between grid points.
"""

from __future__ import annotations

import numpy as np

from genwindow.theory.constants import GEConstants

DEFINITIONS = {
    "tau_gen": "time of the minimum of the score error",
    "tau_mem": "first time at which L_test - L_train reaches half its tau -> infinity value",
    "tau_mem_score": "first time after tau_gen at which the score error exceeds its minimum "
                     "by the fraction `rise`",
    "tau_gen_formula": "1 / (Delta_t mu1^2)",
    "tau_mem_formula": "psi_p / (Delta_t lambda_min), lambda_min = s_t^2 + v_t^2 "
                       "(1 - sqrt(psi_p/psi_n))^2",
}


def first_crossing(tau: np.ndarray, values: np.ndarray, level: float,
                   start: int = 0) -> float:
    """Return the first τ ≥ tau[start] where ``values`` reaches ``level`` from below.

    Interpolates linearly in log τ (linearly in τ when the bracket starts at τ = 0); returns
    NaN when the curve never reaches the level.
    """
    above = np.nonzero(values[start:] >= level)[0]
    if above.size == 0:
        return float("nan")
    k = start + int(above[0])
    if k == 0 or values[k - 1] >= level:
        return float(tau[k])
    lo, hi = tau[k - 1], tau[k]
    frac = (level - values[k - 1]) / (values[k] - values[k - 1])
    if lo <= 0:
        return float(lo + frac * (hi - lo))
    return float(np.exp(np.log(lo) + frac * (np.log(hi) - np.log(lo))))


def measured_timescales(tau, score_error, gen_gap, gen_gap_inf: float | None = None,
                        rise: float = 0.1) -> dict[str, float]:
    """Return tau_gen, tau_mem, tau_mem_score and score_error_min from sampled curves.

    ``gen_gap_inf`` is the τ → ∞ gap; without it the last sample is used.
    """
    tau = np.asarray(tau, dtype=np.float64)
    score_error = np.asarray(score_error, dtype=np.float64)
    gen_gap = np.asarray(gen_gap, dtype=np.float64)
    k_min = int(np.argmin(score_error))
    score_min = float(score_error[k_min])
    gap_inf = float(gen_gap[-1] if gen_gap_inf is None else gen_gap_inf)
    tau_mem = first_crossing(tau, gen_gap, 0.5 * gap_inf) if gap_inf > 0 else float("nan")
    return {"tau_gen": float(tau[k_min]), "tau_mem": tau_mem,
            "tau_mem_score": first_crossing(tau, score_error, (1 + rise) * score_min, k_min),
            "score_error_min": score_min}


def lambda_min_formula(constants: GEConstants, psi_p, psi_n):
    """Return the left edge s_t² + v_t² (1 − sqrt(ψ_p/ψ_n))² of the first bulk of U."""
    ratio = np.sqrt(np.asarray(psi_p, dtype=np.float64) / np.asarray(psi_n, dtype=np.float64))
    return constants.s_t2 + constants.v_t2 * (1.0 - ratio) ** 2


def formula_timescales(constants: GEConstants, psi_p, psi_n) -> dict[str, float]:
    """Return tau_gen_formula = 1/(Δ_t µ1²) and tau_mem_formula = ψ_p/(Δ_t λ_min)."""
    lam_min = lambda_min_formula(constants, psi_p, psi_n)
    return {"tau_gen_formula": 1.0 / (constants.Delta_t * constants.mu1**2),
            "tau_mem_formula": float(psi_p / (constants.Delta_t * lam_min))}


def tau_grid(constants: GEConstants, psi_p: float, psi_n: float, points: int = 400,
             decades_beyond: float = 2.0) -> np.ndarray:
    """Return a log-spaced τ grid from well before tau_gen to well after tau_mem."""
    f = formula_timescales(constants, psi_p, psi_n)
    lo = np.log10(f["tau_gen_formula"]) - 3.0
    hi = np.log10(max(f["tau_mem_formula"], f["tau_gen_formula"])) + decades_beyond
    return np.concatenate([[0.0], np.logspace(lo, hi, points)])
