"""Real training of A against the closed form, and Gaussian equivalence at finite d."""

import numpy as np
import pytest

from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import gaussian_equivalent_matrices
from genwindow.rfm.training import max_stable_lr, train_rf


def test_gradient_descent_matches_closed_form_within_noise():
    """Replicas of SGD with fresh noise average to the closed form.

    The gradient is linear in A and the fresh noise is independent of A, so the mean of A
    over noise follows plain gradient descent on the noise-averaged loss exactly: the
    closed form with discrete-time factors. The mean loss exceeds the loss of the mean by
    the fluctuation term (Δ/d) Tr(U Cov A), which the replicas estimate without bias. What
    is left is the Monte Carlo error of the replica average: 4 standard errors.
    """
    inst = sample_instance(d=10, psi_p=4, psi_n=2, t=0.1, seed=0)
    m = gaussian_equivalent_matrices(inst)
    cf = ClosedForm.from_matrices(m)
    lr = 0.02 * max_stable_lr(m)
    steps, replicas = 250, 12
    runs = [train_rf(inst, lr, steps, features="gaussian-equivalent", matrices=m, seed=s,
                     record_steps=[steps]) for s in range(replicas)]
    weights = np.stack([r.attrs["weights"] for r in runs])
    tau = runs[0]["tau"].iloc[-1]
    predicted = cf.curves([tau], step_tau=lr / inst.d**2)
    mean_weights = weights.mean(axis=0)
    for key in ("train_loss", "test_loss"):
        per_run = np.array([r[key].iloc[-1] for r in runs])
        excess = replicas / (replicas - 1) * (per_run.mean() - m.losses(mean_weights)[key])
        standard_error = per_run.std(ddof=1) / np.sqrt(replicas)
        assert abs(per_run.mean() - excess - predicted[key][0]) < 4 * standard_error, key
    # The flow and gradient descent differ by the step size only: both close at this rate.
    flow = cf.curves([tau])["test_loss"][0]
    assert abs(flow - predicted["test_loss"][0]) < 0.05 * abs(1 - flow)


def test_true_features_follow_closed_form():
    inst = sample_instance(d=10, psi_p=4, psi_n=2, t=0.1, seed=1)
    cf = ClosedForm.from_instance(inst, "true", noise_samples=2000)
    from genwindow.rfm.matrices import build_matrices

    m = build_matrices(inst, "true", noise_samples=2000)
    lr = 0.01 * max_stable_lr(m)
    run = train_rf(inst, lr, 600, matrices=m, seed=0, record_steps=[100, 600])
    predicted = cf.curves(run["tau"].to_numpy(), step_tau=lr / inst.d**2)
    # At this rate the noise of one run is about 1e-2 relative (lr · Δ λ_max/(p d)).
    # The Monte Carlo error of U with 2000 draws per point is below 1e-2 as well.
    assert np.allclose(run["test_loss"], predicted["test_loss"], rtol=0.03)
    assert np.allclose(run["train_loss"], predicted["train_loss"], rtol=0.03)


def test_float32_and_float64_training_agree():
    inst = sample_instance(d=10, psi_p=4, psi_n=2, t=0.1, seed=2)
    m = gaussian_equivalent_matrices(inst)
    lr = 0.05 * max_stable_lr(m)
    kwargs = dict(features="gaussian-equivalent", matrices=m, seed=5, record_steps=[50, 200])
    double = train_rf(inst, lr, 200, dtype="float64", **kwargs)
    single = train_rf(inst, lr, 200, dtype="float32", **kwargs)
    # Same noise draws in both; float32 rounding accumulates over 200 steps to ~1e-5.
    assert np.allclose(single["test_loss"], double["test_loss"], rtol=1e-4)
    assert not np.array_equal(single["test_loss"], double["test_loss"])


def test_minibatch_and_adam_run_and_learn():
    inst = sample_instance(d=10, psi_p=4, psi_n=2, t=0.1, seed=0)
    m = gaussian_equivalent_matrices(inst)
    lr = 0.05 * max_stable_lr(m)
    mini = train_rf(inst, lr, 200, batch_size=5, matrices=m, features="gaussian-equivalent")
    adam = train_rf(inst, 0.05, 200, optimizer="adam", matrices=m,
                    features="gaussian-equivalent")
    for run in (mini, adam):
        assert run["train_loss"].iloc[-1] < 0.95
        assert run["step"].iloc[-1] == 200


def test_divergent_rate_raises_with_stable_bound():
    from genwindow.errors import ConfigError

    inst = sample_instance(d=10, psi_p=4, psi_n=2, t=0.1, seed=0)
    m = gaussian_equivalent_matrices(inst)
    with pytest.raises(ConfigError, match="--lr"):
        train_rf(inst, 5 * max_stable_lr(m), 400, matrices=m, features="gaussian-equivalent",
                 record_steps=[400])


@pytest.mark.slow
def test_gaussian_equivalent_curves_converge_to_true_features():
    """GE and true-feature curves approach each other as d grows.

    Gaussian equivalence becomes exact as d → ∞, and its finite-d error shrinks at least like
    1/sqrt(d) (seed-to-seed fluctuations) and its mean like 1/d. From d = 10 to d = 40
    the seed-averaged discrepancy must therefore at least halve, within 3 standard errors
    of the 4-seed averages. Early times (τ ≤ 10, only the second bulk has moved) agree to
    within 0.005 already at d = 10.
    """
    taus = np.array([1.0, 10.0, 100.0, 1e3, 1e4])

    def discrepancy(d):
        diffs = []
        for seed in range(4):
            inst = sample_instance(d=d, psi_p=4, psi_n=2, t=0.1, seed=seed)
            ge = ClosedForm.from_instance(inst).curves(taus)["test_loss"]
            true = ClosedForm.from_instance(inst, "true", noise_samples=256).curves(taus)
            diffs.append(ge - true["test_loss"])
        diffs = np.array(diffs)
        return np.abs(diffs.mean(axis=0)), diffs.std(axis=0, ddof=1) / 2.0

    small_mean, small_se = discrepancy(10)
    large_mean, large_se = discrepancy(40)
    assert np.all(small_mean[:2] < 0.005)
    worst = int(np.argmax(small_mean))
    assert large_mean[worst] < 0.5 * small_mean[worst] + 3 * np.hypot(large_se[worst],
                                                                       0.5 * small_se[worst])
