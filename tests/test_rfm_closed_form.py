"""Closed-form learning curves of the random-features model against exact cases."""

import numpy as np
import pytest
from scipy.linalg import expm

from genwindow.rfm.bands import band_summary
from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import (PSDMatrix, gaussian_equivalent_U, gaussian_equivalent_matrices,
                                    ge_eigenvalues)
from genwindow.theory.time import steps_to_tau, tau_to_steps


@pytest.fixture(scope="module")
def small():
    inst = sample_instance(d=12, psi_p=4, psi_n=2, t=0.1, seed=3)
    return inst, gaussian_equivalent_matrices(inst)


def dense_closed_form(m, ridge=0.0):
    from dataclasses import replace

    return ClosedForm.from_matrices(replace(m, U=PSDMatrix(dense=m.U.to_dense())), ridge)


def test_zero_time_losses(small):
    inst, m = small
    curves = ClosedForm.from_matrices(m).curves([0.0])
    assert curves["train_loss"][0] == pytest.approx(1.0, abs=1e-15)
    assert curves["test_loss"][0] == pytest.approx(1.0, abs=1e-15)
    # For A = 0 the score error is E‖Σ_t⁻¹ x_t‖²/d = mean(1/Σ_t) (= E‖x‖²/d when Σ = I).
    assert curves["score_error"][0] == pytest.approx(np.mean(1 / inst.sigma_t_diag), abs=1e-15)


def test_weights_match_matrix_exponential(small):
    inst, m = small
    cf = ClosedForm.from_matrices(m)
    U, V = m.U.to_dense(), m.V
    rate = 2 * m.Delta_t / inst.psi_p
    for tau in (0.5, 20.0, 3000.0):
        want = -V.T @ np.linalg.solve(U, np.eye(inst.p) - expm(-rate * U * tau))
        want /= np.sqrt(m.Delta_t)
        assert np.allclose(cf.weights(tau), want, atol=1e-10, rtol=1e-8)


def test_curves_match_direct_loss_of_weights(small):
    _, m = small
    cf = ClosedForm.from_matrices(m)
    taus = [0.3, 7.0, 150.0, 1e4]
    curves = cf.curves(taus)
    for i, tau in enumerate(taus):
        direct = m.losses(cf.weights(tau))
        for key, value in direct.items():
            assert curves[key][i] == pytest.approx(value, abs=1e-12), (key, tau)


def test_infinite_time_equals_pseudo_inverse_solution(small):
    _, m = small
    limits = ClosedForm.from_matrices(m).limits()
    B_star = -np.linalg.pinv(m.U.to_dense()) @ m.V
    direct = m.losses(B_star.T / np.sqrt(m.Delta_t))
    for key, value in direct.items():
        assert limits[key] == pytest.approx(value, abs=1e-10), key


def test_ridge_limit_equals_ridge_solution(small):
    inst, m = small
    rho = 0.05
    limits = ClosedForm.from_matrices(m, ridge=rho).limits()
    B = -np.linalg.solve(m.U.to_dense() + rho * np.eye(inst.p), m.V).T / np.sqrt(m.Delta_t)
    for key, value in m.losses(B).items():
        assert limits[key] == pytest.approx(value, abs=1e-10), key


def test_array_of_times_equals_scalar_loop(small):
    _, m = small
    cf = ClosedForm.from_matrices(m)
    taus = np.logspace(-2, 5, 9)
    together = cf.curves(taus)
    for i, tau in enumerate(taus):
        alone = cf.curves(tau)
        for key in together:
            assert together[key][i] == pytest.approx(alone[key][0], rel=1e-13), key


def test_gram_reduction_equals_dense_eigendecomposition(small):
    _, m = small
    taus = np.logspace(-1, 6, 7)
    reduced = ClosedForm.from_matrices(m).curves(taus)
    dense = dense_closed_form(m).curves(taus)
    for key in reduced:
        assert np.allclose(reduced[key], dense[key], atol=1e-11, rtol=1e-10), key


def test_ge_eigenvalues_match_dense_and_count_delta_peak():
    inst = sample_instance(d=20, psi_p=64, psi_n=8, t=0.01, seed=0)
    dense = np.linalg.eigvalsh(gaussian_equivalent_U(inst))
    fast = ge_eigenvalues(inst)
    assert np.allclose(fast, dense, atol=1e-9)
    s2 = inst.constants.s_t2
    at_peak = np.sum(np.abs(dense - s2) < 1e-9)
    assert at_peak == inst.p - inst.n - inst.d


