"""Asymptotic spectral density of the Gaussian-equivalent U (fast solver).

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638, Theorem 3.1. With
q(z) = (1/p) Tr(U − z)⁻¹, r(z) = (1/p) Tr(Σ^{1/2} Wᵀ (U − z)⁻¹ W Σ^{1/2}) / d and
s(z) = (1/p) Tr(Wᵀ (U − z)⁻¹ W) / d, and with ŝ = b_t² ψ_p + 1/q and
r̂ = c / D, D = 1 + α r + β q, c = ψ_p a_t² e^{−2t}, α = c/ψ_n, β = ψ_p v_t²/ψ_n,

    s = ∫ dρ_Σ(λ) / (ŝ + λ r̂),      r = ∫ dρ_Σ(λ) λ / (ŝ + λ r̂),
    ψ_p (s_t² − z) + ψ_p v_t² / D + (1 − ψ_p)/q − s/q² = 0,

and ρ(λ) = lim_{ε→0⁺} Im q(λ + iε) / π.

Sign convention: z = λ + iε with ε ≥ 0, and the solution is the Stieltjes transform of a
probability measure, so Im q > 0 (and q ≈ −1/z for large |z|). The authors' script uses
z = λ − iε and the conjugate solution; the density is the same.

Elimination (derived by hand here). The tests check that its roots solve the unreduced
equations and are roots of the resultant that sympy computes from them.
The definitions give the identity ŝ s + r̂ r = 1, so with h = r̂ and u = ŝ,

    h (1 + β q) = c − α + α u s,

and the third equation is linear in s. Solving it for s and inserting both into
s = Σ_k w_k / (u + λ_k h) for ρ_Σ = Σ_k w_k δ(λ − λ_k) leaves one polynomial equation

    Ã(q, z) Π_k L_k(q, z) = B(q)² Σ_k w_k Π_{j≠k} L_j(q, z),
    B = b β q² − 1  (b = b_t² ψ_p),
    Ã = −[ψ_p (s_t² − z) q (1 + β q) + β (ψ_n − 1) q + (1 − ψ_p)(1 + β q)],
    H = −[(c − α) + α (b q + 1)(ψ_p (s_t² − z) q + 1 − ψ_p)],
    L_k = (b q + 1) B + λ_k q H,

of degree 3K + 2 in q and K + 1 in z, for K distinct levels of Σ; then s = q Ã / B and
h = H / B. (A common factor (1 + β q)^K has been divided out.) The fast solver finds all
roots at once from batched companion matrices, polishes each with Newton steps on the
unreduced equations (the elimination multiplies by B², so near B = 0 the polynomial has
nearly multiple spurious roots and its roots alone are inaccurate), and keeps the one root
that satisfies the inequalities of a Stieltjes transform of positive measures (see
``_nevanlinna_violation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from genwindow.errors import require
from genwindow.theory.constants import GEConstants, ge_constants

# Root selection happens at z = λ + iη with η = SELECTION_ETA · (|λ − s_t²| + 1e-4 · scale),
# where the inequalities Im q ≥ η|q|² etc. separate the physical root from the others by far
# more than rounding error; the root at the requested z is then the one closest to the
# selected root. η shrinks near s_t² because a bulk can start within 1e-7 of the δ-peak
# there (ψ_p close to ψ_n + 1).
SELECTION_ETA = 1e-7
# Newton steps on the unreduced equations after the companion-matrix roots. Roots near a
# nearly multiple root of the polynomial start with errors up to ~1e-4, and Newton
# converges quadratically from there, so 8 steps reach rounding error.
NEWTON_STEPS = 8
# A root whose polished residual exceeds this (relative) is not a solution of the equations.
RESIDUAL_TOL = 1e-9
# A point is inside the support when Im q > DENSITY_TOL · (1 + |q|) at ε = 0.
DENSITY_TOL = 1e-9
# All polynomial roots are computed at every SELECTION_STRIDE-th requested z; the points in
# between start Newton steps from there (see ``_select``).
SELECTION_STRIDE = 8
# Bulk edges are bisected until the bracket is below EDGE_RTOL · max(|λ|, scale).
EDGE_RTOL = 1e-11


@dataclass(frozen=True)
class SigmaSpectrum:
    """The eigenvalue distribution ρ_Σ = Σ_k weights[k] δ(λ − levels[k]) of the data covariance."""

    levels: tuple[float, ...]
    weights: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Tr Σ / d, the σ_x² of the Gaussian-equivalence constants."""
        return float(np.dot(self.levels, self.weights))

    @classmethod
    def from_lists(cls, levels, weights=None) -> "SigmaSpectrum":
        """Validate ``levels`` and ``weights`` (uniform when None) and merge equal levels."""
        levels = [float(v) for v in np.atleast_1d(levels)]
        require(len(levels) > 0, "--sigma-levels: need at least one eigenvalue level")
        if weights is None:
            weights = [1.0 / len(levels)] * len(levels)
        weights = [float(v) for v in np.atleast_1d(weights)]
        require(len(weights) == len(levels),
                f"--sigma-weights: got {len(weights)} weights for {len(levels)} levels; "
                "give one weight per level")
        require(all(np.isfinite(v) and v > 0 for v in levels),
                f"--sigma-levels: levels must be positive, got {levels}")
        require(all(np.isfinite(v) and v > 0 for v in weights),
                f"--sigma-weights: weights must be positive, got {weights}")
        require(abs(sum(weights) - 1.0) < 1e-9,
                f"--sigma-weights: weights must sum to 1, got {weights} (sum {sum(weights)})")
        merged: dict[float, float] = {}
        for level, weight in zip(levels, weights):
            merged[level] = merged.get(level, 0.0) + weight
        ordered = sorted(merged)
        return cls(levels=tuple(ordered), weights=tuple(merged[v] for v in ordered))


