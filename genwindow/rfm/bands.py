"""Eigenvalue bands of U and the share of the train–test gap that each band carries.

Bands, from the bottom of the spectrum: the δ-peak at s_t² (p − n − d modes, which the
losses never see in the Gaussian-equivalent model), any cluster between the δ-peak and the
first bulk, the first bulk (eigenvalues of order ψ_p/ψ_n, which set tau_mem) and the second
bulk (order ψ_p, which sets tau_gen). Clusters are split where consecutive eigenvalues
differ by a factor above ``gap_ratio``; the top cluster is the second bulk, the most
populated of the others the first bulk, anything below it an intermediate cluster.
"""

from __future__ import annotations

import numpy as np

from genwindow.rfm.closed_form import ClosedForm

DELTA_PEAK = "delta_peak"
INTERMEDIATE = "intermediate"
FIRST_BULK = "first_bulk"
SECOND_BULK = "second_bulk"
BAND_ORDER = (DELTA_PEAK, INTERMEDIATE, FIRST_BULK, SECOND_BULK)


def split_clusters(eigenvalues: np.ndarray, gap_ratio: float = 1.5) -> list[np.ndarray]:
    """Return index arrays of the clusters of sorted positive eigenvalues."""
    order = np.argsort(eigenvalues)
    lam = eigenvalues[order]
    cuts = np.nonzero(lam[1:] / lam[:-1] > gap_ratio)[0] + 1
    return [order[part] for part in np.split(np.arange(lam.size), cuts) if part.size]


def label_bands(cf: ClosedForm, gap_ratio: float = 1.5,
                delta_tol: float = 1e-9) -> np.ndarray:
    """Return a band label for each mode in ``cf.eigenvalues``."""
    lam = cf.eigenvalues
    labels = np.full(lam.size, INTERMEDIATE, dtype=object)
    at_peak = np.abs(lam - cf.delta_peak_location) <= delta_tol * max(1.0, lam.max())
    labels[at_peak] = DELTA_PEAK
    rest = np.nonzero(~at_peak)[0]
    clusters = [rest[c] for c in split_clusters(lam[rest], gap_ratio)]
    if not clusters:
        return labels
    labels[clusters[-1]] = SECOND_BULK
    if len(clusters) > 1:
        first = max(clusters[:-1], key=len)
        labels[first] = FIRST_BULK
    return labels


def band_summary(cf: ClosedForm, tau: float | None = None,
                 gap_ratio: float = 1.5) -> list[dict]:
    """Return, for each band, its modes, edges and share of the gap at ``tau``.

    ``tau`` None means τ → ∞. Shares are signed and sum to 1 over the bands; the δ-peak
    modes that the Gaussian-equivalent reduction left out are counted with share 0.
    """
    labels = label_bands(cf, gap_ratio)
    if tau is None:
        per_mode = cf.mode_gaps([1e300])[0]
    else:
        per_mode = cf.mode_gaps([tau])[0]
    total = per_mode.sum()
    rows = []
    for band in BAND_ORDER:
        mask = labels == band
        count = int(mask.sum()) + (cf.delta_peak_count if band == DELTA_PEAK else 0)
        if count == 0:
            continue
        lam = cf.eigenvalues[mask]
        left = float(lam.min()) if lam.size else cf.delta_peak_location
        right = float(lam.max()) if lam.size else cf.delta_peak_location
        gap = float(per_mode[mask].sum())
        rows.append({"band": band, "modes": count, "left": left, "right": right,
                     "gap": gap, "share": gap / total if total != 0 else float("nan")})
    return rows
