"""Gaussian-equivalence constants against adaptive quadrature and Stein's identities."""

import math

import numpy as np
import pytest
from scipy import integrate

from genwindow.theory.constants import ge_constants, ge_constants_arrays

GAUSS = 1.0 / math.sqrt(2.0 * math.pi)


def expect_1d(f):
    value, _ = integrate.quad(lambda z: f(z) * GAUSS * math.exp(-z * z / 2), -40, 40,
                              epsabs=1e-14, epsrel=1e-13, limit=400)
    return value


def reference_constants(t, sigma_x2):
    """Same integrals with scipy's adaptive quadrature (nested for the 2-D one)."""
    delta = 1 - math.exp(-2 * t)
    gamma = math.sqrt(math.exp(-2 * t) * sigma_x2 + delta)
    signal = math.sqrt(math.exp(-2 * t) * sigma_x2)
    mu1 = expect_1d(lambda z: z * math.tanh(gamma * z))
    norm2 = expect_1d(lambda z: math.tanh(gamma * z) ** 2)
    a_t = expect_1d(lambda u: u * expect_1d(
        lambda v: math.tanh(signal * u + math.sqrt(delta) * v))) / signal
    b_t = expect_1d(lambda v: v * expect_1d(
        lambda u: math.tanh(signal * u + math.sqrt(delta) * v)))
    outer = expect_1d(lambda u: expect_1d(
        lambda v: math.tanh(signal * u + math.sqrt(delta) * v)) ** 2)
    v_t2 = outer - a_t**2 * signal**2
    s_t2 = norm2 - a_t**2 * signal**2 - v_t2 - b_t**2
    return dict(mu1=mu1, sigma_norm2=norm2, a_t=a_t, b_t=b_t, v_t2=v_t2, s_t2=s_t2)


@pytest.mark.parametrize("t,sigma_x2", [(0.01, 1.0), (0.1, 1.0), (1.0, 1.0), (0.1, 2.25)])
def test_constants_match_adaptive_quadrature(t, sigma_x2):
    got = ge_constants(t, sigma_x2).as_dict()
    want = reference_constants(t, sigma_x2)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-10), key


@pytest.mark.parametrize("t", [0.001, 0.01, 0.1, 0.5, 2.0])
def test_constants_satisfy_stein_identities(t):
    c = ge_constants(t)
    gamma = math.sqrt(c.Gamma_t2)
    assert c.a_t == pytest.approx(c.mu1 / gamma, abs=1e-12)
    assert c.b_t == pytest.approx(math.sqrt(c.Delta_t) * c.mu1 / gamma, abs=1e-12)
    assert c.v_t2 + c.s_t2 == pytest.approx(c.sigma_norm2 - c.mu1**2, abs=1e-12)
    assert c.v_t2 > 0
    assert c.s_t2 > 0


def test_constants_vectorised_equal_scalar_loop():
    times = np.array([0.01, 0.1, 1.0])
    arrays = ge_constants_arrays(times)
    for i, t in enumerate(times):
        scalar = ge_constants(float(t)).as_dict()
        for key, values in arrays.items():
            assert values[i] == pytest.approx(scalar[key], abs=1e-15), key


def test_constants_differentiable_with_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def v_t2(t):
        return ge_constants_arrays(t, 1.0, "tanh", jnp)["v_t2"]

    t, h = 0.1, 1e-5
    grad = jax.grad(v_t2)(t)
    finite_difference = (ge_constants(t + h).v_t2 - ge_constants(t - h).v_t2) / (2 * h)
    assert float(grad) == pytest.approx(finite_difference, rel=1e-6)