@dataclass(frozen=True)
class SpectrumModel:
    """The parameters of Theorem 3.1: ratios ψ_p = p/d, ψ_n = n/d, diffusion time t, ρ_Σ."""

    psi_p: float
    psi_n: float
    t: float
    sigma: SigmaSpectrum
    activation: str = "tanh"
    constants: GEConstants = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        require(np.isfinite(self.psi_p) and self.psi_p > 0,
                f"--psi-p: must be positive, got {self.psi_p}")
        require(np.isfinite(self.psi_n) and self.psi_n > 0,
                f"--psi-n: must be positive, got {self.psi_n}")
        object.__setattr__(self, "constants",
                           ge_constants(self.t, self.sigma.mean, self.activation))

    # Coefficients of the equations (names as in the module docstring).
    @property
    def c(self) -> float:
        k = self.constants
        return self.psi_p * k.a_t**2 * np.exp(-2.0 * self.t)

    @property
    def alpha(self) -> float:
        return self.c / self.psi_n

    @property
    def beta(self) -> float:
        return self.psi_p * self.constants.v_t2 / self.psi_n

    @property
    def b(self) -> float:
        return self.constants.b_t**2 * self.psi_p

    @property
    def scale(self) -> float:
        """Mean eigenvalue (1/p) Tr U = s_t² + v_t² + b_t² + a_t² e^{−2t} Tr Σ/d."""
        k = self.constants
        return k.s_t2 + k.v_t2 + k.b_t**2 + k.a_t**2 * np.exp(-2.0 * self.t) * self.sigma.mean

    @cached_property
    def polynomial(self) -> np.ndarray:
        """Coefficients P[i, j] of q^i w^j, w = z − s_t², of the eliminated polynomial.

        The shift to w keeps the coefficients exact near the δ-peak, where the leading
        coefficient vanishes like w and large roots would otherwise come out wrong.
        """
        return _eliminated_polynomial(self)


def spectrum_model(psi_p: float, psi_n: float, t: float, sigma_levels=(1.0,),
                   sigma_weights=None, activation: str = "tanh") -> SpectrumModel:
    """Build a validated :class:`SpectrumModel` from plain numbers."""
    return SpectrumModel(float(psi_p), float(psi_n), float(t),
                         SigmaSpectrum.from_lists(sigma_levels, sigma_weights), activation)


