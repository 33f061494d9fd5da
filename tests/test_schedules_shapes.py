"""Learning-rate shapes: closed-form T against the summed factors and the sympy derivation."""

import math

import numpy as np
import pytest
import sympy as sp

from genwindow.errors import ConfigError
from genwindow.schedules import derivations as D
from genwindow.schedules import make_schedule, shapes

SHAPES = [
    shapes.Constant(0.7),
    shapes.StepDecay(step_size=7, gamma=0.5),
    shapes.StepDecay(step_size=1, gamma=1.0),
    shapes.Exponential(gamma=0.97),
    shapes.Exponential(gamma=1.0 - 1e-9),
    shapes.Cosine(total_steps=50, min_factor=0.1),
    shapes.Cosine(total_steps=1),
    shapes.InverseTime(s0=3.5),
    shapes.Warmup(shapes.Cosine(total_steps=40, min_factor=0.0), warmup_steps=10),
    shapes.Warmup(shapes.InverseTime(s0=20.0), warmup_steps=1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
def test_cumulative_matches_numeric_sum(shape):
    steps = np.arange(0, 121)
    factors = shape.factor(steps)
    numeric = np.concatenate([[0.0], np.cumsum(factors)])[:-1]
    closed = shape.cumulative(steps)
    # Summation error of 120 float64 terms bounds the agreement.
    np.testing.assert_allclose(closed, numeric, rtol=1e-12, atol=1e-12 * steps.size)


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
def test_boundaries_at_zero_and_last_step(shape):
    assert shape.cumulative(0) == 0.0
    last = 10_000
    expected = math.fsum(shape.factor(np.arange(last)))
    assert shape.cumulative(last) == pytest.approx(expected, rel=1e-10)
    assert shape.cumulative(last + 1) - shape.cumulative(last) == pytest.approx(
        shape.factor(last), rel=1e-8, abs=1e-12)


def test_factor_values_at_boundaries():
    assert shapes.Cosine(100, 0.2).factor(0) == pytest.approx(1.0)
    assert shapes.Cosine(100, 0.2).factor(100) == pytest.approx(0.2)
    assert shapes.Cosine(100, 0.2).factor(50) == pytest.approx(0.6)
    assert shapes.StepDecay(10, 0.1).factor(9) == 1.0
    assert shapes.StepDecay(10, 0.1).factor(10) == pytest.approx(0.1)
    assert shapes.InverseTime(10.0).factor(10) == pytest.approx(0.5)
    warm = shapes.Warmup(shapes.Constant(2.0), 4)
    assert list(warm.factor(np.arange(6))) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


def test_scalar_and_array_inputs():
    shape = shapes.Cosine(10)
    assert isinstance(shape.cumulative(3), float)
    assert shape.cumulative(np.array([3]))[0] == shape.cumulative(3)
    with pytest.raises(ValueError, match="integers"):
        shape.cumulative(2.5)
    with pytest.raises(ValueError, match="≥ 0"):
        shape.factor(-1)


@pytest.mark.parametrize("derive", [D.exponential, D.cosine, D.inverse_time, D.warmup_ramp])
def test_sympy_sum_solves_recurrence(derive):
    eta, total = derive()
    assert D.check_recurrence(eta, total)


def _lambdify(expr, symbols):
    return sp.lambdify(symbols, expr, modules=["numpy", "scipy"])


def test_numpy_forms_equal_sympy_forms():
    j = np.arange(0, 60)
    _, total = D.exponential()
    np.testing.assert_allclose(shapes.Exponential(0.93).cumulative(j),
                               _lambdify(total, (D.j, D.gamma))(j, 0.93), rtol=1e-12)
    _, total = D.cosine()
    K = 59
    np.testing.assert_allclose(shapes.Cosine(K, 0.25).cumulative(j),
                               _lambdify(total, (D.j, D.K, D.m))(j, K, 0.25),
                               rtol=1e-11, atol=1e-11)
    _, total = D.inverse_time()
    np.testing.assert_allclose(shapes.InverseTime(4.5).cumulative(j),
                               _lambdify(total, (D.j, D.s0))(j, 4.5), rtol=1e-12)
    _, total = D.step_decay_blocks()
    q, r = sp.symbols("q r", integer=True, nonnegative=True)
    blocks = _lambdify(total, (q, r, D.S, D.gamma))
    expected = blocks(j // 6, j % 6, 6, 0.6)
    np.testing.assert_allclose(shapes.StepDecay(6, 0.6).cumulative(j), expected, rtol=1e-12)


def test_registry_builds_shapes_with_warmup():
    shape = make_schedule("cosine:warmup=10,min_factor=0.1", total_steps=110)
    assert isinstance(shape, shapes.Warmup)
    assert shape.inner.total_steps == 100
    assert shape.factor(109) == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown schedule 'nope'"),
    ("cosine:foo=1", "no parameter foo"),
    ("cosine:total_steps=abc", "total_steps='abc' is not a valid int"),
    ("exponential:gamma=1.5", "gamma must be finite and > 0 and ≤ 1"),
    ("step:gamma", "not KEY=VALUE"),
    ("constant:value=1,value=2", "sets 'value' twice"),
    ("", "non-empty"),
])
def test_registry_rejects_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_schedule(spec)


def test_shape_state_roundtrip_checks_parameters():
    shape = shapes.StepDecay(10, 0.5)
    shapes.StepDecay(10, 0.5).load_state_dict(shape.state_dict())
    with pytest.raises(ConfigError, match="same parameters"):
        shapes.StepDecay(10, 0.25).load_state_dict(shape.state_dict())
    with pytest.raises(ConfigError, match="kind 'step'"):
        shapes.Constant().load_state_dict(shape.state_dict())
