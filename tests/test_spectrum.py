"""Spectrum of U (Theorem 3.1): fast solver against the unreduced equations and the
reference solver, normalisation, bulk masses, the δ-peak, and Theorem 3.2 edges."""

import functools

import numpy as np
import pytest

from genwindow.errors import ConfigError
from genwindow.theory.spectrum import (
    DENSITY_TOL, delta_peak, delta_peak_numerical, density, find_bulks, solve_stieltjes,
    spectrum_model)
from genwindow.theory.spectrum_asymptotic import (
    asymptotic_spectrum, label_bulks, rho1_density, rho2_density)
from genwindow.theory.spectrum_reference import solve_reference, theorem_equations

TWO_LEVELS = ((0.5, 1.5), (0.5, 0.5))
THREE_LEVELS = ((0.2, 1.0, 3.0), (0.3, 0.3, 0.4))

# (ψ_p, ψ_n, t, (levels, weights)): both regimes, ψ_p just above and below ψ_n + 1.
CASES = [
    (64.0, 8.0, 0.01, ((1.0,), (1.0,))),
    (64.0, 8.0, 0.01, TWO_LEVELS),
    (4.0, 8.0, 0.1, ((1.0,), (1.0,))),
    (9.2, 8.0, 0.1, ((1.0,), (1.0,))),
    (9.05, 8.0, 0.1, TWO_LEVELS),
    (8.9, 8.0, 0.5, ((1.0,), (1.0,))),
    (2.0, 4.0, 1.0, THREE_LEVELS),
]


def make(case):
    psi_p, psi_n, t, (levels, weights) = case
    return spectrum_model(psi_p, psi_n, t, levels, weights)


@functools.lru_cache(maxsize=None)
def bulks_of(case):
    return find_bulks(make(case))


@pytest.mark.parametrize("case", CASES)
def test_fast_solution_satisfies_unreduced_equations(case):
    model = make(case)
    lam = np.concatenate([np.linspace(-1.0, 1.0, 41), np.geomspace(1.0, 80.0, 40)])
    for z in (lam + 0j, lam + 0.3j, lam + 1e-9j):
        solution = solve_stieltjes(model, z)
        residuals = theorem_equations(model, solution.q, solution.r, solution.s, z)
        for name, values in zip(("s", "r", "third"), residuals):
            scale = 1.0 + np.abs(solution.q) ** -2 * np.abs(solution.s) + model.psi_p * (
                1.0 + np.abs(z))
            assert np.max(np.abs(values) / scale) < 1e-10, name


@pytest.mark.parametrize("case", CASES)
def test_fast_solver_matches_reference(case):
    model = make(case)
    lam = np.concatenate([np.linspace(-0.2, 0.5, 5), np.geomspace(0.5, 60.0, 5)])
    reference = solve_reference(model, lam)
    fast = solve_stieltjes(model, lam + 1j * reference.epsilon)
    converged = reference.residual < 1e-10
    assert converged.mean() >= 0.8
    error = np.abs(fast.q - reference.q) / np.maximum(1.0, np.abs(reference.q))
    assert np.max(error[converged]) < 1e-8