# ---------------------------------------------------------------------------------------
# Bivariate polynomials in (q, w), w = z − s_t², as arrays P[i, j] (coefficient of q^i w^j).

def _poly(coeffs_q, w_power: int = 0) -> np.ndarray:
    out = np.zeros((len(coeffs_q), w_power + 1))
    out[:, w_power] = coeffs_q
    return out


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])))
    out[:a.shape[0], :a.shape[1]] += a
    out[:b.shape[0], :b.shape[1]] += b
    return out


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[i, j] != 0.0:
                out[i:i + b.shape[0], j:j + b.shape[1]] += a[i, j] * b
    return out


def _eliminated_polynomial(model: SpectrumModel) -> np.ndarray:
    psi_p, psi_n = model.psi_p, model.psi_n
    c, alpha, beta, b = model.c, model.alpha, model.beta, model.b

    q = _poly([0.0, 1.0])
    shift = _poly([-psi_p], w_power=1)  # ψ_p (s_t² − z) = −ψ_p w
    B = _poly([-1.0, 0.0, b * beta])
    A_tilde = -1.0 * _add(_add(_mul(shift, _poly([0.0, 1.0, beta])),
                               _poly([0.0, beta * (psi_n - 1.0)])),
                          _poly([1.0 - psi_p, (1.0 - psi_p) * beta]))
    H = -1.0 * _add(_poly([c - alpha]),
                    alpha * _mul(_poly([1.0, b]), _add(_mul(shift, q), _poly([1.0 - psi_p]))))
    L = [_add(_mul(_poly([1.0, b]), B), level * _mul(q, H)) for level in model.sigma.levels]

    product = np.ones((1, 1))
    for L_k in L:
        product = _mul(product, L_k)
    partial_sum = np.zeros((1, 1))
    for k_index, weight in enumerate(model.sigma.weights):
        term = weight * np.ones((1, 1))
        for j, L_j in enumerate(L):
            if j != k_index:
                term = _mul(term, L_j)
        partial_sum = _add(partial_sum, term)
    return _add(_mul(A_tilde, product), -1.0 * _mul(_mul(B, B), partial_sum))


def polynomial_roots(model: SpectrumModel, z) -> np.ndarray:
    """Return all 3K + 2 roots in q of the eliminated polynomial at each z, shape (len(z), 3K+2).

    All z at once: one batched eigenvalue call on the companion matrices.
    """
    z = np.atleast_1d(np.asarray(z, dtype=complex))
    P = model.polynomial
    w = z - model.constants.s_t2
    coeffs = (w[:, None] ** np.arange(P.shape[1])) @ P.T  # (nz, deg+1), ascending in q
    degree = coeffs.shape[1] - 1

    # Rescale q = σ x so that the constant and leading coefficients have equal size: near
    # the δ-peak the leading coefficient is tiny and the unscaled companion matrix returns
    # the two large roots with O(1) relative error.
    tiny = 1e-280 * (1.0 + np.abs(coeffs).max(axis=1))
    lead = np.where(np.abs(coeffs[:, -1]) < tiny, tiny, coeffs[:, -1])  # root at infinity
    sigma = (np.abs(coeffs[:, 0]) / np.abs(lead)) ** (1.0 / degree)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)
    scaled = coeffs * sigma[:, None] ** np.arange(degree + 1)
    monic = scaled[:, :-1] / (lead * sigma**degree)[:, None]
    companion = np.zeros((z.size, degree, degree), dtype=complex)
    companion[:, 1:, :-1] = np.eye(degree - 1)
    companion[:, :, -1] = -monic
    return np.linalg.eigvals(companion) * sigma[:, None]


# ---------------------------------------------------------------------------------------
# The unreduced equations in the unknowns (q, h), used to polish roots and to check them.

