"""The matrices that make the denoising loss of the random-features model quadratic in A.

With B = A / sqrt(p) and φ = σ(W x_t / sqrt(d)), the noise-averaged training loss is
(Bonnaire, Urfin, Biroli, Mézard 2025, arXiv:2505.17638v2, eq. for L_train in section 3)

    L_train(B) = 1 + (Δ_t/d) Tr(B U Bᵀ) + (2 sqrt(Δ_t)/d) Tr(B V),
    U = (1/n) Σ_ν E_ξ φ φᵀ (p×p),    V = (1/n) Σ_ν E_ξ φ ξᵀ (p×d),

and the test loss is the same with the population matrices Ũ = E φ φᵀ and Ṽ = E φ ξᵀ over
fresh data. Two builds:

- Gaussian equivalent: U = (1/n) G Gᵀ + b_t² W Wᵀ/d + s_t² I with
  G = e^{-t} a_t W X / sqrt(d) + v_t Ω; V ≃ Ṽ ≃ (µ1 sqrt(Δ_t)/Γ_t) W / sqrt(d);
  Ũ ≃ (µ1²/Γ_t²) W Σ_t Wᵀ/d + (‖σ‖² − µ1²) I. (For Σ = I, Γ_t = 1.)
- True features: U and V by Monte Carlo over the training noise ξ (``noise_samples`` draws
  per data point); Ũ and Ṽ by two- and one-dimensional Gauss–Hermite quadrature, which is
  exact to about 1e-12 because each pair of pre-activations is a centred bivariate Gaussian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genwindow.errors import require
from genwindow.rfm.instance import RFInstance
from genwindow.theory.constants import activation, gauss_hermite

FEATURE_KINDS = ("gaussian-equivalent", "true")


@dataclass(frozen=True)
class PSDMatrix:
    """A p×p positive semi-definite matrix stored as factor factorᵀ + shift I, or dense."""

    shift: float = 0.0
    factor: np.ndarray | None = None  # (p, r)
    dense: np.ndarray | None = None  # (p, p)

    def to_dense(self) -> np.ndarray:
        if self.dense is not None:
            return self.dense
        p = self.factor.shape[0]
        return self.factor @ self.factor.T + self.shift * np.eye(p)

    def quadratic(self, B: np.ndarray) -> float:
        """Return Tr(B M Bᵀ) for B of shape (d, p)."""
        if self.dense is not None:
            return float(np.einsum("ij,jk,ik->", B, self.dense, B))
        return float(np.sum((B @ self.factor) ** 2) + self.shift * np.sum(B * B))

    def project(self, Q: np.ndarray) -> np.ndarray:
        """Return Qᵀ M Q for Q of shape (p, r)."""
        if self.dense is not None:
            return Q.T @ self.dense @ Q
        FQ = self.factor.T @ Q
        return FQ.T @ FQ + self.shift * (Q.T @ Q)


@dataclass(frozen=True)
class RFMatrices:
    """U, V (training) and Ũ, Ṽ (population) of one instance, with the loss constants."""

    d: int
    p: int
    Delta_t: float
    U: PSDMatrix
    V: np.ndarray  # (p, d)
    U_pop: PSDMatrix
    V_pop: np.ndarray  # (p, d)
    score_offset: float  # Tr(Σ_t⁻¹)/d: score error of the zero model
    features: str

    def losses(self, B: np.ndarray) -> dict[str, float]:
        """Return train loss, test loss, score error and gap of the model s = B σ(Wx/√d)."""
        sqrt_delta = np.sqrt(self.Delta_t)
        train = (1.0 + self.Delta_t * self.U.quadratic(B) / self.d
                 + 2.0 * sqrt_delta * np.sum(B * self.V.T) / self.d)
        test = (1.0 + self.Delta_t * self.U_pop.quadratic(B) / self.d
                + 2.0 * sqrt_delta * np.sum(B * self.V_pop.T) / self.d)
        return {"train_loss": train, "test_loss": test,
                "score_error": (test - 1.0) / self.Delta_t + self.score_offset,
                "gen_gap": test - train}


def gaussian_equivalent_factor(inst: RFInstance) -> np.ndarray:
    """Return K = [G/sqrt(n), b_t W/sqrt(d)] (p × (n+d)), so that U = K Kᵀ + s_t² I."""
    c = inst.constants
    G = (np.exp(-inst.t) * c.a_t * (inst.W @ inst.X) / np.sqrt(inst.d)
         + np.sqrt(c.v_t2) * inst.Omega)
    return np.hstack([G / np.sqrt(inst.n), c.b_t * inst.W / np.sqrt(inst.d)])


def gaussian_equivalent_U(inst: RFInstance) -> np.ndarray:
    """Return the dense p×p Gaussian-equivalent U of ``inst``."""
    K = gaussian_equivalent_factor(inst)
    return K @ K.T + inst.constants.s_t2 * np.eye(inst.p)


def ge_eigenvalues(inst: RFInstance) -> np.ndarray:
    """Return all p eigenvalues of the Gaussian-equivalent U, ascending.

    U − s_t² I = K Kᵀ has rank at most n + d, so its nonzero eigenvalues are those of the
    (n+d)×(n+d) Gram matrix KᵀK; the other p − n − d sit exactly at s_t² (the δ-peak).
    """
    K = gaussian_equivalent_factor(inst)
    s2 = inst.constants.s_t2
    if K.shape[1] >= inst.p:
        return np.linalg.eigvalsh(K @ K.T) + s2
    gram_eigs = np.clip(np.linalg.eigvalsh(K.T @ K), 0.0, None)
    return np.sort(np.concatenate([np.full(inst.p - K.shape[1], s2), gram_eigs + s2]))


def gaussian_equivalent_matrices(inst: RFInstance) -> RFMatrices:
    c = inst.constants
    V = c.b_t * inst.W / np.sqrt(inst.d)
    pop_factor = (c.mu1 / np.sqrt(c.Gamma_t2)) * inst.W * np.sqrt(inst.sigma_t_diag) \
        / np.sqrt(inst.d)
    return RFMatrices(
        d=inst.d, p=inst.p, Delta_t=c.Delta_t,
        U=PSDMatrix(shift=c.s_t2, factor=gaussian_equivalent_factor(inst)),
        V=V, U_pop=PSDMatrix(shift=c.sigma_norm2 - c.mu1**2, factor=pop_factor),
        V_pop=V, score_offset=float(np.mean(1.0 / inst.sigma_t_diag)),
        features="gaussian-equivalent")


def true_feature_matrices(inst: RFInstance, noise_samples: int = 256, seed: int = 0,
                          quadrature_nodes: int = 48, chunk: int = 4096) -> RFMatrices:
    """Build U, V by Monte Carlo over the noise and Ũ, Ṽ by quadrature, for tanh-type σ.

    U and V average ``noise_samples`` noise draws per data point, so their entries carry a
    Monte Carlo error of order 1/sqrt(n · noise_samples).
    """
    require(noise_samples >= 1, f"--noise-samples: need at least 1, got {noise_samples}")
    sigma = activation(inst.activation)
    c = inst.constants
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    sqrt_delta = np.sqrt(c.Delta_t)

    # Training matrices: Monte Carlo over ξ, accumulated in chunks of noised points.
    U = np.zeros((inst.p, inst.p))
    V = np.zeros((inst.p, inst.d))
    data = np.repeat(inst.X.T, noise_samples, axis=0)  # (n·M, d)
    for start in range(0, data.shape[0], chunk):
        x0 = data[start:start + chunk]
        xi = rng.standard_normal(x0.shape)
        phi = sigma((np.exp(-inst.t) * x0 + sqrt_delta * xi) @ inst.W.T / np.sqrt(inst.d), np)
        U += phi.T @ phi
        V += phi.T @ xi
    total = data.shape[0]
    U /= total
    V /= total

    U_pop, V_pop = population_matrices(inst, quadrature_nodes)
    return RFMatrices(d=inst.d, p=inst.p, Delta_t=c.Delta_t, U=PSDMatrix(dense=U), V=V,
                      U_pop=PSDMatrix(dense=U_pop), V_pop=V_pop,
                      score_offset=float(np.mean(1.0 / inst.sigma_t_diag)), features="true")


def population_matrices(inst: RFInstance, nodes: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Return Ũ = E σ(h)σ(h)ᵀ and Ṽ = E σ(h) ξᵀ over x_t ~ N(0, Σ_t), by quadrature.

    h = W x_t / sqrt(d) is Gaussian with covariance C = W Σ_t Wᵀ / d, so each entry of Ũ is
    a two-dimensional Gaussian integral (Cholesky of the 2×2 block), and by Stein's lemma
    Ṽ_ij = sqrt(Δ_t) (W_ij / sqrt(d)) E σ'(h_i) = sqrt(Δ_t) (W_ij/sqrt(d)) E[z σ(√C_ii z)]/√C_ii.
    """
    sigma = activation(inst.activation)
    z, w = gauss_hermite(nodes)
    C = (inst.W * inst.sigma_t_diag) @ inst.W.T / inst.d
    std = np.sqrt(np.diag(C))

    slope = np.sum(w * z * sigma(std[:, None] * z, np), axis=1) / std
    V_pop = np.sqrt(inst.constants.Delta_t) * slope[:, None] * inst.W / np.sqrt(inst.d)

    rows, cols = np.triu_indices(inst.p)
    U_pop = np.empty((inst.p, inst.p))
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    weights = np.outer(w, w)
    for start in range(0, rows.size, 2048):
        i, j = rows[start:start + 2048], cols[start:start + 2048]
        corr = C[i, j] / std[i]
        resid = np.sqrt(np.clip(C[j, j] - corr**2, 0.0, None))
        h_i = std[i, None, None] * z1
        h_j = corr[:, None, None] * z1 + resid[:, None, None] * z2
        values = np.sum(weights * sigma(h_i, np) * sigma(h_j, np), axis=(1, 2))
        U_pop[i, j] = values
        U_pop[j, i] = values
    return U_pop, V_pop


def build_matrices(inst: RFInstance, features: str = "gaussian-equivalent",
                   noise_samples: int = 256, seed: int = 0) -> RFMatrices:
    """Build the matrices of ``inst`` for ``features`` ('gaussian-equivalent' or 'true')."""
    require(features in FEATURE_KINDS,
            f"--features: unknown kind {features!r}; choose one of {list(FEATURE_KINDS)}")
    if features == "gaussian-equivalent":
        return gaussian_equivalent_matrices(inst)
    return true_feature_matrices(inst, noise_samples=noise_samples, seed=seed)