def test_second_bulk_edges_paper_sizes():
    # Bonnaire et al. (2025), Fig. 4: ψ_p = 64, ψ_n = 8, t = 0.01, d = 100.
    inst = sample_instance(d=100, psi_p=64, psi_n=8, t=0.01, seed=0)
    lam = ge_eigenvalues(inst)
    top = lam[-inst.d:]
    assert 8 < top.min() < 12
    assert 40 < top.max() < 50
    assert np.sum(np.abs(lam - inst.constants.s_t2) < 1e-9) == inst.p - inst.n - inst.d


def count_eigenvalues_below(matrix, value):
    """Count eigenvalues below ``value`` by Sylvester's law of inertia (one LDLᵀ)."""
    from scipy.linalg import ldl

    _, D, _ = ldl(matrix - value * np.eye(matrix.shape[0]))
    # D is block diagonal with 1×1 and 2×2 blocks; count the negative eigenvalues of each.
    negatives, i, size = 0, 0, D.shape[0]
    while i < size:
        if i + 1 < size and D[i + 1, i] != 0.0:
            negatives += int(np.sum(np.linalg.eigvalsh(D[i:i + 2, i:i + 2]) < 0))
            i += 2
        else:
            negatives += int(D[i, i] < 0)
            i += 1
    return negatives


@pytest.mark.slow
def test_dense_u_delta_peak_count():
    # The full 6400 × 6400 Gaussian-equivalent U, with no Gram reduction: U − s_t² I has
    # rank n + d, so exactly p − n − d eigenvalues sit at s_t² and none below it.
    inst = sample_instance(d=100, psi_p=64, psi_n=8, t=0.01, seed=0)
    U = gaussian_equivalent_U(inst)
    s2 = inst.constants.s_t2
    assert count_eigenvalues_below(U, s2 - 1e-6) == 0
    assert count_eigenvalues_below(U, s2 + 1e-6) == inst.p - inst.n - inst.d


def test_discrete_gains_approach_flow_at_small_steps(small):
    _, m = small
    cf = ClosedForm.from_matrices(m)
    taus = np.array([1.0, 100.0, 1e4])
    flow = cf.curves(taus)["test_loss"]
    coarse = cf.curves(taus, step_tau=1e-1)["test_loss"]
    fine = cf.curves(taus, step_tau=1e-2)["test_loss"]
    # Gradient descent differs from the flow at first order in the step.
    assert np.all(np.abs(fine - flow) < 0.2 * np.abs(coarse - flow) + 1e-14)


def test_band_gaps_sum_to_total_gap():
    inst = sample_instance(d=30, psi_p=16, psi_n=4, t=0.01, seed=1)
    cf = ClosedForm.from_instance(inst)
    for tau in (10.0, 1e4, None):
        rows = band_summary(cf, tau)
        assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-9)
        assert sum(r["modes"] for r in rows) == inst.p
    total = cf.curves([1e4])["gen_gap"][0]
    assert sum(r["gap"] for r in band_summary(cf, 1e4)) == pytest.approx(total, abs=1e-12)


def test_small_time_gap_lives_in_intermediate_cluster():
    # At t = 0.01 a group of d eigenvalues sits between the δ-peak and the first bulk,
    # and it carries most of the overfitting at long times.
    inst = sample_instance(d=40, psi_p=64, psi_n=8, t=0.01, seed=0)
    rows = {r["band"]: r for r in band_summary(ClosedForm.from_instance(inst))}
    assert rows["intermediate"]["modes"] == inst.d
    assert rows["second_bulk"]["modes"] == inst.d
    assert rows["first_bulk"]["modes"] == inst.n - inst.d
    assert rows["intermediate"]["share"] > 0.5


def test_steps_to_tau_round_trip_and_script_convention():
    d, p, lr = 50, 400, 3.0
    tau = steps_to_tau(1000, lr, d)
    assert tau == pytest.approx(1000 * lr / d**2)
    assert tau_to_steps(tau, lr, d) == pytest.approx(1000)
    # The authors' script trains A/sqrt(p): τ = (ψ_p/d) · step · lr'.
    assert steps_to_tau(1000, lr, d, p=p) == pytest.approx((p / d) / d * 1000 * lr)
    per_step = steps_to_tau(None, np.full(10, lr), d)
    assert per_step[-1] == pytest.approx(steps_to_tau(10, lr, d))