def _mixture(model: SpectrumModel, u, h):
    """Return s = Σ w/(u + λh) and its derivatives in u and h."""
    s = ds_du = ds_dh = 0.0
    for level, weight in zip(model.sigma.levels, model.sigma.weights):
        inverse = 1.0 / (u + level * h)
        s = s + weight * inverse
        ds_du = ds_du - weight * inverse**2
        ds_dh = ds_dh - weight * level * inverse**2
    return s, ds_du, ds_dh


def _residuals(model: SpectrumModel, q, h, z, with_jacobian: bool = True):
    """F1 = h(1 + βq) − c + α − α u s and F2 = third equation, with their (q, h) Jacobian."""
    k = model.constants
    psi_p, c, alpha, beta, b = model.psi_p, model.c, model.alpha, model.beta, model.b
    kappa = psi_p * k.v_t2 / c
    u = b + 1.0 / q
    s, ds_du, ds_dh = _mixture(model, u, h)
    F1 = h * (1.0 + beta * q) - (c - alpha) - alpha * u * s
    F2 = psi_p * (k.s_t2 - z) + kappa * h + (1.0 - psi_p) / q - s / q**2
    if not with_jacobian:
        return F1, F2, s
    du_dq = -1.0 / q**2
    J11 = beta * h - alpha * du_dq * (s + u * ds_du)
    J12 = (1.0 + beta * q) - alpha * u * ds_dh
    J21 = -(1.0 - psi_p) / q**2 + 2.0 * s / q**3 - ds_du * du_dq / q**2
    J22 = kappa - ds_dh / q**2
    return F1, F2, s, (J11, J12, J21, J22)


def _polish(model: SpectrumModel, q, z, steps: int = NEWTON_STEPS, h=None):
    """Newton-polish roots ``q`` at ``z`` (broadcast); return q, h, s, residual.

    ``h`` defaults to H/B of the eliminated polynomial (module docstring).
    """
    k = model.constants
    psi_p = model.psi_p
    with np.errstate(all="ignore"):
        if h is None:
            B = model.b * model.beta * q * q - 1.0
            H = -((model.c - model.alpha) + model.alpha * (model.b * q + 1.0)
                  * (psi_p * (k.s_t2 - z) * q + 1.0 - psi_p))
            h = H / B
        for _ in range(steps):
            F1, F2, _, (J11, J12, J21, J22) = _residuals(model, q, h, z)
            det = J11 * J22 - J12 * J21
            dq = (J22 * F1 - J12 * F2) / det
            dh = (J11 * F2 - J21 * F1) / det
            good = np.isfinite(dq) & np.isfinite(dh)
            q = np.where(good, q - np.where(good, dq, 0.0), q)
            h = np.where(good, h - np.where(good, dh, 0.0), h)
        F1, F2, s = _residuals(model, q, h, z, with_jacobian=False)
        scale1 = np.abs(h * (1.0 + model.beta * q)) + abs(model.c) + np.abs(model.alpha * s / q)
        scale2 = psi_p * (abs(k.s_t2) + np.abs(z)) + np.abs(psi_p / q) + np.abs(s / q**2)
        residual = np.maximum(np.abs(F1) / scale1, np.abs(F2) / scale2)
    residual = np.where(np.isfinite(residual), residual, np.inf)
    return q, h, s, residual


def _nevanlinna_violation(model: SpectrumModel, q, h, s, z):
    """Return how far (q, r, s) at Im z = η > 0 are from being Stieltjes transforms.

    For a probability measure µ on [0, ∞) and Im z > 0, m(z) = ∫ dµ(x)/(x − z) obeys
    Im m ≥ Im z · |m|² (Cauchy–Schwarz) and Im(z m) ≥ 0. q, s and r are transforms of
    positive measures of mass 1, 1 and Tr Σ/d, so each inequality applies (scaled by the
    mass). The physical root gives 0; the returned value is the largest relative shortfall.
    """
    eta = np.imag(z)
    with np.errstate(all="ignore"):
        u = model.b + 1.0 / q
        r = (1.0 - u * s) / h
        shortfalls = [
            1.0 - np.imag(q) / (eta * np.abs(q) ** 2),
            1.0 - np.imag(s) / (eta * np.abs(s) ** 2),
            1.0 - np.imag(r) * model.sigma.mean / (eta * np.abs(r) ** 2),
            -np.imag(z * q) / (np.abs(z) * np.abs(q)),
        ]
        violation = np.max(np.stack([np.maximum(v, 0.0) for v in shortfalls]), axis=0)
    return np.where(np.isfinite(violation), violation, np.inf)


