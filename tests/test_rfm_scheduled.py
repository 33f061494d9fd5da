"""Schedules on the RF closed form: change of time, discrete GD, monitor noise, window metrics."""

import math

import numpy as np
import pytest

from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import build_matrices
from genwindow.rfm.scheduled import (MonitorNoise, WindowCriteria, discrete_gd_curves,
                                     fit_power_law, jax_curves_fn, run_schedule, timescales,
                                     window_metrics)
from genwindow.schedules import make_schedule
from genwindow.schedules.controllers import ThresholdController
from genwindow.schedules.rf_compare import interpolate_n_mem
from genwindow.schedules.shapes import Cosine, InverseTime


@pytest.fixture(scope="module")
def small():
    inst = sample_instance(d=20, psi_p=4, psi_n=2, t=0.1, seed=3)
    return inst, ClosedForm.from_instance(inst)


def test_discrete_gd_matches_direct_iteration(small):
    """The per-mode product equals gradient descent on the noise-averaged loss itself."""
    inst, cf = small
    m = build_matrices(inst, "gaussian-equivalent")
    U, V = m.U.to_dense(), m.V
    step_tau = 0.3
    shape = Cosine(total_steps=60, min_factor=0.1)
    factors = shape.factor(np.arange(60))
    # B = A / sqrt(p); one step of size η on A moves B by −(η / p) ∂L/∂B, η = step_tau d².
    B = np.zeros((inst.d, inst.p))
    record = [0, 7, 30, 60]
    direct = []
    for step in range(61):
        if step in record:
            direct.append(m.losses(B))
        if step == 60:
            break
        grad = (2 * m.Delta_t / inst.d) * B @ U + (2 * math.sqrt(m.Delta_t) / inst.d) * V.T
        B = B - step_tau * inst.d**2 / inst.p * factors[step] * grad
    exact = discrete_gd_curves(cf, factors, step_tau, record)
    for key in ("train_loss", "test_loss", "gen_gap"):
        np.testing.assert_allclose(exact[key], [row[key] for row in direct], rtol=1e-9,
                                   atol=1e-12)


def test_discrete_gd_converges_to_time_change(small):
    """Curves of two schedules at equal T differ by O(step_tau) and agree as it goes to 0."""
    _, cf = small
    errors = []
    for step_tau in (0.2, 0.1, 0.05):
        total = 20.0 / step_tau     # the same τ_end = 20 for every step size
        steps = int(total)
        shape = InverseTime(s0=steps / 4)
        factors = shape.factor(np.arange(steps))
        gd = discrete_gd_curves(cf, factors, step_tau, [steps])["score_error"][0]
        flow = cf.curves([step_tau * shape.cumulative(steps)])["score_error"][0]
        errors.append(abs(gd - flow))
    assert errors[0] > 0
    # First order in the step: halving it halves the error, to within 15%.
    assert errors[1] / errors[0] == pytest.approx(0.5, rel=0.15)
    assert errors[2] / errors[1] == pytest.approx(0.5, rel=0.15)


def test_open_loop_equals_controller_path(small):
    """A controller that never acts reproduces the shape's closed-form T step by step."""
    inst, cf = small
    shape = Cosine(total_steps=150, min_factor=0.05)
    quiet = ThresholdController(decay_level=1e9, base=shape)
    open_loop = run_schedule(cf, shape, 150, 0.2, inst.n)
    closed = run_schedule(cf, quiet, 150, 0.2, inst.n, eval_every=7,
                          noise=MonitorNoise("gaussian", 100))
    np.testing.assert_allclose(closed.cumulative, open_loop.cumulative, rtol=1e-12,
                               atol=1e-12)
    assert len(closed.monitor_log) == math.ceil(150 / 7)


def test_window_metrics_constant_rate(small):
    inst, cf = small
    scales = timescales(cf)
    assert scales.tau_gen < scales.tau_min
    assert scales.tau_gen < scales.tau_mem < math.inf
    step_tau = 0.25
    budget = 400
    run = run_schedule(cf, make_schedule("constant"), budget, step_tau, inst.n)
    metrics = window_metrics(run, scales, cf)
    assert metrics["step_gen"] == math.ceil(scales.tau_gen / step_tau)
    assert metrics["step_mem"] == math.ceil(scales.tau_mem / step_tau)
    assert metrics["steps_in_window"] == metrics["step_mem"] - metrics["step_gen"]
    level = cf.curves([scales.tau_mem])
    assert level["gen_gap"][0] / level["test_loss"][0] == pytest.approx(0.05, rel=1e-8)


