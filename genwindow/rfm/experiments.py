"""The random-features runs behind ``genwindow rfm``: curves, training and the n-scaling.

Pure functions from options to pandas tables and dicts; the command module writes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from genwindow.rfm.bands import band_summary
from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.timescales import (DEFINITIONS, formula_timescales, measured_timescales,
                                      tau_grid)

CURVE_COLUMNS = ["tau", "train_loss", "test_loss", "score_error", "gen_gap"]
# Fields of a saved scaling point that the scaling table reads.
POINT_KEYS = ("psi_n", "seed", "n", "p", "tau_gen", "tau_mem", "tau_mem_score",
              "tau_gen_formula", "tau_mem_formula", "score_error_min", "train_loss_inf",
              "test_loss_inf", "gen_gap_inf")


@dataclass(frozen=True)
class RFConfig:
    """One random-features problem: sizes, diffusion time, data covariance, features."""

    psi_p: float = 64.0
    psi_n: float = 8.0
    t: float = 0.1
    d: int = 100
    seed: int = 0
    activation: str = "tanh"
    sigma_levels: tuple[float, ...] = (1.0,)
    sigma_weights: tuple[float, ...] = (1.0,)
    features: str = "gaussian-equivalent"
    ridge: float = 0.0
    noise_samples: int = 256
    points: int = 400
    rise: float = 0.1
    extra: dict = field(default_factory=dict)

    def instance(self, psi_n: float | None = None, seed: int | None = None):
        return sample_instance(self.d, self.psi_p, self.psi_n if psi_n is None else psi_n,
                               self.t, self.seed if seed is None else seed, self.activation,
                               self.sigma_levels, self.sigma_weights)

    def as_dict(self) -> dict:
        return asdict(self)


def closed_form_curves(config: RFConfig, psi_n: float | None = None,
                       seed: int | None = None):
    """Return (curves DataFrame, summary dict, band rows, ClosedForm) for one problem."""
    inst = config.instance(psi_n, seed)
    cf = ClosedForm.from_instance(inst, config.features, config.ridge, config.noise_samples,
                                  inst.seed)
    tau = tau_grid(inst.constants, inst.psi_p, inst.psi_n, config.points)
    curves = pd.DataFrame({"tau": tau, **cf.curves(tau)})[CURVE_COLUMNS]
    limits = cf.limits()
    summary = summarize(inst, curves, limits, config.rise)
    bands = band_summary(cf)
    summary["band_shares"] = {row["band"]: row["share"] for row in bands}
    return curves, summary, bands, cf


def summarize(inst, curves: pd.DataFrame, limits: dict, rise: float) -> dict:
    """Return the timescales of one curve with their definitions and the τ → ∞ limits."""
    measured = measured_timescales(curves["tau"], curves["score_error"], curves["gen_gap"],
                                   limits["gen_gap"], rise)
    return {**measured, **formula_timescales(inst.constants, inst.psi_p, inst.psi_n),
            "train_loss_inf": limits["train_loss"], "test_loss_inf": limits["test_loss"],
            "score_error_inf": limits["score_error"], "gen_gap_inf": limits["gen_gap"],
            "psi_p": inst.psi_p, "psi_n": inst.psi_n, "d": inst.d, "p": inst.p, "n": inst.n,
            "t": inst.t, "seed": inst.seed, "rise": rise, "definitions": DEFINITIONS}


def fit_power_law(x, y, confidence: float = 0.95) -> dict:
    """Fit log y = α log x + c by least squares and return α, its interval and the prefactor.

    The interval is the Student-t interval of the slope from the residual scatter, so it
    widens when seeds disagree. The fit needs at least three points over two distinct x.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 3 or np.unique(x[ok]).size < 2:
        return {"exponent": float("nan"), "low": float("nan"), "high": float("nan"),
                "prefactor": float("nan"), "points": int(ok.sum())}
    fit = stats.linregress(np.log(x[ok]), np.log(y[ok]))
    half = stats.t.ppf(0.5 + confidence / 2, ok.sum() - 2) * fit.stderr
    return {"exponent": float(fit.slope), "low": float(fit.slope - half),
            "high": float(fit.slope + half), "prefactor": float(np.exp(fit.intercept)),
            "points": int(ok.sum())}


def scaling_tables(rows: list[dict]) -> tuple[pd.DataFrame, dict]:
    """Return the scaling table and the fits of tau_mem and the minimal score error."""
    table = pd.DataFrame(rows)
    tau_gen = table["tau_gen"].to_numpy()
    summary = {
        "tau_mem_exponent": fit_power_law(table["psi_n"], table["tau_mem"]),
        "tau_mem_formula_exponent": fit_power_law(table["psi_n"], table["tau_mem_formula"]),
        "score_error_min_exponent": fit_power_law(table["psi_n"], table["score_error_min"]),
        "tau_gen_exponent": fit_power_law(table["psi_n"], table["tau_gen"]),
        "tau_gen_spread": {"mean": float(np.mean(tau_gen)), "std": float(np.std(tau_gen)),
                           "max_over_min": float(np.max(tau_gen) / np.min(tau_gen))},
        "definitions": DEFINITIONS,
    }
    return table, summary
