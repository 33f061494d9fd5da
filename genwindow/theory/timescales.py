"""The two training timescales of the random-features score model, from the spectrum of U.

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638, section 3: gradient flow in the
training time τ relaxes the mode of U with eigenvalue λ on the timescale ψ_p / (Δ_t λ).
Theorem 3.2 splits the spectrum into ρ1 (eigenvalues of order v_t² ψ_p/ψ_n) and ρ2
(order ψ_p), see :mod:`genwindow.theory.spectrum_asymptotic`, which gives

    tau_gen = (ψ_p / Δ_t) Σ_k w_k / ℓ_k,   ℓ_k = s_t² + v_t² + ψ_p (µ1²/Γ_t²) σ_{t,k},

the timescale of the population eigenvalues of ρ2 averaged over the levels of Σ
(σ_{t,k} = e^{−2t} λ_k + Δ_t); for Σ = I it is 1/(Δ_t µ1²) (1 + O(1/ψ_p)) and does not
depend on n. And

    tau_mem = ψ_p / (Δ_t λ_min),   λ_min = s_t² + v_t² (1 − sqrt(ψ_p/ψ_n))²,

with λ_min the left edge of ρ1, the slowest bulk of modes that the training loss depends on. For
ψ_p ≫ ψ_n, tau_mem ≈ ψ_n / (Δ_t v_t²), linear in n.

Which bulk tau_mem uses: ρ1 of Theorem 3.2. The exact spectrum (Theorem 3.1) also holds, for
ψ_p > ψ_n + 1, a separate group of d eigenvalues between the δ-peak and ρ1 (weight 1/ψ_p);
its modes are slower still, but they carry a fraction 1/ψ_n of the first bulk's weight and
the formula leaves them out. :func:`exact_timescales` reports the left edge of the exact
first bulk and of that group, so the two can be compared.

The formula functions take arrays of ψ_p, ψ_n and t (broadcast together) and an ``xp``
namespace: with jax.numpy (and jax_enable_x64) they are differentiable in all three.
"""

from __future__ import annotations

import numpy as np

from genwindow.errors import require
from genwindow.theory.constants import ge_constants_arrays


def _broadcast(xp, *arrays):
    arrays = [xp.asarray(a, dtype=xp.float64) for a in arrays]
    return xp.broadcast_arrays(*arrays)


def lambda_min(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
               activation: str = "tanh", xp=np):
    """Return the left edge s_t² + v_t² (1 − sqrt(ψ_p/ψ_n))² of ρ1 (Theorem 3.2)."""
    psi_p, psi_n, t = _broadcast(xp, psi_p, psi_n, t)
    sigma_x2 = float(np.dot(sigma_levels, sigma_weights))
    k = ge_constants_arrays(t, sigma_x2, activation, xp=xp)
    return k["s_t2"] + k["v_t2"] * (1.0 - xp.sqrt(psi_p / psi_n)) ** 2


def tau_mem(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
            activation: str = "tanh", xp=np):
    """Return tau_mem = ψ_p / (Δ_t λ_min), λ_min the left edge of ρ1 (not of the small group
    of d eigenvalues below it that the exact spectrum shows for ψ_p > ψ_n + 1)."""
    psi_p, psi_n, t = _broadcast(xp, psi_p, psi_n, t)
    delta = 1.0 - xp.exp(-2.0 * t)
    edge = lambda_min(psi_p, psi_n, t, sigma_levels, sigma_weights, activation, xp)
    return psi_p / (delta * edge)


def rho2_population(psi_p, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
                    activation: str = "tanh", xp=np):
    """Return ℓ_k = s_t² + v_t² + ψ_p (µ1²/Γ_t²) σ_{t,k}, stacked on a trailing axis."""
    psi_p, t = _broadcast(xp, psi_p, t)
    levels = xp.asarray(sigma_levels, dtype=xp.float64)
    sigma_x2 = float(np.dot(sigma_levels, sigma_weights))
    k = ge_constants_arrays(t, sigma_x2, activation, xp=xp)
    sigma_t = xp.exp(-2.0 * t)[..., None] * levels + k["Delta_t"][..., None]
    slope = (psi_p * k["mu1"] ** 2 / k["Gamma_t2"])[..., None]
    return (k["s_t2"] + k["v_t2"])[..., None] + slope * sigma_t


