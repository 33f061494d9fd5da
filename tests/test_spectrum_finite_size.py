"""Spectrum of U against the eigenvalues of sampled Gaussian-equivalent matrices.

Tolerances follow random-matrix finite-size scales: a bulk of m eigenvalues has its edge
eigenvalues within O(m^{-2/3}) of the limit edge (in units of its width) and an empirical
distribution within O(1/m) of the limit (Kolmogorov distance); both are asserted with a
factor of about 2 over what seeds 0 and 1 give.
"""

import functools

import numpy as np
import pytest

from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import ge_eigenvalues
from genwindow.theory.spectrum import density, find_bulks, spectrum_model
from genwindow.theory.spectrum_asymptotic import label_bulks
from genwindow.theory.spectrum_summary import count_in_bulks

T = 0.01
PSI_P, PSI_N = 64.0, 8.0


@functools.lru_cache(maxsize=None)
def theory(psi_p, psi_n, t, levels=(1.0,), weights=(1.0,)):
    model = spectrum_model(psi_p, psi_n, t, levels, weights)
    return model, find_bulks(model)


@functools.lru_cache(maxsize=None)
def eigenvalues(d, psi_p, psi_n, t, seed=0, levels=(1.0,), weights=(1.0,)):
    inst = sample_instance(d, psi_p, psi_n, t, seed=seed, sigma_levels=levels,
                           sigma_weights=weights)
    return inst, ge_eigenvalues(inst)


def bulk_cdf(model, bulk, points=4001):
    """Return the normalised distribution function of the density on one bulk."""
    theta = np.linspace(0.0, np.pi, points)
    lam = 0.5 * (bulk.left + bulk.right) - 0.5 * (bulk.right - bulk.left) * np.cos(theta)
    rho = density(model, lam)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(lam))])
    return lambda x: np.interp(x, lam, cdf / cdf[-1])


def kolmogorov_distances(model, bulks, values, counts):
    rest = values[np.abs(values - model.constants.s_t2) > 1e-10]
    distances = []
    for bulk, found in zip(bulks, counts["bulks"]):
        members = np.sort(rest[(rest >= found["left"]) & (rest <= found["right"])])
        cdf = bulk_cdf(model, bulk)(members)
        m = members.size
        distances.append(max(np.max(np.arange(1, m + 1) / m - cdf),
                             np.max(cdf - np.arange(m) / m)))
    return np.array(distances)


@pytest.mark.parametrize("d", [100, 200])
def test_bulk_counts_match_masses(d):
    model, bulks = theory(PSI_P, PSI_N, T)
    inst, values = eigenvalues(d, PSI_P, PSI_N, T)
    counts = count_in_bulks(values, bulks, model.constants.s_t2)
    assert counts["delta"] == inst.p - inst.n - inst.d
    assert [b["count"] for b in counts["bulks"]] == [inst.d, inst.n - inst.d, inst.d]
    for bulk, found in zip(bulks, counts["bulks"]):
        assert found["count"] == pytest.approx(bulk.mass * inst.p, abs=1e-6)


@pytest.mark.parametrize("d", [100, 200])
def test_edges_match_histogram(d):
    model, bulks = theory(PSI_P, PSI_N, T)
    _, values = eigenvalues(d, PSI_P, PSI_N, T)
    counts = count_in_bulks(values, bulks, model.constants.s_t2)
    for bulk, found in zip(bulks, counts["bulks"]):
        width = bulk.right - bulk.left
        tolerance = 3.0 * found["count"] ** (-2.0 / 3.0) * width
        assert abs(found["left"] - bulk.left) < tolerance
        assert abs(found["right"] - bulk.right) < tolerance


def test_eigenvalue_distribution_converges_with_d():
    model, bulks = theory(PSI_P, PSI_N, T)
    distances = {}
    for d in (100, 200):
        _, values = eigenvalues(d, PSI_P, PSI_N, T)
        counts = count_in_bulks(values, bulks, model.constants.s_t2)
        sizes = np.array([b["count"] for b in counts["bulks"]])
        distances[d] = kolmogorov_distances(model, bulks, values, counts)
        assert np.all(distances[d] < 8.0 / sizes)
    assert np.all(distances[200] < distances[100])


def test_two_level_sigma_counts_and_edges():
    levels, weights = (0.5, 1.5), (0.5, 0.5)
    model, bulks = theory(PSI_P, PSI_N, T, levels, weights)
    inst, values = eigenvalues(100, PSI_P, PSI_N, T, 0, levels, weights)
    counts = count_in_bulks(values, bulks, model.constants.s_t2)
    assert label_bulks(model, bulks) == ["below-first", "below-first", "first", "second",
                                         "second"]
    half = inst.d // 2
    assert [b["count"] for b in counts["bulks"]] == [half, half, inst.n - inst.d, half, half]
    for bulk, found in zip(bulks, counts["bulks"]):
        tolerance = 3.0 * found["count"] ** (-2.0 / 3.0) * (bulk.right - bulk.left)
        assert abs(found["left"] - bulk.left) < tolerance
        assert abs(found["right"] - bulk.right) < tolerance


@pytest.mark.parametrize("psi_p,psi_n,t", [(4.0, 8.0, 0.1), (9.5, 8.0, 0.1)])
def test_counts_in_other_regimes(psi_p, psi_n, t):
    """Under-parameterized (p − d and d eigenvalues) and just above ψ_n + 1 (n and d)."""
    model, bulks = theory(psi_p, psi_n, t)
    inst, values = eigenvalues(100, psi_p, psi_n, t)
    counts = count_in_bulks(values, bulks, model.constants.s_t2)
    assert counts["delta"] == max(0, inst.p - inst.n - inst.d)
    for bulk, found in zip(bulks, counts["bulks"]):
        assert found["count"] == pytest.approx(bulk.mass * inst.p, abs=1e-6)
        tolerance = 3.0 * found["count"] ** (-2.0 / 3.0) * (bulk.right - bulk.left)
        assert abs(found["left"] - bulk.left) < tolerance
        assert abs(found["right"] - bulk.right) < tolerance
