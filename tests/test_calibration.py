"""Calibration: recover analytically known optima, keep the constraint, search levels."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from genwindow.schedules.calibration import (calibrate_size_aware, end_time,
                                             search_threshold)

PSI = np.array([1.0, 2.0, 4.0, 8.0])
C, ALPHA = 3.0, 1.2
BUDGET, STEP_TAU = 10_000, 0.5


def _log_bowl(kappa0):
    """Score errors minimized exactly at τ = κ0 c ψ^α for every ψ: the optimum is κ = κ0."""
    return [lambda tau, p=p: 1.0 + (jnp.log(tau) - math.log(kappa0 * C * p**ALPHA))**2
            for p in PSI]


def test_recovers_unconstrained_kappa():
    result = calibrate_size_aware(_log_bowl(0.37), PSI, np.full(4, np.inf), C, ALPHA,
                                  BUDGET, STEP_TAU, mode="stop", kappa_init=2.0, steps=400)
    assert result.kappa == pytest.approx(0.37, rel=1e-3)
    assert result.objective == pytest.approx(0.0, abs=1e-6)
    assert result.feasible


def test_constraint_binds_at_known_kappa():
    """A decreasing score error pushes τ_end up to the memorization limit: κ = ρ exactly."""
    rho = 0.6
    fns = [lambda tau: 1.0 / tau for _ in PSI]
    tau_mem = rho * C * PSI**ALPHA
    result = calibrate_size_aware(fns, PSI, tau_mem, C, ALPHA, BUDGET, STEP_TAU, mode="stop",
                                  kappa_init=0.1, steps=400)
    assert result.kappa_max == pytest.approx(rho)
    assert result.kappa == pytest.approx(rho, rel=1e-5)
    assert result.feasible
    assert all(t < m for t, m in zip(result.tau_end, tau_mem))


def test_budget_limits_end_time():
    """When the budget ends before the onset, κ has no effect beyond it: τ_end = S step_tau."""
    fns = [lambda tau: 1.0 / tau for _ in PSI]
    result = calibrate_size_aware(fns, PSI, np.full(4, np.inf), C, ALPHA, 100, STEP_TAU,
                                  mode="stop", steps=200)
    assert result.tau_end == pytest.approx((50.0,) * 4)


def test_decay_mode_is_feasible_and_near_optimal():
    """Decreasing score, limits at ρ c ψ^α: the best δ is 0 and the best κ is ρ."""
    rho = 0.8
    budget = 200
    fns = [lambda tau: 1.0 / tau for _ in PSI]
    tau_mem = rho * C * PSI**ALPHA
    result = calibrate_size_aware(fns, PSI, tau_mem, C, ALPHA, budget, STEP_TAU,
                                  mode="decay", steps=500, learning_rate=0.05)
    assert result.feasible
    tau_end = end_time(result.kappa, result.decay, PSI, C, ALPHA, budget, STEP_TAU)
    assert np.all(tau_end < tau_mem)
    best = end_time(rho, 0.0, PSI, C, ALPHA, budget, STEP_TAU)
    # Within 2% of the best reachable objective, mean log(1/τ_end).
    assert result.objective <= float(np.mean(np.log(1.0 / best))) + 0.02


def test_search_threshold_picks_best_feasible_level():
    def evaluate(level, seed):
        # Objective falls with the level; levels above 0.3 memorize on some seeds.
        return -level, int(level > 0.3 and seed % 2 == 0)

    level, table = search_threshold(evaluate, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert level == pytest.approx(0.3)
    assert len(table) == 5
    assert table[-1]["memorized_runs"] == 2


def test_search_threshold_reports_none_feasible():
    level, _ = search_threshold(lambda level, seed: (0.0, 1), [0.1, 0.2])
    assert math.isnan(level)


@pytest.mark.parametrize("decay", [0.0, 0.02, 0.05])
def test_kappa_max_is_feasibility_edge(decay):
    from genwindow.schedules.calibration import kappa_max

    limits = np.array([4.0, 9.0, 30.0, 1e9])
    budget = 100
    edge = kappa_max(decay, PSI, C, ALPHA, budget, STEP_TAU, limits)
    inside = end_time(edge * (1 - 1e-9), decay, PSI, C, ALPHA, budget, STEP_TAU)
    outside = end_time(edge * (1 + 1e-9), decay, PSI, C, ALPHA, budget, STEP_TAU)
    assert np.all(inside < limits)
    assert np.any(outside > limits)


def test_kappa_max_zero_when_decay_alone_memorizes():
    from genwindow.schedules.calibration import kappa_max

    # δ S step_tau = 0.3 · 100 · 0.5 = 15 passes the first limit whatever κ is.
    assert kappa_max(0.3, PSI, C, ALPHA, 100, STEP_TAU, np.array([4.0, 9.0, 30.0, 1e9])) == 0
