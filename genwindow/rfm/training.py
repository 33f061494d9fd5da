"""Real training of the random-features score model, as the paper's numerics do it.

Each step draws one fresh noise vector ξ_ν per data point (of the batch), forms
x_t = e^{-t} x_ν + sqrt(Δ_t) ξ_ν and takes a gradient step on
(1/(n_b d)) Σ_ν ‖sqrt(Δ_t) (A/sqrt(p)) φ(x_t) + ξ_ν‖², the single-sample denoising loss of
Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638v2. Plain gradient descent with
rate η advances the training time by τ = η/d² per step (genwindow.theory.time). Recorded
losses are the exact noise-averaged quadratic forms of the current A (RFMatrices.losses),
so the only randomness in a recorded curve is that of training itself.

``features='true'`` uses φ = σ(W x_t/sqrt(d)); ``features='gaussian-equivalent'`` trains the
linear Gaussian model φ = e^{-t} a_t W x/sqrt(d) + b_t W ξ/sqrt(d) + v_t ω_ν + s_t ζ
(ω_ν = Ω[:, ν] fixed per data point, ζ fresh), whose noise average is exactly the
Gaussian-equivalent U, so its mean trajectory is the closed form's discrete-time curve.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genwindow.errors import ConfigError, require
from genwindow.rfm.instance import RFInstance
from genwindow.rfm.matrices import FEATURE_KINDS, RFMatrices, build_matrices
from genwindow.theory.constants import activation

OPTIMIZERS = ("gd", "adam")
# The noise-averaged train loss starts at 1, and gradient descent at a stable rate only
# lowers it (up to noise of order the rate). A loss far above 1 means divergence.
DIVERGED_LOSS = 1e3


def log_spaced_steps(steps: int, count: int = 60) -> np.ndarray:
    """Return about ``count`` distinct integer steps from 0 to ``steps``, log-spaced."""
    grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), count)).astype(int))
    return np.unique(np.concatenate([[0], grid[grid <= steps], [steps]]))


def max_stable_lr(matrices: RFMatrices) -> float:
    """Return the largest gradient-descent rate on A that does not diverge: p d / (Δ_t λ_max)."""
    U = matrices.U.to_dense() if matrices.U.dense is not None else None
    if U is None:
        K = matrices.U.factor
        lam_max = np.linalg.eigvalsh(K.T @ K)[-1] + matrices.U.shift
    else:
        lam_max = np.linalg.eigvalsh(U)[-1]
    return matrices.p * matrices.d / (matrices.Delta_t * lam_max)


def train_rf(inst: RFInstance, lr: float, steps: int, optimizer: str = "gd",
             batch_size: int | None = None, seed: int = 0, record_steps=None,
             schedule=None, features: str = "true", matrices: RFMatrices | None = None,
             device: str = "cpu", noise_samples: int = 256, dtype: str = "float64",
             progress: bool = False) -> pd.DataFrame:
    """Train A from zero for ``steps`` steps and return the recorded curves.

    Parameters
    ----------
    lr : base rate on A (the model with 1/sqrt(p)); a schedule multiplies it step by step.
    optimizer : 'gd' (plain full-batch or mini-batch gradient descent) or 'adam'.
    batch_size : data points per step; None uses all n (full batch).
    record_steps : steps at which to record (default: 60 log-spaced steps and the last).
    schedule : a genwindow.schedules Schedule; it receives the recorded metrics at the step
        they were measured and returns the rate factor and the stop decision.
    matrices : the quadratic forms used to evaluate A (built from ``features`` if None).
    dtype : 'float64' or 'float32', the precision of training (evaluation is float64).

    Returns a DataFrame with columns step, tau, lr_factor, train_loss, test_loss,
    score_error, gen_gap. For Adam, tau is the nominal Σ η / d², not a gradient-flow time.
    The final B = A/sqrt(p) is in ``frame.attrs["weights"]``.
    """
    import torch

    require(np.isfinite(lr) and lr > 0, f"--lr: learning rate must be positive, got {lr}")
    require(int(steps) >= 1, f"--steps: need at least 1 step, got {steps}")
    require(optimizer in OPTIMIZERS,
            f"--optimizer: unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    require(features in FEATURE_KINDS,
            f"--features: unknown kind {features!r}; choose one of {list(FEATURE_KINDS)}")
    batch = inst.n if batch_size is None else int(batch_size)
    require(1 <= batch <= inst.n, f"--batch-size: need 1 ≤ batch ≤ n = {inst.n}, got {batch}")
    if matrices is None:
        matrices = build_matrices(inst, features, noise_samples, seed)
    record = set(int(s) for s in (log_spaced_steps(steps) if record_steps is None
                                  else record_steps))

    require(dtype in ("float32", "float64"),
            f"--dtype: choose float32 or float64, got {dtype!r}")
    dtype = getattr(torch, dtype)
    c = inst.constants
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    W = torch.as_tensor(inst.W, dtype=dtype, device=device)
    X = torch.as_tensor(inst.X.T, dtype=dtype, device=device)  # (n, d)
    Omega = torch.as_tensor(inst.Omega.T, dtype=dtype, device=device)  # (n, p)
    A = torch.zeros(inst.d, inst.p, dtype=dtype, device=device, requires_grad=True)
    opt = (torch.optim.SGD([A], lr=lr) if optimizer == "gd"
           else torch.optim.Adam([A], lr=lr))
    sigma = activation(inst.activation)
    sqrt_delta, decay = math.sqrt(c.Delta_t), math.exp(-inst.t)
    sqrt_d, sqrt_p = math.sqrt(inst.d), math.sqrt(inst.p)

    def features_of(index, xi):
        x0 = X[index]
        if features == "true":
            return sigma((decay * x0 + sqrt_delta * xi) @ W.T / sqrt_d, torch)
        zeta = torch.randn(len(index), inst.p, generator=generator, dtype=torch.float64)
        zeta = zeta.to(device=device, dtype=dtype)
        return ((decay * c.a_t * x0 + c.b_t * xi) @ W.T / sqrt_d
                + math.sqrt(c.v_t2) * Omega[index] + math.sqrt(c.s_t2) * zeta)

    rows, tau, factor, metrics = [], 0.0, 1.0, {}
    iterator = range(steps + 1)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="rfm train", unit="step", mininterval=1.0)
    for step in iterator:
        if step in record:
            B = A.detach().cpu().double().numpy() / sqrt_p
            with np.errstate(invalid="ignore", over="ignore"):
                metrics = matrices.losses(B)
            rows.append({"step": step, "tau": tau, "lr_factor": factor, **metrics})
            if not metrics["train_loss"] < DIVERGED_LOSS:
                raise ConfigError(
                    f"--lr: training diverged by step {step} at lr = {lr * factor:.4g}; "
                    f"gradient descent is stable below {max_stable_lr(matrices):.4g}")
        if step == steps:
            break
        if schedule is not None:
            action = schedule.update(step, metrics if step in record else {})
            factor = float(action.lr_factor)
            if action.stop:
                break
        for group in opt.param_groups:
            group["lr"] = lr * factor

        # One step on the single-noise-draw loss; the gradient is written by hand.
        index = (torch.arange(inst.n) if batch == inst.n
                 else torch.randperm(inst.n, generator=generator)[:batch])
        # Noise is drawn in float64 and then cast, so both precisions see the same draws.
        xi = torch.randn(batch, inst.d, generator=generator, dtype=torch.float64)
        xi = xi.to(device=device, dtype=dtype)
        phi = features_of(index.to(device), xi)  # (batch, p)
        residual = sqrt_delta * (phi @ A.detach().T) / sqrt_p + xi  # (batch, d)
        A.grad = (2.0 * sqrt_delta / (batch * inst.d * sqrt_p)) * residual.T @ phi
        opt.step()
        tau += lr * factor / inst.d**2
    frame = pd.DataFrame(rows)
    frame.attrs["weights"] = A.detach().cpu().double().numpy() / sqrt_p
    return frame
