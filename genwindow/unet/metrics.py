"""Measures of memorization and quality, as pure functions of tensors and arrays.

Items of any shape are compared as flattened vectors in Euclidean distance.
"""

from __future__ import annotations

import numpy as np
import torch

# Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638: a sample x is a copy when its
# nearest training item a1 and second nearest a2 satisfy ‖x − a1‖ / ‖x − a2‖ < 1/3.
MEMORIZATION_RATIO = 1.0 / 3.0


def nearest_two(samples: torch.Tensor, train: torch.Tensor,
                chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distances to the nearest and second-nearest training items, and the index
    of the nearest, for each sample (float64 arithmetic)."""
    assert train.shape[0] >= 2, "nearest-neighbour ratios need at least two training items"
    s = samples.reshape(samples.shape[0], -1).double().cpu()
    a = train.reshape(train.shape[0], -1).double().cpu()
    a_sq = (a * a).sum(dim=1)
    d1, d2, idx = [], [], []
    for start in range(0, s.shape[0], chunk):
        block = s[start:start + chunk]
        sq = (block * block).sum(dim=1, keepdim=True) - 2.0 * block @ a.T + a_sq[None]
        values, indices = torch.topk(sq.clamp_min(0.0), 2, dim=1, largest=False)
        d1.append(values[:, 0].sqrt())
        d2.append(values[:, 1].sqrt())
        idx.append(indices[:, 0])
    return torch.cat(d1).numpy(), torch.cat(d2).numpy(), torch.cat(idx).numpy()


def memorized(samples: torch.Tensor, train: torch.Tensor,
              ratio: float = MEMORIZATION_RATIO) -> np.ndarray:
    """Return a boolean per sample: nearest / second-nearest training distance < ``ratio``."""
    d1, d2, _ = nearest_two(samples, train)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0) < ratio, d1 == 0)


def bootstrap_interval(flags: np.ndarray, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Return the percentile-bootstrap interval of the mean of 0/1 ``flags``."""
    flags = np.asarray(flags, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = rng.binomial(len(flags), flags.mean(), size=resamples) / len(flags) \
        if len(flags) else np.zeros(resamples)
    alpha = (1.0 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def f_mem(samples: torch.Tensor, train: torch.Tensor, resamples: int = 1000,
          seed: int = 0) -> dict[str, float]:
    """Return f_mem, the fraction of copies, with a bootstrap 95% interval."""
    flags = memorized(samples, train)
    low, high = bootstrap_interval(flags, resamples=resamples, seed=seed)
    return {"f_mem": float(flags.mean()), "f_mem_low": low, "f_mem_high": high}


# ---------------------------------------------------------------------------------------
# Reference denoisers

def empirical_denoiser(x: torch.Tensor, train: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Return E[x_0 | x_k] under the empirical distribution of ``train`` (float64).

    The posterior weights are softmax_i(−‖x − sqrt(ᾱ) a_i‖² / (2 (1 − ᾱ))), computed with
    log-sum-exp so that tiny noise levels give the nearest item instead of NaN.
    """
    xf = x.reshape(x.shape[0], -1).double()
    a = train.reshape(train.shape[0], -1).double().to(xf.device)
    scaled = np.sqrt(alpha_bar) * a
    sq = (xf * xf).sum(1, keepdim=True) - 2.0 * xf @ scaled.T + (scaled * scaled).sum(1)[None]
    logits = -sq.clamp_min(0.0) / (2.0 * (1.0 - alpha_bar))
    weights = torch.softmax(logits, dim=1)
    return (weights @ a).reshape(x.shape)


class GaussianDenoiser:
    """E[x_0 | x_k] when x_0 ~ N(μ, Σ) with the training set's mean and covariance.

    D(x) = μ + sqrt(ᾱ) Σ (ᾱ Σ + (1 − ᾱ) I)^{-1} (x − sqrt(ᾱ) μ), evaluated in the eigenbasis
    of Σ (float64), which is computed once.
    """

    def __init__(self, train: torch.Tensor):
        a = train.reshape(train.shape[0], -1).double().cpu()
        self.mean = a.mean(dim=0)
        centred = a - self.mean
        covariance = centred.T @ centred / a.shape[0]
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(covariance)
        self.eigenvalues = self.eigenvalues.clamp_min(0.0)

    def __call__(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        xf = x.reshape(x.shape[0], -1).double().cpu()
        gain = np.sqrt(alpha_bar) * self.eigenvalues / (
            alpha_bar * self.eigenvalues + (1.0 - alpha_bar))
        coords = (xf - np.sqrt(alpha_bar) * self.mean) @ self.eigenvectors
        return (self.mean + (coords * gain) @ self.eigenvectors.T).reshape(x.shape)


# ---------------------------------------------------------------------------------------
# Distances between feature distributions

def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Return the Fréchet distance between Gaussian fits of two feature sets.

    ‖μ_a − μ_b‖² + Tr Σ_a + Tr Σ_b − 2 Tr (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2} (Heusel et al.,
    2017, arXiv:1706.08500); the matrix square roots come from symmetric eigendecompositions.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2.0 * trace_root)


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray,
                              subsets: int = 20, subset_size: int = 100,
                              seed: int = 0) -> float:
    """Return KID: the unbiased MMD² with kernel (x·y / d + 1)³, averaged over subsets.

    Bińkowski, Sutherland, Arbel, Gretton (2018), arXiv:1801.01401.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    m = min(subset_size, len(a), len(b))
    assert m >= 2, "KID needs at least two items in each set"
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                      + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2.0 * kxy.mean())
    return float(np.mean(values))


# ---------------------------------------------------------------------------------------
# Timescales from monitor logs

def tau_gen(steps: np.ndarray, quality: np.ndarray, fraction: float = 0.9) -> float:
    """Return the first step at which ``quality`` (lower is better, e.g. a Fréchet distance)
    has made ``fraction`` of its total improvement, first value to minimum.

    The plateau is the minimum over the whole log, so tau_gen is the first step with
    quality ≤ min + (1 − fraction) (first − min). NaN when quality never improves.
    """
    steps, quality = np.asarray(steps, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    keep = np.isfinite(quality)
    steps, quality = steps[keep], quality[keep]
    if len(quality) < 2 or quality.min() >= quality[0]:
        return float("nan")
    threshold = quality.min() + (1.0 - fraction) * (quality[0] - quality.min())
    return float(steps[np.argmax(quality <= threshold)])


def tau_mem(steps: np.ndarray, f_mem_low: np.ndarray) -> tuple[float, float]:
    """Return (tau_mem, previous evaluation step): tau_mem is the first step at which the
    lower bound of the f_mem interval is above zero; the true onset lies in between.
    (NaN, last step) when it never is."""
    steps = np.asarray(steps, dtype=np.float64)
    above = np.asarray(f_mem_low, dtype=np.float64) > 0
    if not above.any():
        return float("nan"), float(steps[-1]) if len(steps) else float("nan")
    first = int(np.argmax(above))
    previous = float(steps[first - 1]) if first > 0 else 0.0
    return float(steps[first]), previous


def first_crossing(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """Return the first step at which ``values`` exceeds ``threshold`` (NaN if never)."""
    above = np.asarray(values, dtype=np.float64) > threshold
    return float(np.asarray(steps)[np.argmax(above)]) if above.any() else float("nan")


def fit_power_law(n: np.ndarray, tau: np.ndarray) -> dict[str, float]:
    """Fit tau = c · n^exponent by least squares on log-log axes (finite points only)."""
    n, tau = np.asarray(n, dtype=np.float64), np.asarray(tau, dtype=np.float64)
    keep = np.isfinite(tau) & (tau > 0)
    if keep.sum() < 2:
        return {"exponent": float("nan"), "prefactor": float("nan"), "points": int(keep.sum())}
    slope, intercept = np.polyfit(np.log(n[keep]), np.log(tau[keep]), 1)
    return {"exponent": float(slope), "prefactor": float(np.exp(intercept)),
            "points": int(keep.sum())}