@pytest.mark.parametrize("case", CASES)
def test_solution_is_stieltjes_transform(case):
    model = make(case)
    z = np.concatenate([np.linspace(-5, 60, 50) + 0.5j, np.array([1e4 + 1e4j, -3e4 + 10j])])
    q = solve_stieltjes(model, z).q
    assert np.all(q.imag > 0)
    assert np.all(q.imag >= 0.5 * z.imag * np.abs(q) ** 2 * (1 - 1e-9))
    far = z[-2:]
    np.testing.assert_allclose(q[-2:], -1.0 / far, rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_density_and_peak_integrate_to_one(case):
    model = make(case)
    weight, location = delta_peak(model)
    bulks = bulks_of(case)
    assert location == pytest.approx(model.constants.s_t2)
    assert weight + sum(b.mass for b in bulks) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("case", CASES)
def test_delta_peak_weight_is_rank_deficit(case):
    model = make(case)
    weight, _ = delta_peak(model)
    expected = max(0.0, 1.0 - (1.0 + model.psi_n) / model.psi_p)
    assert weight == pytest.approx(expected, abs=1e-12)
    # η Im q(s_t² + iη) has an O(η) error when no bulk comes near s_t²; a bulk starting
    # within 1e-3 · scale of it (ψ_p close to ψ_n + 1) makes the error O(sqrt η).
    gap = min(b.left for b in bulks_of(case)) - model.constants.s_t2
    if gap > 1e-3 * model.scale:
        assert delta_peak_numerical(model) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("psi_p,psi_n", [(64.0, 8.0), (32.0, 4.0), (20.0, 3.0)])
def test_bulk_masses_match_eigenvalue_counts_over(psi_p, psi_n):
    """For ψ_p > ψ_n + 1: d eigenvalues below ρ1, n − d in it, d in the second bulk."""
    model = spectrum_model(psi_p, psi_n, 0.01)
    bulks = find_bulks(model)
    labels = label_bulks(model, bulks)
    assert labels == ["below-first", "first", "second"]
    masses = [b.mass for b in bulks]
    np.testing.assert_allclose(masses, [1 / psi_p, (psi_n - 1) / psi_p, 1 / psi_p], atol=1e-9)


def test_bulk_masses_under_parameterized():
    model = spectrum_model(4.0, 8.0, 0.1)
    bulks = find_bulks(model)
    assert label_bulks(model, bulks) == ["first", "second"]
    np.testing.assert_allclose([b.mass for b in bulks], [0.75, 0.25], atol=1e-9)


@pytest.mark.parametrize("case", CASES[:4])
def test_density_vanishes_exactly_outside_bulks(case):
    model = make(case)
    for bulk in bulks_of(case):
        width = bulk.right - bulk.left
        step = 1e-6 * width
        inside = density(model, np.array([bulk.left + step, bulk.right - step]))
        outside = density(model, np.array([bulk.left - step, bulk.right + step]))
        assert np.all(inside > 0)
        assert np.all(outside == 0)


def test_paper_figure_second_bulk_spans_10_to_45():
    model = spectrum_model(64.0, 8.0, 0.01)
    second = find_bulks(model)[-1]
    assert 9.0 < second.left < 11.0
    assert 43.0 < second.right < 47.0


def test_two_level_sigma_moves_second_bulk_only():
    identity = find_bulks(spectrum_model(64.0, 8.0, 0.01))
    two = spectrum_model(64.0, 8.0, 0.01, *TWO_LEVELS)
    two_bulks = find_bulks(two)
    labels = label_bulks(two, two_bulks)
    first_two = two_bulks[labels.index("first")]
    assert first_two.left == pytest.approx(identity[1].left, rel=1e-3)
    assert first_two.right == pytest.approx(identity[1].right, rel=1e-3)
    second_two = [b for b, lab in zip(two_bulks, labels) if lab == "second"]
    assert len(second_two) == 2
    assert second_two[0].left < 0.7 * identity[2].left
    assert second_two[-1].right > 1.2 * identity[2].right


def test_theorem_3_2_edges_converge_at_large_ratios():
    """Edges of the exact first and second bulk approach Theorem 3.2 as ψ_p, ψ_n grow at
    fixed ψ_p/ψ_n; the neglected terms are of relative order ψ^{-1/2}."""
    errors = []
    for scale in (1, 4, 16):
        model = spectrum_model(64.0 * scale, 8.0 * scale, 0.01)
        bulks = find_bulks(model)
        labels = label_bulks(model, bulks)
        first = bulks[labels.index("first")]
        second = bulks[labels.index("second")]
        theory = asymptotic_spectrum(model)
        (rho2_left, rho2_right), = theory.rho2_support
        errors.append([abs(first.left / theory.rho1_support[0] - 1),
                       abs(first.right / theory.rho1_support[1] - 1),
                       abs(second.left / rho2_left - 1),
                       abs(second.right / rho2_right - 1)])
    errors = np.array(errors)
    assert np.all(errors[1] < errors[0])
    assert np.all(errors[2] < errors[1])
    assert np.all(errors[2] < 0.02)


def test_theorem_3_2_parts_are_normalised():
    model = spectrum_model(64.0, 8.0, 0.01, *TWO_LEVELS)
    theory = asymptotic_spectrum(model)
    lo, hi = theory.rho1_support
    x = np.linspace(lo, hi, 200001)
    assert np.trapezoid(rho1_density(model, x), x) == pytest.approx(1.0, abs=1e-5)
    total = 0.0
    for lo, hi in theory.rho2_support:
        x = lo + (hi - lo) * 0.5 * (1 - np.cos(np.linspace(0, np.pi, 4001)))
        total += np.trapezoid(rho2_density(model, x), x)
    assert total == pytest.approx(1.0, abs=1e-4)
    assert theory.delta_weight + theory.rho1_weight + theory.rho2_weight == pytest.approx(1.0)


def test_density_tolerance_is_far_below_bulk_density():
    model = spectrum_model(64.0, 8.0, 0.01)
    lam = np.linspace(0.1, 0.35, 50)
    assert np.all(solve_stieltjes(model, lam).q.imag > 1e6 * DENSITY_TOL)


@pytest.mark.parametrize("levels,weights,option", [
    ((1.0, -1.0), (0.5, 0.5), "--sigma-levels"),
    ((1.0, 2.0), (0.5,), "--sigma-weights"),
    ((1.0, 2.0), (0.5, 0.6), "--sigma-weights"),
])
def test_bad_sigma_spectrum_names_option(levels, weights, option):
    with pytest.raises(ConfigError, match=option):
        spectrum_model(8.0, 4.0, 0.1, levels, weights)


def test_bad_ratio_names_option():
    with pytest.raises(ConfigError, match="--psi-p"):
        spectrum_model(-1.0, 4.0, 0.1)


def sympy_resultant_coefficients(model):
    """Eliminate s and r from the three equations of Theorem 3.1 with sympy (exact rational
    arithmetic on the float parameters) and return the (q, z) coefficients, scaled to max 1."""
    import sympy as sp

    q, r, s, z = sp.symbols("q r s z")
    exact = lambda x: sp.Rational(float(x))  # noqa: E731
    b, c, alpha, beta = map(exact, (model.b, model.c, model.alpha, model.beta))
    psi_p, s2, v2 = map(exact, (model.psi_p, model.constants.s_t2, model.constants.v_t2))
    levels = [exact(v) for v in model.sigma.levels]
    weights = [exact(v) for v in model.sigma.weights]

    D = 1 + alpha * r + beta * q
    factors = [(b * q + 1) * D + level * c * q for level in levels]  # q D (ŝ + λ r̂)
    others = [sp.prod(factors[:i] + factors[i + 1:]) for i in range(len(factors))]
    eq_s = s * sp.prod(factors) - q * D * sum(w * o for w, o in zip(weights, others))
    eq_r = r * sp.prod(factors) - q * D * sum(w * lev * o for w, lev, o in
                                               zip(weights, levels, others))
    eq_third = psi_p * (s2 - z) * q**2 * D + psi_p * v2 * q**2 + (1 - psi_p) * q * D - s * D
    s_value = sp.solve(eq_s, s)[0]
    without_s = sp.numer(sp.together(eq_third.subs(s, s_value)))
    resultant = sp.Poly(sp.resultant(sp.expand(without_s), sp.expand(eq_r), r), q, z)
    terms = resultant.terms()
    largest = max(abs(coefficient) for _, coefficient in terms)
    out = np.zeros((resultant.degree(q) + 1, resultant.degree(z) + 1))
    for (i, j), coefficient in terms:
        out[i, j] = float(coefficient / largest)
    return out


@pytest.mark.parametrize("case", [CASES[0], CASES[1]])
def test_polynomial_roots_solve_sympy_resultant(case):
    """Every root of the hand-eliminated polynomial is a root of sympy's resultant."""
    from genwindow.theory.spectrum import polynomial_roots

    model = make(case)
    coefficients = sympy_resultant_coefficients(model)
    powers_q = np.arange(coefficients.shape[0])
    powers_z = np.arange(coefficients.shape[1])
    for z in (0.3 + 0.1j, 20.0 + 1.0j, 0.005 + 0.0j):
        roots = polynomial_roots(model, np.array([z]))[0]
        terms = coefficients[None] * (roots[:, None, None] ** powers_q[None, :, None]) * (
            z ** powers_z[None, None, :])
        relative = np.abs(terms.sum(axis=(1, 2))) / np.abs(terms).sum(axis=(1, 2))
        assert np.all(relative < 1e-10)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6]])
def test_neighbour_start_matches_all_roots(case, monkeypatch):
    """Newton from a neighbouring point selects the same root as the full root search."""
    import genwindow.theory.spectrum as spectrum

    model = make(case)
    rng = np.random.default_rng(0)
    lam = np.concatenate([spectrum.default_grid(model, 1500), rng.uniform(-1.0, 80.0, 300)])
    for z in (lam + 0j, lam + 1e-9j, lam + 0.01j):
        fast = solve_stieltjes(model, z).q
        monkeypatch.setattr(spectrum, "SELECTION_STRIDE", 1)
        full = solve_stieltjes(model, z).q
        monkeypatch.undo()
        np.testing.assert_allclose(fast, full, rtol=1e-10, atol=1e-10)
