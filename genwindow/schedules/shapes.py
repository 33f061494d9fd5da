"""Learning-rate shapes: fixed functions of the optimizer step, with closed-form cumulative sums.

Each shape gives the factor η(k) that multiplies the base learning rate at step k (k = 0, 1,
…), and T(j) = Σ_{k=0}^{j-1} η(k), the training time after j steps in units of steps at the
base rate. For gradient flow on a quadratic loss the state after j steps depends on the
schedule only through T(j). The closed forms of T below are derived with sympy in
``genwindow.schedules.derivations`` and checked there against the summed series.

``factor`` and ``cumulative`` accept an integer or an integer array and are vectorised.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from scipy.special import digamma

from genwindow.errors import ConfigError
from genwindow.schedules.base import Action, check_state, require_finite


class Shape:
    """Base class: a stateless schedule given by η(step); subclasses define both sums."""

    name = "shape"
    reads_metrics = False

    def factor(self, step):
        raise NotImplementedError

    def cumulative(self, step):
        raise NotImplementedError

    def params(self) -> dict:
        raise NotImplementedError

    def update(self, step: int, metrics: Mapping[str, float]) -> Action:
        return Action(lr_factor=float(self.factor(step)))

    def state_dict(self) -> dict:
        return {"kind": self.name, **self.params()}

    def load_state_dict(self, state: dict) -> None:
        # A shape has no state beyond its parameters; loading checks that they match.
        check_state(state, self.name, tuple(self.params()))
        saved = {key: state[key] for key in self.params()}
        if saved != self.params():
            raise ConfigError(f"state_dict of {self.name!r} has parameters {saved}, but this "
                              f"schedule has {self.params()}; resume with the same parameters")

    def __repr__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}:{args}" if args else self.name


def _steps(step) -> np.ndarray:
    steps = np.asarray(step)
    if not np.issubdtype(steps.dtype, np.integer):
        rounded = np.rint(steps)
        if np.any(rounded != steps):
            raise ValueError(f"steps must be integers, got {step!r}")
        steps = rounded.astype(np.int64)
    if np.any(steps < 0):
        raise ValueError(f"steps must be ≥ 0, got {step!r}")
    return steps


def _result(values: np.ndarray, step):
    return float(values) if np.ndim(step) == 0 else values


class Constant(Shape):
    """η(k) = value."""

    name = "constant"

    def __init__(self, value: float = 1.0):
        self.value = require_finite("value", value, 0.0, low_open=True)

    def factor(self, step):
        k = _steps(step)
        return _result(np.full(k.shape, self.value), step)

    def cumulative(self, step):
        j = _steps(step)
        return _result(self.value * j.astype(np.float64), step)

    def params(self) -> dict:
        return {"value": self.value}


class StepDecay(Shape):
    """η(k) = γ^floor(k / step_size): the rate drops by γ every ``step_size`` steps."""

    name = "step"

    def __init__(self, step_size: int = 1000, gamma: float = 0.1):
        self.step_size = int(require_finite("step_size", step_size, 1))
        self.gamma = require_finite("gamma", gamma, 0.0, 1.0, low_open=True)

    def factor(self, step):
        k = _steps(step)
        return _result(self.gamma ** (k // self.step_size).astype(np.float64), step)

    def cumulative(self, step):
        # T(j) = s (1 − γ^q) / (1 − γ) + r γ^q, with j = q s + r, 0 ≤ r < s.
        j = _steps(step)
        q, r = np.divmod(j, self.step_size)
        gq = self.gamma ** q.astype(np.float64)
        if self.gamma == 1.0:
            full = self.step_size * q.astype(np.float64)
        else:
            full = self.step_size * (1.0 - gq) / (1.0 - self.gamma)
        return _result(full + r * gq, step)

    def params(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}


class Exponential(Shape):
    """η(k) = γ^k."""

    name = "exponential"

    def __init__(self, gamma: float = 0.999):
        self.gamma = require_finite("gamma", gamma, 0.0, 1.0, low_open=True)

    def factor(self, step):
        k = _steps(step)
        return _result(self.gamma ** k.astype(np.float64), step)

    def cumulative(self, step):
        # T(j) = (1 − γ^j) / (1 − γ), written with expm1 so that γ near 1 keeps its digits.
        j = _steps(step).astype(np.float64)
        if self.gamma == 1.0:
            return _result(j, step)
        log_gamma = math.log(self.gamma)
        return _result(np.expm1(j * log_gamma) / math.expm1(log_gamma), step)

    def params(self) -> dict:
        return {"gamma": self.gamma}


class Cosine(Shape):
    """η(k) = m + (1 − m)(1 + cos(π k / K)) / 2 for k < K, and m from step K on.

    K is ``total_steps`` and m is ``min_factor`` (Loshchilov and Hutter 2017, SGDR,
    arXiv:1608.03983, without restarts).
    """

    name = "cosine"

    def __init__(self, total_steps: int = 1000, min_factor: float = 0.0):
        self.total_steps = int(require_finite("total_steps", total_steps, 1))
        self.min_factor = require_finite("min_factor", min_factor, 0.0, 1.0)

    def factor(self, step):
        k = _steps(step)
        m = self.min_factor
        inside = m + (1.0 - m) * 0.5 * (1.0 + np.cos(np.pi * k / self.total_steps))
        return _result(np.where(k < self.total_steps, inside, m), step)

    def cumulative(self, step):
        # Σ_{k<j} cos(a k) = sin(j a / 2) cos((j − 1) a / 2) / sin(a / 2), a = π / K.
        j = _steps(step)
        K, m = self.total_steps, self.min_factor
        jj = np.minimum(j, K).astype(np.float64)
        a = np.pi / K
        if K == 1:
            cos_sum = np.minimum(jj, 1.0)
        else:
            cos_sum = np.sin(jj * a / 2) * np.cos((jj - 1) * a / 2) / np.sin(a / 2)
        inside = m * jj + (1.0 - m) * 0.5 * (jj + cos_sum)
        return _result(inside + m * np.maximum(j - K, 0), step)

    def params(self) -> dict:
        return {"total_steps": self.total_steps, "min_factor": self.min_factor}


class InverseTime(Shape):
    """η(k) = 1 / (1 + k / s0)."""

    name = "inverse-time"

    def __init__(self, s0: float = 1000.0):
        self.s0 = require_finite("s0", s0, 0.0, low_open=True)

    def factor(self, step):
        k = _steps(step).astype(np.float64)
        return _result(1.0 / (1.0 + k / self.s0), step)

    def cumulative(self, step):
        # Σ_{k<j} s0 / (s0 + k) = s0 (ψ(s0 + j) − ψ(s0)), ψ the digamma function.
        j = _steps(step).astype(np.float64)
        return _result(self.s0 * (digamma(self.s0 + j) - digamma(self.s0)), step)

    def params(self) -> dict:
        return {"s0": self.s0}


class Warmup(Shape):
    """Linear warm-up over W steps in front of another shape.

    η(k) = η_inner(0) (k + 1) / W for k < W, then η_inner(k − W): the inner shape starts
    when the warm-up ends.
    """

    name = "warmup"

    def __init__(self, inner: Shape, warmup_steps: int = 100):
        if not isinstance(inner, Shape):
            raise ConfigError(f"warm-up needs a learning-rate shape to go in front of, "
                              f"got {inner!r}")
        self.inner = inner
        self.warmup_steps = int(require_finite("warmup", warmup_steps, 1))

    def factor(self, step):
        k = _steps(step)
        W = self.warmup_steps
        ramp = self.inner.factor(0) * (k + 1.0) / W
        return _result(np.where(k < W, ramp, self.inner.factor(np.maximum(k - W, 0))), step)

    def cumulative(self, step):
        # T(j) = η_inner(0) j (j + 1) / (2W) for j ≤ W, then T(W) + T_inner(j − W).
        j = _steps(step)
        W = self.warmup_steps
        jj = np.minimum(j, W).astype(np.float64)
        ramp = self.inner.factor(0) * jj * (jj + 1.0) / (2.0 * W)
        return _result(ramp + self.inner.cumulative(np.maximum(j - W, 0)), step)

    def params(self) -> dict:
        return {"warmup": self.warmup_steps, "inner": self.inner.state_dict()}

    def __repr__(self) -> str:
        return f"{self.inner!r} after warmup={self.warmup_steps}"


def numeric_cumulative(schedule, steps: int, metrics_at=None) -> np.ndarray:
    """Run ``schedule`` for ``steps`` steps and return T(0), …, T(steps) by summation.

    ``metrics_at(step)`` supplies the monitor values (default: none). Use it for schedules
    without a closed form, such as controllers; it calls ``update``, so it advances the
    schedule's state.
    """
    totals = np.zeros(steps + 1)
    for k in range(steps):
        metrics = {} if metrics_at is None else metrics_at(k)
        totals[k + 1] = totals[k] + schedule.update(k, metrics).lr_factor
    return totals