def test_timescales_crossings_are_exact(small):
    _, cf = small
    criteria = WindowCriteria(gen_tolerance=0.1, mem_threshold=0.03)
    s = timescales(cf, criteria)
    score = cf.curves([s.tau_gen])["score_error"][0]
    level = s.score_error_min + 0.1 * (s.score_error_start - s.score_error_min)
    assert score == pytest.approx(level, rel=1e-9)
    assert cf.curves([s.tau_min * 1.01])["score_error"][0] >= s.score_error_min
    assert cf.curves([s.tau_min / 1.01])["score_error"][0] >= s.score_error_min


def test_stop_controller_keeps_out_of_memorization(small):
    inst, cf = small
    scales = timescales(cf)
    ctrl = make_schedule(f"size-aware:mode=stop,unit=tau,variable=psi_n,alpha=1,kappa=0.9,"
                         f"c={scales.tau_mem / 2.0!r}", psi_n=2.0, tau_per_step=0.25)
    run = run_schedule(cf, ctrl, 1000, 0.25, inst.n)
    metrics = window_metrics(run, scales, cf)
    assert run.tau_end == pytest.approx(0.9 * scales.tau_mem)
    assert not metrics["memorized"]
    assert metrics["ends_in_window"]


def test_monitor_noise_matches_sampled_losses():
    """The Gaussian monitor noise has the variance of real per-sample losses (true tanh)."""
    inst = sample_instance(d=30, psi_p=4, psi_n=2, t=0.1, seed=1)
    cf = ClosedForm.from_instance(inst, features="true", noise_samples=64)
    rng = np.random.default_rng(0)
    delta = inst.constants.Delta_t
    samples = 40_000
    for tau in (5.0, 200.0):
        B = cf.weights(tau)
        test = cf.curves([tau])["test_loss"][0]
        x = rng.standard_normal((samples, inst.d)) * np.sqrt(inst.sigma_diag)
        xi = rng.standard_normal((samples, inst.d))
        x_t = math.exp(-inst.t) * x + math.sqrt(delta) * xi
        residual = math.sqrt(delta) * inst.features(x_t) @ B.T + xi
        losses = (residual**2).sum(axis=1) / inst.d
        # The sample variance of 4e4 draws has about 1.5% relative error; allow 12%.
        assert losses.var() == pytest.approx(2 * test**2 / inst.d, rel=0.12)
        assert losses.mean() == pytest.approx(test, rel=0.01)


def test_monitor_noise_scale():
    noise = MonitorNoise("gaussian", held_out=400)
    rng = np.random.default_rng(1)
    draws = [noise.observe({"train_loss": 1.0, "test_loss": 1.0}, 50, 10**9, rng)["test_loss"]
             for _ in range(4000)]
    assert np.std(draws) == pytest.approx(math.sqrt(2 / (50 * 400)), rel=0.05)
    quiet = MonitorNoise("none").observe({"train_loss": 0.5, "test_loss": 1.0}, 50, 10, rng)
    assert quiet["rel_gap"] == 0.5


def test_jax_curves_match_numpy(small):
    _, cf = small
    fn = jax_curves_fn(cf)
    for tau in (0.5, 10.0, 300.0):
        score, rel_gap = fn(tau)
        c = cf.curves([tau])
        assert float(score) == pytest.approx(c["score_error"][0], rel=1e-12)
        assert float(rel_gap) == pytest.approx(c["gen_gap"][0] / c["test_loss"][0], rel=1e-9)


def test_fit_power_law_and_interpolation():
    psi = np.array([1.0, 2.0, 4.0, 8.0])
    c, alpha = fit_power_law(psi, 3.0 * psi**1.5)
    assert (c, alpha) == pytest.approx((3.0, 1.5))
    tau_mem = 10.0 * psi
    # τ_end = 25 lies between tau_mem at ψ = 2 (20) and ψ = 4 (40).
    estimate = interpolate_n_mem(psi, np.full(4, 25.0), tau_mem)
    assert estimate == pytest.approx(2.5)
    assert interpolate_n_mem(psi, np.full(4, 100.0), tau_mem) != interpolate_n_mem(
        psi, np.full(4, 100.0), tau_mem)   # NaN: every ψ memorizes
    assert interpolate_n_mem(psi, np.full(4, 5.0), tau_mem) == 0.0
