"""Conversion between optimizer steps and the training time τ of the theory.

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638v2, section 3: the score model is
s_A(x) = (A / sqrt(p)) σ(W x / sqrt(d)) and τ = k η / d² after k gradient-descent steps of
size η on A. The authors' public script trains A' = A / sqrt(p) (the 1/sqrt(p) dropped from
the model) with rate η', which is the same dynamics with η = p η', so τ = (ψ_p / d) k η'.
This module is the only place where steps become τ.
"""

from __future__ import annotations

import numpy as np


def steps_to_tau(step, lr, d: int, p: int | None = None):
    """Return τ after ``step`` steps of size ``lr`` (a scalar or per-step array).

    With ``p`` None, ``lr`` is the rate on A in the model with 1/sqrt(p); with ``p`` given,
    ``lr`` is the rate on A / sqrt(p) (the authors' script). When ``lr`` is an array of
    per-step rates, ``step`` is ignored and the cumulative τ after each step is returned.
    """
    scale = 1.0 if p is None else float(p)
    lr_arr = np.asarray(lr, dtype=np.float64)
    if lr_arr.ndim == 0:
        return np.asarray(step, dtype=np.float64) * float(lr_arr) * scale / d**2
    return np.cumsum(lr_arr) * scale / d**2


def tau_to_steps(tau, lr: float, d: int, p: int | None = None):
    """Return the (real-valued) number of steps of constant size ``lr`` that reach ``tau``."""
    scale = 1.0 if p is None else float(p)
    return np.asarray(tau, dtype=np.float64) * d**2 / (lr * scale)
