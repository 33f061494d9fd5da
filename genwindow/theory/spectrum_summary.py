"""One record of the spectrum of U: exact bulks (Theorem 3.1), Theorem 3.2, finite-size counts."""

from __future__ import annotations

import numpy as np

from genwindow.theory.spectrum import (
    EDGE_RTOL, SpectrumModel, default_grid, delta_peak, density, find_bulks)
from genwindow.theory.spectrum_asymptotic import (
    asymptotic_density, asymptotic_spectrum, label_bulks)


def spectrum_summary(model: SpectrumModel, points: int = 4000) -> dict:
    """Return the δ-peak, the labelled bulks with their masses, the Theorem 3.2 parts, the
    mass left unaccounted for, and the density on a grid (keys ``lambda`` and ``density``).

    The grid is :func:`default_grid` plus every bulk edge, so the curve reaches zero at the
    edges.
    """
    weight, location = delta_peak(model)
    bulks = find_bulks(model, default_grid(model, points))
    labels = label_bulks(model, bulks)
    edges = [value for b in bulks for value in (b.left, b.right)]
    grid = np.unique(np.concatenate([default_grid(model, points), edges]))
    values = density(model, grid)
    for edge in edges:  # the density vanishes at an edge; rounding may leave a tiny value
        values[grid == edge] = 0.0
    theorem = asymptotic_spectrum(model)
    return {
        "psi_p": model.psi_p, "psi_n": model.psi_n, "t": model.t,
        "sigma_levels": list(model.sigma.levels), "sigma_weights": list(model.sigma.weights),
        "activation": model.activation,
        "delta_peak_weight": weight,
        "delta_peak_location": location,
        "bulks": [{"left": b.left, "right": b.right, "mass": b.mass, "label": label}
                  for b, label in zip(bulks, labels)],
        "unaccounted_mass": 1.0 - weight - sum(b.mass for b in bulks),
        "edge_rtol": EDGE_RTOL,
        "theorem_3_2": theorem.as_dict(),
        "lambda": grid,
        "density": values,
        "theorem_3_2_density": asymptotic_density(model, grid),
    }


def count_in_bulks(eigenvalues, bulks, delta_location: float,
                   delta_atol: float = 1e-10) -> dict:
    """Assign finite-size eigenvalues to the δ-peak or to the nearest bulk.

    An eigenvalue within ``delta_atol`` (relative to max(1, s_t²)) of the δ-peak counts for
    the peak. Every other one goes to the bulk whose interval is nearest. Returns
    ``delta`` (count at the peak) and per bulk ``count``, ``left`` and ``right`` (smallest and
    largest eigenvalue assigned, NaN when none).
    """
    eigenvalues = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    at_delta = np.abs(eigenvalues - delta_location) <= delta_atol * max(1.0, delta_location)
    rest = eigenvalues[~at_delta]
    lefts = np.array([b["left"] if isinstance(b, dict) else b.left for b in bulks])
    rights = np.array([b["right"] if isinstance(b, dict) else b.right for b in bulks])
    gaps = np.maximum(lefts[None, :] - rest[:, None], 0.0) + np.maximum(
        rest[:, None] - rights[None, :], 0.0)
    nearest = np.argmin(gaps, axis=1) if len(bulks) else np.zeros(0, dtype=int)
    per_bulk = []
    for i in range(len(bulks)):
        members = rest[nearest == i]
        per_bulk.append({"count": int(members.size),
                         "left": float(members.min()) if members.size else float("nan"),
                         "right": float(members.max()) if members.size else float("nan")})
    return {"delta": int(at_delta.sum()), "bulks": per_bulk}
