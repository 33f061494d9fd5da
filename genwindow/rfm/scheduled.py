"""Learning-rate schedules on the random-features model, evaluated exactly.

Gradient flow on the quadratic loss of the RF model (Bonnaire, Urfin, Biroli, Mézard 2025,
arXiv:2505.17638v2, section 3) reaches a state that depends on a schedule only through the
training time it has accumulated, τ(step) = step_tau · T(step), with T(step) = Σ_{k<step} η(k)
the cumulative learning-rate factor and step_tau = lr / d² the τ of one step at the base rate.
So a schedule is a change of time: its curves are the closed-form curves at τ(step).

Controllers that read monitor values run in closed loop against those curves. The monitored
values are the exact losses plus the sampling noise of estimates on a finite held-out set.

Where the change of time fails: plain gradient descent at a finite rate (each mode k is
multiplied by 1 − rate λ_k step_tau η per step, so the state depends on every η, not just on
their sum; ``discrete_gd_curves`` gives it exactly); SGD with fresh noise and mini-batches
(``genwindow.rfm.training.train_rf``); decoupled weight decay. A ridge in the loss keeps the
change of time (it only shifts every λ_k) but moves the curves themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar

from genwindow.errors import require
from genwindow.rfm.closed_form import ClosedForm
from genwindow.schedules.shapes import Shape

MONITOR_NOISE_KINDS = ("none", "gaussian")


@dataclass(frozen=True)
class WindowCriteria:
    """When a run counts as generalizing and as memorizing.

    Generalizing: score error ≤ min + gen_tolerance · (score error at τ = 0 − min), with min
    the minimum of the gradient-flow score error over all τ. Memorizing: the metric
    ``mem_metric`` (default rel_gap = (test_loss − train_loss) / test_loss) ≥ mem_threshold.
    """

    gen_tolerance: float = 0.05
    mem_metric: str = "rel_gap"
    mem_threshold: float = 0.05

    def describe(self) -> str:
        return (f"generalizes: score_error <= min + {self.gen_tolerance:g} * "
                f"(score_error(0) - min); memorizes: {self.mem_metric} >= "
                f"{self.mem_threshold:g}")


@dataclass(frozen=True)
class Timescales:
    """Times of one instance under gradient flow, in the training time τ."""

    score_error_start: float   # at τ = 0
    score_error_min: float
    tau_min: float             # τ of the minimum of the score error
    tau_gen: float             # first τ at which the run generalizes (criteria above)
    tau_mem: float             # first τ at which the run memorizes; inf if never


def _metric_curve(curves: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name == "rel_gap":
        return curves["gen_gap"] / curves["test_loss"]
    return curves[name]


def _first_root(fn, tau_grid: np.ndarray, values: np.ndarray) -> float:
    """Return the first τ where ``values`` (= fn on the grid) turns ≥ 0, refined by brentq."""
    above = np.nonzero(values >= 0)[0]
    if above.size == 0:
        return math.inf
    k = int(above[0])
    if k == 0:
        return float(tau_grid[0])
    return brentq(fn, tau_grid[k - 1], tau_grid[k], xtol=1e-12, rtol=1e-12)


def timescales(cf: ClosedForm, criteria: WindowCriteria = WindowCriteria(),
               tau_max: float = 1e8, grid_points: int = 801) -> Timescales:
    """Return the gradient-flow timescales of ``cf`` under ``criteria``, to ~1e-12 relative.

    The grid (log-spaced from 1e-6 to ``tau_max``) only brackets the crossings; brentq refines
    them on the closed-form curve itself.
    """
    tau_grid = np.concatenate([[0.0], np.logspace(-6, math.log10(tau_max), grid_points)])
    curves = cf.curves(tau_grid)
    score = curves["score_error"]
    k_min = int(np.argmin(score))
    # Refine the minimum of the score error between its grid neighbours.
    lo, hi = tau_grid[max(k_min - 1, 0)], tau_grid[min(k_min + 1, tau_grid.size - 1)]
    refined = minimize_scalar(lambda x: float(cf.curves([x])["score_error"][0]),
                              bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-10 * max(hi, 1e-12)})
    tau_min = float(refined.x)
    se_min = float(min(refined.fun, score[k_min]))
    se_start = float(score[0])
    gen_level = se_min + criteria.gen_tolerance * (se_start - se_min)

    def below_gen(x: float) -> float:
        return gen_level - float(cf.curves([x])["score_error"][0])

    tau_gen = _first_root(below_gen, tau_grid, gen_level - score)

    def over_mem(x: float) -> float:
        value = _metric_curve(cf.curves([x]), criteria.mem_metric)[0]
        return float(value) - criteria.mem_threshold

    mem_values = _metric_curve(curves, criteria.mem_metric) - criteria.mem_threshold
    # The gap is 0/0 at τ = 0; memorization is looked for after the first grid point.
    tau_mem = _first_root(over_mem, tau_grid[1:], np.nan_to_num(mem_values[1:], nan=-1.0))
    return Timescales(se_start, se_min, tau_min, tau_gen, tau_mem)


@dataclass(frozen=True)
class MonitorNoise:
    """Sampling noise of the monitored losses, as a finite held-out set would have it.

    ``kind`` 'gaussian': each evaluation adds independent Gaussian errors to the train and
    test losses with standard deviations loss · sqrt(2 / (d · size)), the error of a mean of
    ``size`` per-sample losses ‖r‖²/d whose residual r is Gaussian with covariance close to
    a multiple of the identity (Var ‖r‖²/d = 2 Tr C² / d² ≈ 2 loss² / d). The test size is
    ``held_out``; the train size is n (one probe noise per training point).
    ``tests/test_rfm_scheduled.py`` checks this variance against sampled losses.
    """

    kind: str = "gaussian"
    held_out: int = 1000

    def __post_init__(self):
        require(self.kind in MONITOR_NOISE_KINDS, f"--monitor-noise: unknown kind "
                f"{self.kind!r}; choose one of {list(MONITOR_NOISE_KINDS)}")
        require(self.held_out >= 1, f"--held-out: need at least 1 held-out sample, got "
                                    f"{self.held_out}")

    def observe(self, exact: dict[str, float], d: int, n: int,
                rng: np.random.Generator) -> dict[str, float]:
        train, test = exact["train_loss"], exact["test_loss"]
        if self.kind == "gaussian":
            train += train * math.sqrt(2.0 / (d * n)) * rng.standard_normal()
            test += test * math.sqrt(2.0 / (d * self.held_out)) * rng.standard_normal()
        return {"train_loss": train, "test_loss": test, "gen_gap": test - train,
                "rel_gap": (test - train) / test}


@dataclass
class ScheduledRun:
    """One schedule run against one closed form: the time it accumulated step by step."""

    cumulative: np.ndarray        # (S + 1,) T(0..S); constant after a stop
    lr_factors: np.ndarray        # (S,) factor at each step; 0 after a stop
    stop_step: int                # steps actually taken (S when the run never stops)
    budget: int
    step_tau: float
    monitor_log: list[dict] = field(default_factory=list)

    @property
    def tau(self) -> np.ndarray:
        """τ(step) for step = 0..S."""
        return self.step_tau * self.cumulative

    @property
    def tau_end(self) -> float:
        return float(self.step_tau * self.cumulative[-1])


def run_schedule(cf: ClosedForm, schedule, budget: int, step_tau: float, n: int,
                 eval_every: int = 10, noise: MonitorNoise = MonitorNoise("none"),
                 seed: int = 0) -> ScheduledRun:
    """Run ``schedule`` for up to ``budget`` steps of gradient flow on ``cf``.

    A learning-rate shape runs open loop through its closed-form T. Any other schedule gets
    the monitored losses (exact closed-form values plus ``noise``) every ``eval_every``
    steps at the step they are measured, and its actions set T step by step.
    """
    require(budget >= 1, f"--budget: need at least 1 step, got {budget}")
    require(eval_every >= 1, f"--eval-every: need at least 1, got {eval_every}")
    if isinstance(schedule, Shape):
        steps = np.arange(budget + 1)
        factors = np.asarray(schedule.factor(steps[:-1]), dtype=np.float64)
        return ScheduledRun(np.asarray(schedule.cumulative(steps), dtype=np.float64),
                            factors, budget, budget, step_tau)

    rng = np.random.default_rng(seed)
    cumulative = np.zeros(budget + 1)
    factors = np.zeros(budget)
    log: list[dict] = []
    stop_step = budget
    for step in range(budget):
        metrics = {}
        if step % eval_every == 0:
            exact = {key: float(value[0]) for key, value in
                     cf.curves([step_tau * cumulative[step]]).items()}
            metrics = noise.observe(exact, cf.d, n, rng)
            log.append({"step": step, "tau": step_tau * cumulative[step], **metrics})
        action = schedule.update(step, metrics)
        factors[step] = action.lr_factor
        cumulative[step + 1] = cumulative[step] + action.lr_factor
        if action.stop:
            stop_step = step + 1
            cumulative[step + 1:] = cumulative[step + 1]
            break
    return ScheduledRun(cumulative, factors, stop_step, budget, step_tau, log)


def window_metrics(run: ScheduledRun, scales: Timescales, cf: ClosedForm) -> dict:
    """Return the window metrics of a gradient-flow run under its step budget.

    step_gen / step_mem: first step at which τ(step) reaches tau_gen / tau_mem (NaN when not
    within the run). steps_in_window: steps k < stop_step with step_gen ≤ k < step_mem.
    memorized: the run reached tau_mem before it ended. Exact: τ(step) is monotone, so
    each step is found by a search on the accumulated τ, with no time grid.
    """
    tau = run.tau
    end = run.stop_step

    def first_step(level: float) -> float:
        if not math.isfinite(level):
            return math.nan
        k = int(np.searchsorted(tau[: end + 1], level * (1 - 1e-12), side="left"))
        return float(k) if k <= end else math.nan

    step_gen, step_mem = first_step(scales.tau_gen), first_step(scales.tau_mem)
    start = end if math.isnan(step_gen) else step_gen
    stop = end if math.isnan(step_mem) else step_mem
    final = {key: float(value[0]) for key, value in cf.curves([run.tau_end]).items()}
    return {
        "step_gen": step_gen,
        "step_mem": step_mem,
        "steps_in_window": int(max(stop - start, 0)),
        "stop_step": end,
        "tau_end": run.tau_end,
        "tau_gen": scales.tau_gen,
        "tau_mem": scales.tau_mem,
        "memorized": not math.isnan(step_mem),
        "final_score_error": final["score_error"],
        "final_rel_gap": final["gen_gap"] / final["test_loss"],
        "score_error_min": scales.score_error_min,
        "ends_in_window": bool(tau[end] >= scales.tau_gen and tau[end] < scales.tau_mem),
    }


def curve_frame(cf: ClosedForm, run: ScheduledRun, points: int = 400) -> pd.DataFrame:
    """Return the exact curves of ``run`` at up to ``points`` steps (linear and log spaced)."""
    grid = np.unique(np.concatenate([
        np.linspace(0, run.budget, min(points // 2, run.budget + 1)).round(),
        np.logspace(0, math.log10(max(run.budget, 1)), points // 2).round()])).astype(int)
    curves = cf.curves(run.tau[grid])
    return pd.DataFrame({"step": grid, "cumulative": run.cumulative[grid],
                         "tau": run.tau[grid], **curves,
                         "rel_gap": curves["gen_gap"] / curves["test_loss"]})


def discrete_gd_curves(cf: ClosedForm, factors: np.ndarray, step_tau: float,
                       record_steps) -> dict[str, np.ndarray]:
    """Return the exact curves of plain gradient descent with per-step factors ``factors``.

    Mode k of A moves by the factor (1 − rate (λ_k + ρ) step_tau η_j) at step j, so after
    s steps F_k = 1 − Π_{j<s} (1 − rate (λ_k + ρ) step_tau η_j); gradient flow replaces the
    product by exp(−rate (λ_k + ρ) step_tau Σ_j η_j). Negative factors (a rate past the
    stability edge, 2 / (rate λ_k step_tau)) are handled through their sign.
    """
    record_steps = np.asarray(record_steps, dtype=int)
    kappa = cf.eigenvalues + cf.ridge
    out = np.empty((record_steps.size, kappa.size))
    log_abs = np.zeros(kappa.size)
    sign = np.ones(kappa.size)
    previous = 0
    for row, step in enumerate(record_steps):
        for start in range(previous, step, 256):
            block = factors[start:min(step, start + 256)]
            multipliers = 1.0 - cf.rate * step_tau * np.outer(block, kappa)
            log_abs += np.log(np.abs(multipliers)).sum(axis=0)
            sign *= np.prod(np.sign(multipliers), axis=0)
        previous = step
        out[row] = 1.0 - sign * np.exp(log_abs)
    return cf.curves_from_gains(out / kappa)


def fit_power_law(sizes, taus) -> tuple[float, float]:
    """Fit tau = c · size^α by least squares in log–log; return (c, α).

    Points with an infinite or non-positive τ are left out; a single point gives α = 1.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    keep = np.isfinite(taus) & (taus > 0)
    require(keep.any(), "cannot fit tau_mem = c · n^alpha: no size memorizes at any time")
    if keep.sum() == 1:
        return float(taus[keep][0] / sizes[keep][0]), 1.0
    alpha, log_c = np.polyfit(np.log(sizes[keep]), np.log(taus[keep]), 1)
    return float(math.exp(log_c)), float(alpha)



def jax_curves_fn(cf: ClosedForm):
    """Return a JAX function τ ↦ (score error, rel_gap) of ``cf``, differentiable in τ.

    The same formulas as ``ClosedForm.curves`` for gradient flow, in float64; JAX is
    imported here so that this module loads without it.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    lam = jnp.asarray(cf.eigenvalues)
    kappa = lam + cf.ridge
    v_weight, cross = jnp.asarray(cf.v_weight), jnp.asarray(cf.cross)
    quadratic = jnp.asarray(cf.test_quadratic)
    rate, d, delta, offset = cf.rate, cf.d, cf.Delta_t, cf.score_offset

    def curves(tau):
        g = -jnp.expm1(-rate * kappa * tau) / kappa
        train = 1.0 + jnp.dot(g**2 * lam - 2.0 * g, v_weight) / d
        test = 1.0 + (g @ quadratic @ g) / d - 2.0 * jnp.dot(g, cross) / d
        return (test - 1.0) / delta + offset, (test - train) / test

    return curves
