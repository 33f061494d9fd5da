"""Symbolic derivation of T(j) = Σ_{k<j} η(k) for each learning-rate shape, with sympy.

``shapes.py`` implements the resulting closed forms in numpy; the tests evaluate both, and
check each derived sum against its defining recurrence T(0) = 0, T(j + 1) − T(j) = η(j).
Import this module only where sympy is wanted: it is slow to import.
"""

from __future__ import annotations

import sympy as sp

j, k = sp.symbols("j k", integer=True, nonnegative=True)
gamma, s0, m = sp.symbols("gamma s0 m", positive=True)
K, W, S = sp.symbols("K W S", integer=True, positive=True)


def _generic_branch(expr: sp.Expr) -> sp.Expr:
    """Return the branch of a Piecewise sum that holds for a ratio ≠ 1."""
    expr = sp.piecewise_fold(expr)
    return expr.args[-1][0] if isinstance(expr, sp.Piecewise) else expr


def exponential() -> tuple[sp.Expr, sp.Expr]:
    """Return (η(k), T(j)) for η = γ^k, summed by sympy (γ ≠ 1)."""
    eta = gamma**k
    total = sp.summation(eta, (k, 0, j - 1))
    return eta, sp.simplify(_generic_branch(total))


def step_decay_blocks() -> tuple[sp.Expr, sp.Expr]:
    """Return (η, T) for η = γ^floor(k / S) at j = q S + r: q full blocks then r steps.

    The result is expressed in the symbols q and r (0 ≤ r < S).
    """
    q, r = sp.symbols("q r", integer=True, nonnegative=True)
    block = sp.summation(S * gamma**k, (k, 0, q - 1))
    return gamma ** sp.floor(k / S), sp.simplify(_generic_branch(block) + r * gamma**q)


def cosine() -> tuple[sp.Expr, sp.Expr]:
    """Return (η, T) for η = m + (1 − m)(1 + cos(π k / K)) / 2, valid for j ≤ K.

    The cosine sum is the real part of a geometric series in e^{iπ/K}.
    """
    a = sp.pi / K
    eta = m + (1 - m) * (1 + sp.cos(a * k)) / 2
    geometric = sp.summation(sp.exp(sp.I * a * k), (k, 0, j - 1))
    cos_sum = sp.re(sp.expand_complex(_generic_branch(geometric)))
    return eta, m * j + (1 - m) * (j + cos_sum) / 2


def inverse_time() -> tuple[sp.Expr, sp.Expr]:
    """Return (η, T) for η = s0 / (s0 + k): T = s0 (ψ(s0 + j) − ψ(s0)).

    sympy does not sum this series directly; the digamma form is the unique solution of the
    recurrence, which ``check_recurrence`` verifies with ψ(x + 1) = ψ(x) + 1 / x.
    """
    return s0 / (s0 + k), s0 * (sp.digamma(s0 + j) - sp.digamma(s0))


def warmup_ramp() -> tuple[sp.Expr, sp.Expr]:
    """Return (η, T) for the ramp η = (k + 1) / W of a linear warm-up, for j ≤ W."""
    eta = (k + 1) / W
    return eta, sp.factor(sp.summation(eta, (k, 0, j - 1)))


def check_recurrence(eta: sp.Expr, total: sp.Expr) -> bool:
    """Return True when T(0) = 0 and T(j + 1) − T(j) − η(j) simplifies to zero."""
    at_zero = sp.simplify(total.subs(j, 0))
    step = total.subs(j, j + 1) - total - eta.subs(k, j)
    step = sp.simplify(sp.expand_func(sp.expand_complex(step)))
    return at_zero == 0 and step == 0
