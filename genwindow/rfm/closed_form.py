"""Gradient flow of the random-features score model in closed form.

Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638v2, section 3: from A(0) = 0,
gradient flow on the quadratic loss in the training time τ = k η / d² gives

    A(τ)/sqrt(p) = −(1/sqrt(Δ_t)) Vᵀ U⁻¹ (I − exp(−(2Δ_t/ψ_p) U τ)).

With U = Q diag(λ) Qᵀ, each mode k relaxes as F_k(τ) = 1 − exp(−(2Δ_t/ψ_p) λ_k τ), and with
g_k = F_k / λ_k, P = Qᵀ V, P̃ = Qᵀ Ṽ, Ũ' = Qᵀ Ũ Q the losses are

    L_train(τ) = 1 + (1/d) Σ_k ‖P_k‖² (λ_k g_k² − 2 g_k)
    L_test(τ)  = 1 + (1/d) gᵀ [(P Pᵀ) ∘ Ũ'] g − (2/d) Σ_k g_k P_k·P̃_k
    score error = (L_test − 1)/Δ_t + Tr(Σ_t⁻¹)/d,

the last because the denoising loss equals Δ_t times the score error plus a constant
(Stein's lemma gives E[φ xᵀ] Σ_t⁻¹ = Ṽ / sqrt(Δ_t)). A ridge term (Δ_t ρ/d)‖B‖² replaces
λ_k by λ_k + ρ in F_k and g_k only. One eigendecomposition serves every τ.

For the Gaussian-equivalent U = K Kᵀ + s_t² I with K of n + d < p columns, V and Ṽ lie in
the range of K, so only the n + d modes of the (n+d)×(n+d) Gram matrix KᵀK matter; the other
p − n − d modes (the δ-peak at s_t²) never move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genwindow.errors import require
from genwindow.rfm.instance import RFInstance
from genwindow.rfm.matrices import RFMatrices, build_matrices

# Gram eigenvalues below this fraction of the largest are null directions of K.
_GRAM_RANK_TOL = 1e-12


@dataclass(frozen=True)
class ClosedForm:
    """Learning curves of one instance from one eigendecomposition of U."""

    d: int
    p: int
    Delta_t: float
    psi_p: float
    score_offset: float
    ridge: float
    eigenvalues: np.ndarray  # (r,) modes of U that V reaches, ascending
    delta_peak_count: int  # modes at s_t² left out of `eigenvalues` (V has no weight there)
    delta_peak_location: float
    v_weight: np.ndarray  # (r,) ‖P_k‖²
    cross: np.ndarray  # (r,) P_k · P̃_k
    test_quadratic: np.ndarray  # (r, r) (P Pᵀ) ∘ Ũ'
    projected_v: np.ndarray  # (r, d) P = Qᵀ V
    eigenvectors: np.ndarray  # (p, r) Q

    @classmethod
    def from_instance(cls, inst: RFInstance, features: str = "gaussian-equivalent",
                      ridge: float = 0.0, noise_samples: int = 256,
                      seed: int = 0) -> "ClosedForm":
        """Build the closed form of ``inst`` with 'gaussian-equivalent' or 'true' features."""
        return cls.from_matrices(build_matrices(inst, features, noise_samples, seed), ridge)

    @classmethod
    def from_matrices(cls, m: RFMatrices, ridge: float = 0.0) -> "ClosedForm":
        require(np.isfinite(ridge) and ridge >= 0, f"--ridge: must be ≥ 0, got {ridge}")
        delta_count, delta_location = 0, float(m.U.shift)
        if m.U.factor is not None and m.U.factor.shape[1] < m.p:
            K = m.U.factor
            gram_eigs, Y = np.linalg.eigh(K.T @ K)
            keep = gram_eigs > _GRAM_RANK_TOL * gram_eigs[-1]
            Q = (K @ Y[:, keep]) / np.sqrt(gram_eigs[keep])
            eigenvalues = gram_eigs[keep] + m.U.shift
            delta_count = m.p - int(keep.sum())
            outside = m.V - Q @ (Q.T @ m.V)
            assert np.linalg.norm(outside) <= 1e-8 * max(1.0, np.linalg.norm(m.V))
        else:
            eigenvalues, Q = np.linalg.eigh(m.U.to_dense())
        P = Q.T @ m.V
        P_pop = Q.T @ m.V_pop
        test_quadratic = (P @ P.T) * m.U_pop.project(Q)
        return cls(d=m.d, p=m.p, Delta_t=m.Delta_t, psi_p=m.p / m.d,
                   score_offset=m.score_offset, ridge=float(ridge), eigenvalues=eigenvalues,
                   delta_peak_count=delta_count, delta_peak_location=delta_location,
                   v_weight=np.sum(P * P, axis=1), cross=np.sum(P * P_pop, axis=1),
                   test_quadratic=test_quadratic, projected_v=P, eigenvectors=Q)

    @property
    def rate(self) -> float:
        """Relaxation rate per unit eigenvalue and unit τ: 2 Δ_t / ψ_p."""
        return 2.0 * self.Delta_t / self.psi_p

    def gains(self, tau, step_tau: float | None = None) -> np.ndarray:
        """Return g_k(τ) = F_k(τ)/(λ_k + ρ) for every τ, shape (len(tau), r).

        With ``step_tau`` (the τ advanced by one gradient-descent step, η/d²) F_k is the
        discrete-time factor 1 − (1 − rate (λ_k+ρ) step_tau)^(τ/step_tau) of plain
        gradient descent instead of the gradient-flow limit.
        """
        tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
        kappa = self.eigenvalues + self.ridge
        if step_tau is None:
            F = -np.expm1(-self.rate * np.outer(tau, kappa))
        else:
            steps = tau / step_tau
            F = 1.0 - (1.0 - self.rate * kappa * step_tau)[None, :] ** steps[:, None]
        return F / kappa

    def curves_from_gains(self, g: np.ndarray) -> dict[str, np.ndarray]:
        """Return the four curves for gains g of shape (len(tau), r), from any schedule."""
        lam = self.eigenvalues
        train = 1.0 + (g**2 * lam - 2.0 * g) @ self.v_weight / self.d
        test = (1.0 + np.sum((g @ self.test_quadratic) * g, axis=1) / self.d
                - 2.0 * g @ self.cross / self.d)
        return {"train_loss": train, "test_loss": test,
                "score_error": (test - 1.0) / self.Delta_t + self.score_offset,
                "gen_gap": test - train}

    def curves(self, tau, step_tau: float | None = None) -> dict[str, np.ndarray]:
        """Return train_loss, test_loss, score_error, gen_gap at every τ of ``tau``."""
        return self.curves_from_gains(self.gains(tau, step_tau))

    def limits(self) -> dict[str, float]:
        """Return the four quantities at τ = ∞ (the ridge or pseudo-inverse solution)."""
        g = (1.0 / (self.eigenvalues + self.ridge))[None, :]
        return {k: float(v[0]) for k, v in self.curves_from_gains(g).items()}

    def weights(self, tau: float) -> np.ndarray:
        """Return B(τ) = A(τ)/sqrt(p), shape (d, p)."""
        g = self.gains(tau)[0]
        return -(self.projected_v.T * g) @ self.eigenvectors.T / np.sqrt(self.Delta_t)

    def mode_gaps(self, tau) -> np.ndarray:
        """Return each mode's share of L_test − L_train at every τ, shape (len(tau), r).

        The cross terms of the test loss are split evenly between the two modes they join,
        so the rows sum to the gap.
        """
        g = self.gains(tau)
        lam = self.eigenvalues
        test = (g * (g @ self.test_quadratic) - 2.0 * g * self.cross) / self.d
        train = (g**2 * lam - 2.0 * g) * self.v_weight / self.d
        return test - train
