"""The two bulks of U for ψ_p, ψ_n ≫ 1 (leading order).

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638, Theorem 3.2. For ψ_p > ψ_n
(over-parameterized)

    ρ = (1 − (1 + ψ_n)/ψ_p) δ(λ − s_t²) + (ψ_n/ψ_p) ρ1 + (1/ψ_p) ρ2,

and for ψ_n > ψ_p (under-parameterized) ρ = (1 − 1/ψ_p) ρ1 + (1/ψ_p) ρ2, where

- ρ1 is the law of s_t² + v_t² x with x Marchenko–Pastur distributed with ratio ψ_p/ψ_n,
  without its atom at 0, so supp ρ1 = s_t² + v_t² (1 ± sqrt(ψ_p/ψ_n))²;
- ρ2 is the part of order ψ_p of the Bai–Silverstein law of a sample covariance matrix of
  n samples in dimension p whose population matrix is Ũ = µ1² W Σ_t Wᵀ/d + (s_t² + v_t²) I,
  Σ_t = e^{−2t} Σ + Δ_t I (see :func:`population_spectrum`). Its spread, of relative order
  ψ_n^{-1/2}, comes from the finite number of training points.

The exact density (:mod:`genwindow.theory.spectrum`) also shows, for ψ_p > ψ_n + 1, a group of
d eigenvalues (weight 1/ψ_p) between the δ-peak and ρ1, which ρ1 absorbs at this order. The
exact first bulk contains n − d eigenvalues, and ρ1 has weight n/p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genwindow.theory.spectrum import SpectrumModel


def rho1_edges(model: SpectrumModel) -> tuple[float, float]:
    """Return the support s_t² + v_t² (1 ∓ sqrt(ψ_p/ψ_n))² of ρ1."""
    k = model.constants
    root = np.sqrt(model.psi_p / model.psi_n)
    return (float(k.s_t2 + k.v_t2 * (1.0 - root) ** 2),
            float(k.s_t2 + k.v_t2 * (1.0 + root) ** 2))


def rho1_density(model: SpectrumModel, lam) -> np.ndarray:
    """Return ρ1 at ``lam`` (normalised to 1): the Marchenko–Pastur law without its atom."""
    k = model.constants
    ratio = model.psi_p / model.psi_n
    x = (np.asarray(lam, dtype=np.float64) - k.s_t2) / k.v_t2
    lower, upper = (1.0 - np.sqrt(ratio)) ** 2, (1.0 + np.sqrt(ratio)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.sqrt(np.clip((upper - x) * (x - lower), 0.0, None)) / (
            2.0 * np.pi * min(ratio, 1.0) * x)
    return np.where((x > lower) & (x < upper), values, 0.0) / k.v_t2


def population_spectrum(model: SpectrumModel) -> tuple[np.ndarray, np.ndarray]:
    """Return the eigenvalues and weights of the population matrix Ũ at leading order.

    Ũ = µ1² W Σ_t Wᵀ/d + (s_t² + v_t²) I (with µ1²/Γ_t² in place of µ1² when Tr Σ/d ≠ 1)
    has p − d eigenvalues c0 = s_t² + v_t² and d eigenvalues ℓ_k = c0 + ψ_p (µ1²/Γ_t²) σ_{t,k},
    σ_{t,k} = e^{−2t} λ_k + Δ_t, with the weights of the levels λ_k of Σ. The spread of the
    large ones, of relative order ψ_p^{-1/2}, is neglected at this order.
    """
    k = model.constants
    c0 = k.s_t2 + k.v_t2
    sigma_t = np.exp(-2.0 * model.t) * np.asarray(model.sigma.levels) + k.Delta_t
    spikes = c0 + model.psi_p * k.mu1**2 / k.Gamma_t2 * sigma_t
    atoms = np.concatenate([[c0], spikes])
    weights = np.concatenate([[1.0 - 1.0 / model.psi_p],
                              np.asarray(model.sigma.weights) / model.psi_p])
    return atoms, weights


def _bs_polynomial(ratio: float, atoms, weights):
    """Return (base, slope): x m Π + Π − ratio m Σ_k w_k ℓ_k Π_{j≠k} = base + x · slope,
    Π = Π_k (1 + ℓ_k m), ascending coefficients in m (the Bai–Silverstein equation)."""
    P = np.polynomial.polynomial
    factors = [np.array([1.0, value]) for value in atoms]
    product = np.array([1.0])
    for f in factors:
        product = P.polymul(product, f)
    partial = np.zeros(1)
    for k_index, (value, weight) in enumerate(zip(atoms, weights)):
        term = np.array([weight * value])
        for j, f in enumerate(factors):
            if j != k_index:
                term = P.polymul(term, f)
        partial = P.polyadd(partial, term)
    return P.polysub(product, ratio * P.polymulx(partial)), P.polymulx(product)


def bai_silverstein_density(x, ratio: float, atoms, weights) -> np.ndarray:
    """Return the limiting eigenvalue density of (1/N) T^{1/2} Z Zᵀ T^{1/2} (M×M, M/N = ratio).

    T has eigenvalues ``atoms`` with ``weights``. The companion transform m̲ of the N×N
    matrix solves x = −1/m̲ + ratio Σ_k w_k ℓ_k / (1 + ℓ_k m̲), a polynomial in m̲ solved at
    each x; the density is Im m̲ / (π ratio) for x > 0 (any atom at 0 is left out).
    """
    base, slope = _bs_polynomial(ratio, atoms, weights)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    out = np.zeros(x.size)
    for i, value in enumerate(x):
        roots = np.roots(np.polynomial.polynomial.polyadd(base, value * slope)[::-1])
        out[i] = max(np.max(roots.imag), 0.0) / (np.pi * ratio)
    return np.where(x > 0, out, 0.0)


def bai_silverstein_support(ratio: float, atoms, weights) -> list[tuple[float, float]]:
    """Return the support intervals of :func:`bai_silverstein_density`.

    Edges are the critical values of x(m) = −1/m + ratio Σ_k w_k ℓ_k/(1 + ℓ_k m) on the real
    line, where the inverse of the companion transform turns back. Each interval between consecutive critical values is
    kept when the density is positive at its midpoint.
    """
    P = np.polynomial.polynomial
    atoms = np.asarray(atoms, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    # x'(m) = 1/m² − ratio Σ w ℓ²/(1 + ℓ m)² = 0, times m² Π (1 + ℓ m)².
    squares = [P.polymul([1.0, value], [1.0, value]) for value in atoms]
    product = np.array([1.0])
    for sq in squares:
        product = P.polymul(product, sq)
    partial = np.zeros(1)
    for k_index, (value, weight) in enumerate(zip(atoms, weights)):
        term = np.array([weight * value**2])
        for j, sq in enumerate(squares):
            if j != k_index:
                term = P.polymul(term, sq)
        partial = P.polyadd(partial, term)
    critical = np.roots(P.polysub(product, ratio * P.polymul([0.0, 0.0, 1.0], partial))[::-1])
    m_c = critical[np.abs(critical.imag) < 1e-9 * (1.0 + np.abs(critical))].real
    m_c = m_c[m_c != 0]
    x_c = -1.0 / m_c + ratio * np.sum(weights * atoms / (1.0 + np.outer(m_c, atoms)), axis=1)
    candidates = np.unique(np.concatenate([[0.0], x_c[x_c > 0]]))
    intervals: list[tuple[float, float]] = []
    for lo, hi in zip(candidates[:-1], candidates[1:]):
        if bai_silverstein_density(0.5 * (lo + hi), ratio, atoms, weights)[0] > 0:
            if intervals and intervals[-1][1] == lo:
                intervals[-1] = (intervals[-1][0], float(hi))
            else:
                intervals.append((float(lo), float(hi)))
    return intervals


def _interval_mass(density_fn, lo: float, hi: float, nodes: int = 128) -> float:
    x, w = np.polynomial.legendre.leggauss(nodes)
    theta = 0.5 * np.pi * (x + 1.0)
    lam = 0.5 * (lo + hi) - 0.5 * (hi - lo) * np.cos(theta)
    return float(np.sum(w * 0.25 * np.pi * (hi - lo) * np.sin(theta) * density_fn(lam)))


def _top_group(masses, target: float, rtol: float) -> int:
    """Return how many intervals, counted from the top, hold mass ``target`` (0 if none)."""
    total = 0.0
    for count, mass in enumerate(reversed(masses), start=1):
        total += mass
        if abs(total - target) <= rtol * target:
            return count
        if total > target * (1.0 + rtol):
            return 0
    return 0


def rho2_edges(model: SpectrumModel) -> list[tuple[float, float]]:
    """Return the support intervals of ρ2: the top intervals of the Bai–Silverstein law of U
    that together hold its d largest eigenvalues (mass 1/ψ_p). Empty when ρ2 is not
    separated from the rest (ψ_n of order 1)."""
    atoms, weights = population_spectrum(model)
    ratio = model.psi_p / model.psi_n
    intervals = bai_silverstein_support(ratio, atoms, weights)
    masses = [_interval_mass(lambda x: bai_silverstein_density(x, ratio, atoms, weights),
                             lo, hi) for lo, hi in intervals]
    count = _top_group(masses, 1.0 / model.psi_p, rtol=1e-3)
    return intervals[len(intervals) - count:] if count else []


def rho2_density(model: SpectrumModel, lam) -> np.ndarray:
    """Return ρ2 at ``lam``: the part of order ψ_p of the Bai–Silverstein law of U with
    population Ũ (ratio p/n), normalised to 1 (its mass in that law is 1/ψ_p)."""
    atoms, weights = population_spectrum(model)
    lam = np.asarray(lam, dtype=np.float64)
    flat = lam.ravel()
    support = rho2_edges(model)
    inside = np.zeros(flat.shape, dtype=bool)
    for lo, hi in support:
        inside |= (flat >= lo) & (flat <= hi)
    values = bai_silverstein_density(flat, model.psi_p / model.psi_n, atoms, weights)
    return np.where(inside, values * model.psi_p, 0.0).reshape(lam.shape)


@dataclass(frozen=True)
class AsymptoticSpectrum:
    """Theorem 3.2 for one model: weights of its parts and their supports."""

    delta_weight: float
    rho1_weight: float
    rho2_weight: float
    rho1_support: tuple[float, float]
    rho2_support: list[tuple[float, float]]

    def as_dict(self) -> dict:
        return {"delta_weight": self.delta_weight, "rho1_weight": self.rho1_weight,
                "rho2_weight": self.rho2_weight,
                "rho1_left": self.rho1_support[0], "rho1_right": self.rho1_support[1],
                "rho2_supports": [{"left": lo, "right": hi} for lo, hi in self.rho2_support]}


def asymptotic_spectrum(model: SpectrumModel) -> AsymptoticSpectrum:
    """Return the Theorem 3.2 decomposition of the spectrum of U for ``model``.

    The weights are those of the theorem for ψ_p > ψ_n and ψ_n ≥ ψ_p; between ψ_n and
    ψ_n + 1 the over-parameterized δ weight 1 − (1 + ψ_n)/ψ_p is negative, and it is
    reported as computed (the theorem assumes ψ_p, ψ_n ≫ 1, where that window is negligible).
    """
    psi_p, psi_n = model.psi_p, model.psi_n
    if psi_p > psi_n:
        weights = (1.0 - (1.0 + psi_n) / psi_p, psi_n / psi_p, 1.0 / psi_p)
    else:
        weights = (0.0, 1.0 - 1.0 / psi_p, 1.0 / psi_p)
    return AsymptoticSpectrum(*weights, rho1_support=rho1_edges(model),
                              rho2_support=rho2_edges(model))


def asymptotic_density(model: SpectrumModel, lam) -> np.ndarray:
    """Return the continuous part of the Theorem 3.2 density (no δ-peak) at ``lam``."""
    parts = asymptotic_spectrum(model)
    return (parts.rho1_weight * rho1_density(model, lam)
            + parts.rho2_weight * rho2_density(model, lam))


def label_bulks(model: SpectrumModel, bulks) -> list[str]:
    """Name each exact bulk after the part of Theorem 3.2 it belongs to.

    'second': the top bulks that together hold the d largest eigenvalues (mass 1/ψ_p, ρ2);
    'first': of the others, the one that overlaps ρ1's support most on a log scale (or lies
    closest to it); 'below-first': any other bulk left of it, such as the group of d
    eigenvalues between the δ-peak and ρ1 when ψ_p > ψ_n + 1; 'other': anything else.
    """
    labels = [""] * len(bulks)
    count = _top_group([b.mass for b in bulks], 1.0 / model.psi_p, rtol=1e-6)
    for i in range(len(bulks) - count, len(bulks)):
        labels[i] = "second"
    lower = [i for i, lab in enumerate(labels) if not lab]
    if not lower:
        return labels
    lo1, hi1 = np.log(rho1_edges(model))

    def closeness(i):
        lo, hi = np.log(bulks[i].left), np.log(bulks[i].right)
        overlap = min(hi, hi1) - max(lo, lo1)
        return overlap if overlap > 0 else -abs(0.5 * (lo + hi) - 0.5 * (lo1 + hi1))

    first = max(lower, key=closeness)
    for i in lower:
        if i == first:
            labels[i] = "first"
        elif bulks[i].right <= bulks[first].left:
            labels[i] = "below-first"
        else:
            labels[i] = "other"
    return labels