@dataclass(frozen=True)
class StieltjesSolution:
    """The physical solution of Theorem 3.1 at each requested z (arrays of one shape)."""

    z: np.ndarray
    q: np.ndarray
    r: np.ndarray
    s: np.ndarray
    residual: np.ndarray  # relative residual of the unreduced equations
    violation: np.ndarray  # Stieltjes-inequality shortfall at the selection point (0: none)

    @property
    def density(self) -> np.ndarray:
        """Im q / π (the density of U where Im z → 0⁺)."""
        return np.imag(self.q) / np.pi


def _select_from_roots(model: SpectrumModel, z_select: np.ndarray):
    """Return (q, h, s, residual, violation) of the root that best satisfies the Stieltjes
    inequalities among all polished polynomial roots at each z_select."""
    rows = np.arange(z_select.size)
    roots = polynomial_roots(model, z_select)
    q, h, s, residual = _polish(model, roots, z_select[:, None])
    violation = _nevanlinna_violation(model, q, h, s, z_select[:, None])
    violation = np.where(residual < RESIDUAL_TOL, violation, np.inf)
    pick = np.argmin(violation, axis=1)
    return (q[rows, pick], h[rows, pick], s[rows, pick], residual[rows, pick],
            violation[rows, pick])


def _select(model: SpectrumModel, z_select: np.ndarray):
    """Select the physical root at every z_select, computing all roots only where needed.

    All roots are computed at every SELECTION_STRIDE-th point. Each other point starts
    Newton steps from the selected root of its nearest such point, and keeps the result
    when it is a solution that satisfies the Stieltjes inequalities exactly (violation 0).
    At most one root does (checked over dense grids in both regimes and near ψ_p = ψ_n + 1,
    see the tests), so that root is the physical one. Points where this fails get all
    their roots computed.
    """
    size = z_select.size
    anchors = np.unique(np.concatenate([np.arange(0, size, SELECTION_STRIDE), [size - 1]]))
    q_out = np.empty(size, dtype=complex)
    h_out = np.empty(size, dtype=complex)
    s_out = np.empty(size, dtype=complex)
    res_out = np.empty(size)
    violation_out = np.empty(size)
    found = _select_from_roots(model, z_select[anchors])
    for target, values in zip((q_out, h_out, s_out, res_out, violation_out), found):
        target[anchors] = values

    others = np.setdiff1d(np.arange(size), anchors)
    if others.size:
        nearest = anchors[np.clip(np.searchsorted(anchors, others), 0, anchors.size - 1)]
        previous = anchors[np.clip(np.searchsorted(anchors, others) - 1, 0, anchors.size - 1)]
        nearest = np.where(np.abs(others - previous) < np.abs(nearest - others),
                           previous, nearest)
        q, h, s, residual = _polish(model, q_out[nearest], z_select[others], h=h_out[nearest])
        violation = _nevanlinna_violation(model, q, h, s, z_select[others])
        # The tighter residual bound makes sure Newton has converged, not only approached.
        accepted = (residual < 1e-13) & (violation == 0.0)
        for target, values in zip((q_out, h_out, s_out, res_out, violation_out),
                                  (q, h, s, residual, violation)):
            target[others[accepted]] = values[accepted]
        rest = others[~accepted]
        if rest.size:
            found = _select_from_roots(model, z_select[rest])
            for target, values in zip((q_out, h_out, s_out, res_out, violation_out), found):
                target[rest] = values
    return q_out, h_out, s_out, res_out, violation_out