def tau_gen(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
            activation: str = "tanh", xp=np):
    """Return tau_gen = (ψ_p/Δ_t) Σ_k w_k / ℓ_k over the population eigenvalues of ρ2.

    ``psi_n`` only sets the output shape: at this order tau_gen does not depend on n.
    """
    psi_p, psi_n, t = _broadcast(xp, psi_p, psi_n, t)
    delta = 1.0 - xp.exp(-2.0 * t)
    weights = xp.asarray(sigma_weights, dtype=xp.float64)
    ell = rho2_population(psi_p, t, sigma_levels, sigma_weights, activation, xp)
    return psi_p / delta * xp.sum(weights / ell, axis=-1)


def tau_gen_rho2(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
                 activation: str = "tanh") -> float:
    """Return (ψ_p/Δ_t) ∫ ρ2(λ)/λ dλ over the whole Theorem 3.2 law ρ2 (one point, numpy).

    Unlike :func:`tau_gen` this includes the spread of ρ2 from the finite number of
    training points, so it depends on ψ_n: for Σ = I it exceeds tau_gen by a factor close to
    1/(1 − 1/ψ_n). NaN when ρ2 is not separated from the rest of the spectrum.
    """
    from genwindow.theory.spectrum import spectrum_model
    from genwindow.theory.spectrum_asymptotic import rho2_density, rho2_edges

    model = spectrum_model(psi_p, psi_n, t, sigma_levels, sigma_weights, activation)
    supports = rho2_edges(model)
    if not supports:
        return float("nan")
    x, w = np.polynomial.legendre.leggauss(128)
    theta = 0.5 * np.pi * (x + 1.0)
    total = 0.0
    for lo, hi in supports:
        lam = 0.5 * (lo + hi) - 0.5 * (hi - lo) * np.cos(theta)
        jacobian = 0.25 * np.pi * (hi - lo) * np.sin(theta)
        total += float(np.sum(w * jacobian * rho2_density(model, lam) / lam))
    return psi_p / model.constants.Delta_t * total


def timescale_table(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
                    activation: str = "tanh", exact: bool = False):
    """Return a DataFrame with one row per (ψ_p, ψ_n, t): both timescales and their ratio.

    With ``exact``, also the timescales from the exact spectrum (Theorem 3.1), see
    :func:`exact_timescales`.
    """
    import pandas as pd

    rows = []
    for pp in np.atleast_1d(psi_p):
        for pn in np.atleast_1d(psi_n):
            for tt in np.atleast_1d(t):
                args = (pp, pn, tt, sigma_levels, sigma_weights, activation)
                gen = float(tau_gen(*args))
                mem = float(tau_mem(*args))
                row = {"psi_p": float(pp), "psi_n": float(pn), "t": float(tt),
                       "lambda_min": float(lambda_min(*args)), "tau_gen": gen,
                       "tau_mem": mem, "ratio": mem / gen,
                       "tau_gen_rho2": tau_gen_rho2(*args)}
                if exact:
                    row.update(exact_timescales(*args))
                rows.append(row)
    return pd.DataFrame(rows)


def exact_timescales(psi_p, psi_n, t, sigma_levels=(1.0,), sigma_weights=(1.0,),
                     activation: str = "tanh") -> dict[str, float]:
    """Return the timescales read off the exact spectrum of Theorem 3.1 (one point, numpy).

    - lambda_min_exact, tau_mem_exact: left edge of the exact first bulk, ψ_p/(Δ_t edge);
    - lambda_small_exact: left edge of the group of d eigenvalues below it (NaN if absent);
    - tau_gen_exact: (ψ_p/Δ_t) times the mean of 1/λ over the exact second bulk(s).
    """
    from genwindow.theory.spectrum import bulk_integral, find_bulks, spectrum_model
    from genwindow.theory.spectrum_asymptotic import label_bulks

    model = spectrum_model(psi_p, psi_n, t, sigma_levels, sigma_weights, activation)
    bulks = find_bulks(model)
    labels = label_bulks(model, bulks)
    require("first" in labels, f"psi_p={psi_p}, psi_n={psi_n}, t={t}: no first bulk found")
    delta = model.constants.Delta_t
    first = bulks[labels.index("first")]
    small = [b for b, lab in zip(bulks, labels) if lab == "below-first"]
    second = [b for b, lab in zip(bulks, labels) if lab == "second"]
    mass2 = sum(b.mass for b in second)
    inverse = sum(bulk_integral(model, b.left, b.right, lambda lam: 1.0 / lam) for b in second)
    return {"lambda_min_exact": first.left,
            "lambda_small_exact": small[0].left if small else float("nan"),
            "tau_mem_exact": psi_p / (delta * first.left),
            "tau_gen_exact": psi_p / delta * inverse / mass2 if mass2 > 0 else float("nan")}