def solve_stieltjes(model: SpectrumModel, z) -> StieltjesSolution:
    """Solve Theorem 3.1 at every z (Im z ≥ 0), all at once, without continuation.

    The physical root is chosen at z' = Re z + iη (η from SELECTION_ETA, or z itself when
    Im z ≥ η) as the root of the eliminated polynomial that best satisfies the Stieltjes
    inequalities (see ``_select``). The solution returned at z is the polished root closest
    to it. Points given in order along a curve (a λ grid) are fastest.
    """
    z = np.atleast_1d(np.asarray(z, dtype=complex))
    require(np.all(np.imag(z) >= 0), "z: the solver takes Im z ≥ 0 (convention Im q > 0)")
    eta = SELECTION_ETA * (np.abs(np.real(z) - model.constants.s_t2) + 1e-4 * model.scale)
    z_select = np.where(np.imag(z) >= eta, z, np.real(z) + 1j * eta)

    q_out, h_out, s_out, res_out, chosen_violation = _select(model, z_select)

    # Move to z itself by Newton steps from the selected root. Near a bulk edge the root
    # moves by O(sqrt η) and the Jacobian is nearly singular, so where Newton fails, take
    # the polished root nearest to the selected one. Two roots approach each other at an
    # edge, so a root below the real axis gets a distance penalty.
    moved = np.flatnonzero(z_select != z)
    if moved.size:
        q_select = q_out.copy()
        q, h, s, residual = _polish(model, q_out[moved], z[moved], h=h_out[moved])
        failed = ((residual >= RESIDUAL_TOL)
                  | (np.imag(q) < -DENSITY_TOL * (1.0 + np.abs(q)))
                  | (np.abs(q - q_select[moved]) > 1e-3 * (1.0 + np.abs(q_select[moved]))))
        q_out[moved], h_out[moved], s_out[moved], res_out[moved] = q, h, s, residual
        retry = moved[failed]
        if retry.size:
            roots = polynomial_roots(model, z[retry])
            q, h, s, residual = _polish(model, roots, z[retry, None])
            distance = np.abs(q - q_select[retry, None])
            below = np.imag(q) < -DENSITY_TOL * (1.0 + np.abs(q))
            distance = distance + np.where(below, 1e-3 * (1.0 + np.abs(q)), 0.0)
            distance = np.where(residual < RESIDUAL_TOL, distance, np.inf)
            pick = np.argmin(distance, axis=1)
            local = np.arange(retry.size)
            q_out[retry], h_out[retry] = q[local, pick], h[local, pick]
            s_out[retry], res_out[retry] = s[local, pick], residual[local, pick]
    u = model.b + 1.0 / q_out
    r_out = (1.0 - u * s_out) / h_out
    return StieltjesSolution(z=z, q=q_out, r=r_out, s=s_out, residual=res_out,
                             violation=chosen_violation)


def density(model: SpectrumModel, lam) -> np.ndarray:
    """Return the continuous part of the eigenvalue density of U at real points ``lam``.

    The δ-peak at s_t² is not included (see :func:`delta_peak`).
    """
    # NOTE: at ψ_p = ψ_n + 1 exactly a bulk starts at s_t² with a 1/sqrt edge; there the
    # density within about 5e-12 · scale of s_t² comes out as 0, and about 2e-5 of the mass
    # (ψ_p = 2, ψ_n = 1) is missed. ψ_p a few percent away from ψ_n + 1 is resolved.
    lam = np.asarray(lam, dtype=np.float64)
    solution = solve_stieltjes(model, lam.ravel())
    q = solution.q
    values = np.where(np.imag(q) > DENSITY_TOL * (1.0 + np.abs(q)), np.imag(q) / np.pi, 0.0)
    return values.reshape(lam.shape)


# ---------------------------------------------------------------------------------------
# δ-peak, bulks and their masses.

def delta_peak(model: SpectrumModel) -> tuple[float, float]:
    """Return (weight, location) of the δ-peak of U at s_t², from the residue of q.

    In w = z − s_t² the constant term of the leading q-coefficient of the eliminated
    polynomial vanishes, so one root behaves as q ≈ −P[N−1, 0] / (P[N, 1] w) for w → 0. When
    that residue is positive, it is the weight of the peak (q ≈ −weight / (z − s_t²)).
    Otherwise the root is not the physical one and there is no peak. The result equals
    max(0, 1 − (1 + ψ_n)/ψ_p), the exact fraction of eigenvalues of the Gaussian-equivalent U
    at s_t² (U − s_t² I has rank n + d); the tests also check it against η Im q(s_t² + iη).
    """
    P = model.polynomial
    top = P.shape[0] - 1
    weight = P[top - 1, 0] / P[top, 1]
    return float(max(weight, 0.0)), float(model.constants.s_t2)


def delta_peak_numerical(model: SpectrumModel, eta_rel: float = SELECTION_ETA) -> float:
    """Return η Im q(s_t² + iη) with η = eta_rel · scale, an O(η) estimate of the peak weight.

    The error grows to O(sqrt η) when a bulk reaches down to s_t² (ψ_p = ψ_n + 1).
    """
    eta = eta_rel * model.scale
    solution = solve_stieltjes(model, np.array([model.constants.s_t2 + 1j * eta]))
    return float(eta * np.imag(solution.q[0]))


def support_upper_bound(model: SpectrumModel) -> float:
    """Return a generous upper bound on the largest eigenvalue of U in the limit.

    Twice s_t² + v_t² (1 + sqrt(ψ_p/ψ_n))² + ψ_p τ_max (1 + ψ_p^{-1/2})² (1 + ψ_n^{-1/2})²,
    with τ_max = a_t² e^{−2t} max λ_Σ + b_t²: the right edges of the two bulks of Theorem
    3.2, each widened by the Marchenko–Pastur spread of both W and the data. Callers check
    that the density vanishes there.
    """
    k = model.constants
    top = k.a_t**2 * np.exp(-2.0 * model.t) * max(model.sigma.levels) + k.b_t**2
    estimate = (k.s_t2 + k.v_t2 * (1.0 + np.sqrt(model.psi_p / model.psi_n)) ** 2
                + model.psi_p * top * (1.0 + model.psi_p ** -0.5) ** 2
                * (1.0 + model.psi_n ** -0.5) ** 2)
    return 2.0 * estimate + model.scale


def default_grid(model: SpectrumModel, points: int = 4000) -> np.ndarray:
    """Return λ = s_t² + δ with δ log-spaced from 1e-8 · scale to the support's upper bound.

    U ≥ s_t² I, so no density lies below s_t². Log spacing resolves the bulks of order
    ψ_p/ψ_n and of order ψ_p in one grid, at a relative spacing of about
    ln(upper / (1e-8 scale)) / points.
    """
    require(points >= 16, f"--points: need at least 16 grid points, got {points}")
    s2 = model.constants.s_t2
    upper = support_upper_bound(model)
    return s2 + np.geomspace(1e-8 * model.scale, upper - s2, points)


@dataclass(frozen=True)
class Bulk:
    """One connected interval of the continuous spectrum and its mass (fraction of p)."""

    left: float
    right: float
    mass: float


def _inside(model: SpectrumModel, lam: np.ndarray) -> np.ndarray:
    return density(model, lam) > 0.0


def _bisect_edges(model: SpectrumModel, outside: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Bisect each bracket [outside, inside] (either order) down to EDGE_RTOL."""
    outside = outside.astype(float).copy()
    inside = inside.astype(float).copy()
    tol = EDGE_RTOL * np.maximum(np.abs(inside), model.scale)
    for _ in range(200):
        open_brackets = np.abs(inside - outside) > tol
        if not np.any(open_brackets):
            break
        middle = 0.5 * (outside + inside)
        is_inside = _inside(model, middle)
        inside = np.where(open_brackets & is_inside, middle, inside)
        outside = np.where(open_brackets & ~is_inside, middle, outside)
    return 0.5 * (outside + inside)


def _theta_rule(model: SpectrumModel, left: float, right: float, weight, nodes: int):
    x, w = np.polynomial.legendre.leggauss(nodes)
    theta = 0.5 * np.pi * (x + 1.0)
    lam = 0.5 * (left + right) - 0.5 * (right - left) * np.cos(theta)
    jacobian = 0.5 * (right - left) * np.sin(theta) * 0.5 * np.pi
    values = density(model, lam)
    if weight is not None:
        values = values * weight(lam)
    return float(np.sum(w * jacobian * values))


def bulk_integral(model: SpectrumModel, left: float, right: float, weight=None,
                  nodes: int = 64, rtol: float = 1e-12, max_depth: int = 60) -> float:
    """Integrate weight(λ) ρ(λ) over [left, right] (weight 1 when None), adaptively.

    Each piece uses λ = (l+r)/2 − (r−l)/2 cos θ with Gauss–Legendre in θ, which turns the
    square-root vanishing at a bulk edge into a smooth integrand. A piece is split
    when halving it changes its estimate by more than ``rtol`` times the first estimate of
    the whole integral. The split point is the geometric mean of the distances to s_t²,
    because the sharp features (a bulk edge next to the δ-peak) lie there.
    """
    s2 = model.constants.s_t2
    total = _theta_rule(model, left, right, weight, nodes)
    tolerance = rtol * max(abs(total), 1e-300)

    def refine(lo: float, hi: float, estimate: float, depth: int) -> float:
        if lo > s2 and hi - lo > 1e-3 * (lo - s2):
            middle = s2 + np.sqrt((lo - s2) * (hi - s2))
        else:
            middle = 0.5 * (lo + hi)
        first = _theta_rule(model, lo, middle, weight, nodes)
        second = _theta_rule(model, middle, hi, weight, nodes)
        if abs(first + second - estimate) <= tolerance or depth >= max_depth:
            return first + second
        return refine(lo, middle, first, depth + 1) + refine(middle, hi, second, depth + 1)

    return refine(left, right, total, 0)


def bulk_mass(model: SpectrumModel, left: float, right: float) -> float:
    """Return the fraction of eigenvalues in [left, right] (see :func:`bulk_integral`)."""
    return bulk_integral(model, left, right)


def find_bulks(model: SpectrumModel, grid: np.ndarray | None = None) -> list[Bulk]:
    """Locate every bulk of the continuous spectrum and integrate its mass.

    The density is evaluated on ``grid`` (default :func:`default_grid`); each run of grid
    points with positive density is one bulk, and its edges are bisected between the last
    point outside and the first point inside until the bracket is below EDGE_RTOL · max(|λ|,
    scale). A bulk narrower than the grid spacing, or a gap narrower than it, can be missed;
    :func:`spectrum_summary` reports the mass not accounted for, which reveals that.
    """
    grid = default_grid(model) if grid is None else np.sort(np.asarray(grid, dtype=float))
    inside = _inside(model, grid)
    require(not inside[-1], f"grid: the density is still positive at its last point "
                            f"{grid[-1]:.6g}; extend the grid")
    changes = np.flatnonzero(np.diff(inside.astype(int)))
    starts = [i + 1 for i in changes if not inside[i]]
    ends = [i for i in changes if inside[i]]
    if inside[0]:
        starts = [0] + starts
    if not starts:
        return []

    left_out = np.array([grid[i - 1] if i > 0 else model.constants.s_t2 for i in starts])
    left_in = np.array([grid[i] for i in starts])
    right_in = np.array([grid[i] for i in ends])
    right_out = np.array([grid[i + 1] for i in ends])
    lefts = _bisect_edges(model, left_out, left_in)
    rights = _bisect_edges(model, right_out, right_in)
    return [Bulk(float(l), float(r), bulk_mass(model, l, r)) for l, r in zip(lefts, rights)]
