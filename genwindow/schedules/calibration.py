"""Choose schedule parameters for a stated objective.

Objective: the lowest mean log score error at the end of the step budget S, subject to no
memorization (τ_end ≤ tau_mem(ψ_n) / margin) at every ψ_n of a range.

- Size-aware controller (``calibrate_size_aware``): with a constant base rate its end time
  is τ_end = step_tau (T_on + δ (S − T_on)), T_on = min(κ c ψ^α / step_tau, S), which is
  differentiable in κ, so the objective is minimized over κ by gradient through the closed
  form (JAX), projected onto the exact feasible interval; δ (decay mode) is searched on a
  grid.
- Gap-threshold controller (``search_threshold``): its action depends on noisy monitor values
  crossing a level, so the objective is piecewise constant in the level. A grid search over
  the stop level, scored over several noise seeds, picks the best level that never memorizes.

The score functions are JAX callables τ ↦ score error; ``genwindow.rfm.scheduled`` builds them
from the RF closed form, and tests use analytic ones with a known optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genwindow.errors import require


@dataclass(frozen=True)
class SizeAwareCalibration:
    """The chosen size-aware parameters and how well they do."""

    kappa: float
    decay: float
    mode: str
    c: float
    alpha: float
    objective: float          # mean log score error at τ_end over the ψ_n range
    tau_end: tuple[float, ...]
    feasible: bool
    kappa_max: float          # supremum of feasible κ at the chosen δ
    iterations: int

    def params(self, step_tau: float | None = None) -> dict:
        """Return the controller parameters as a calibration file stores them.

        With ``step_tau`` the onset is stored in steps at the base rate (unit "steps",
        c / step_tau), which a trainer without a notion of τ can use; otherwise in τ.
        """
        if step_tau is None:
            return {"c": self.c, "alpha": self.alpha, "kappa": self.kappa,
                    "decay": self.decay, "mode": self.mode, "variable": "psi_n", "unit": "tau"}
        return {"c": self.c / step_tau, "alpha": self.alpha, "kappa": self.kappa,
                "decay": self.decay, "mode": self.mode, "variable": "psi_n", "unit": "steps"}


def end_time(kappa, decay, psi, c, alpha, budget, step_tau, xp=np):
    """Return τ_end of the size-aware controller over a constant base rate (any xp)."""
    onset_steps = kappa * c * psi**alpha / step_tau
    before = xp.minimum(onset_steps, budget)
    return step_tau * (before + decay * (budget - before))


def kappa_max(decay: float, psi, c, alpha, budget, step_tau, tau_limit) -> float:
    """Return the supremum of κ whose τ_end stays below ``tau_limit`` at every ψ.

    τ_end = step_tau (T_on (1 − δ) + δ S) grows with κ through T_on = min(κ c ψ^α /
    step_tau, S), so each ψ whose full budget passes its limit bounds κ by
    (limit / step_tau − δ S) / ((1 − δ) c ψ^α / step_tau). Returns inf when no ψ bounds κ,
    and 0 when δ alone passes a limit (no κ is feasible).
    """
    limit_steps = np.asarray(tau_limit, dtype=np.float64) / step_tau
    binding = budget > limit_steps
    if not binding.any():
        return math.inf
    if decay * budget >= limit_steps[binding].min() or decay >= 1.0:
        return 0.0
    bounds = (limit_steps[binding] - decay * budget) / (
        (1.0 - decay) * c * np.asarray(psi)[binding] ** alpha / step_tau)
    return float(bounds.min())


DECAY_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
"""Decay factors tried in decay mode; κ is optimized by gradient at each."""


def calibrate_size_aware(score_fns, psi, tau_mem, c: float, alpha: float, budget: int,
                         step_tau: float, mode: str = "stop", margin: float = 1.0,
                         kappa_init: float = 0.5, decays=DECAY_GRID, steps: int = 300,
                         learning_rate: float = 0.05,
                         kappa_min: float = 1e-3) -> SizeAwareCalibration:
    """Minimize the mean log score error at τ_end over κ (and δ in decay mode).

    ``score_fns[i]`` maps τ to the score error at ``psi[i]`` (a JAX-traceable function);
    ``tau_mem[i]`` is the time at which that ψ memorizes (inf if never). For each decay
    factor δ (only δ = 0 in stop mode, ``decays`` in decay mode) Adam on log κ runs for
    ``steps`` iterations with the gradient from JAX, projected after each onto
    [kappa_min, κ_max(δ)), the exact feasible interval; the best (κ, δ) wins. The outer
    search over δ is a grid because the feasible κ interval shrinks with δ, which a joint
    gradient step does not see.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    require(mode in ("stop", "decay"), f"--mode: 'stop' or 'decay', got {mode!r}")
    psi = np.asarray(psi, dtype=np.float64)
    tau_limit = np.asarray(tau_mem, dtype=np.float64) / margin
    psi_j = jnp.asarray(psi)

    def objective(log_kappa, decay):
        tau_end = end_time(jnp.exp(log_kappa), decay, psi_j, c, alpha, budget, step_tau, jnp)
        return jnp.mean(jnp.stack([jnp.log(fn(tau_end[i])) for i, fn in enumerate(score_fns)]))

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    best = None
    for decay in ((0.0,) if mode == "stop" else tuple(decays)):
        upper_kappa = kappa_max(decay, psi, c, alpha, budget, step_tau, tau_limit)
        if upper_kappa <= kappa_min:
            continue
        # A run that ends exactly at tau_mem counts as memorizing, so stay a hair inside.
        upper = math.log(upper_kappa) + math.log1p(-1e-6) if math.isfinite(upper_kappa) \
            else math.inf
        lower = math.log(kappa_min)
        theta = min(max(math.log(kappa_init), lower), upper)
        m = v = 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-12
        for it in range(1, steps + 1):
            value, grad = value_and_grad(theta, decay)
            grad = float(grad)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad**2
            theta -= learning_rate * (m / (1 - beta1**it)) / (math.sqrt(v / (1 - beta2**it))
                                                              + eps)
            theta = min(max(theta, lower), upper)
        value = float(value_and_grad(theta, decay)[0])
        if best is None or value < best[0]:
            best = (value, math.exp(theta), decay, upper_kappa)
    require(best is not None, "calibration: no κ keeps every ψ_n below tau_mem within the "
                              "budget; lower --budget or --margin, or use --mode stop")
    value, kappa, decay, upper_kappa = best
    tau_end = end_time(kappa, decay, psi, c, alpha, budget, step_tau)
    feasible = bool(np.all(tau_end < tau_limit))
    return SizeAwareCalibration(kappa, decay, mode, c, alpha, value,
                                tuple(map(float, tau_end)), feasible, upper_kappa, steps)


def search_threshold(evaluate, levels, seeds=(0, 1, 2)) -> tuple[float, list[dict]]:
    """Return the level with the lowest mean objective among those that never memorize.

    ``evaluate(level, seed)`` returns (objective, memorized_count) for one closed-loop run of
    every ψ_n. A level counts as feasible only if no seed memorizes; ties go to the lower
    level. Returns NaN as the level when none is feasible, and the table of all evaluations.
    """
    table = []
    for level in levels:
        results = [evaluate(float(level), seed) for seed in seeds]
        table.append({"level": float(level),
                      "objective": float(np.mean([r[0] for r in results])),
                      "memorized_runs": int(sum(r[1] for r in results))})
    feasible = [row for row in table if row["memorized_runs"] == 0]
    if not feasible:
        return math.nan, table
    best = min(feasible, key=lambda row: (row["objective"], row["level"]))
    return best["level"], table


def calibrate_rf(args, progress: bool = False) -> dict:
    """Calibrate the size-aware and gap-threshold controllers on the RF model; write files.

    Writes calibration.json (readable by ``size-aware:calibration=PATH``), the comparison
    table calibration_table.csv, threshold_search.csv, and calibration.png into args.out.
    """
    from genwindow.io import write_csv, write_json
    from genwindow.rfm.scheduled import (MonitorNoise, fit_power_law, jax_curves_fn,
                                         run_schedule, window_metrics)
    from genwindow.schedules.registry import make_schedule
    from genwindow.schedules.rf_compare import CompareConfig, build_problems, compare

    config = CompareConfig(psi_p=args.psi_p, psi_n=tuple(sorted(args.psi_n)), t=args.t,
                           d=args.d, seed=args.seed, budget=args.budget,
                           step_tau=args.step_tau, eval_every=args.eval_every,
                           held_out=args.held_out, gen_tolerance=args.gen_tolerance,
                           mem_threshold=args.mem_threshold, ridge=args.ridge)
    problems = build_problems(config, progress)
    psi = np.array([p.psi_n for p in problems])
    tau_mem = np.array([p.scales.tau_mem for p in problems])
    c, alpha = fit_power_law(psi, tau_mem)
    score_fns = [_first_output(jax_curves_fn(p.cf)) for p in problems]
    size_aware = calibrate_size_aware(score_fns, psi, tau_mem, c, alpha, config.budget,
                                      config.step_tau, mode=args.mode, margin=args.margin)
    if progress:
        print(f"size-aware: kappa={size_aware.kappa:.4g} decay={size_aware.decay:.3g} "
              f"objective={size_aware.objective:.4g} feasible={size_aware.feasible}",
              flush=True)

    noise = MonitorNoise("gaussian", config.held_out)

    def evaluate(level: float, seed: int):
        logs, memorized = [], 0
        for position, problem in enumerate(problems):
            schedule = make_schedule(f"gap-threshold:decay_level={level / 2:.6g},"
                                     f"stop_level={level:.6g},patience=2,decay=0.1")
            run = run_schedule(problem.cf, schedule, config.budget, config.step_tau,
                               problem.n, config.eval_every, noise,
                               seed=1000 * seed + position)
            metrics = window_metrics(run, problem.scales, problem.cf)
            logs.append(math.log(metrics["final_score_error"]))
            memorized += int(run.tau_end > problem.scales.tau_mem / args.margin)
        return float(np.mean(logs)), memorized

    levels = np.geomspace(config.mem_threshold / 20, config.mem_threshold, 13)
    level, search = search_threshold(evaluate, levels)
    if progress:
        print(f"gap-threshold: stop_level={level:.4g}", flush=True)

    oracle = [_oracle_best(p, config, args.margin) for p in problems]
    specs = ["constant", "cosine",
             "size-aware:" + ",".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in size_aware.params().items())]
    if math.isfinite(level):
        specs.append(f"gap-threshold:decay_level={level / 2:.6g},stop_level={level:.6g},"
                     f"patience=2,decay=0.1")
    table_config = CompareConfig(**{**config.__dict__, "schedules": tuple(specs)})
    table = compare(table_config, problems)
    oracle_rows = [{"schedule": "oracle per ψ_n", "psi_n": p.psi_n, "n": p.n,
                    "final_score_error": best[1], "tau_end": best[0], "memorized": False}
                   for p, best in zip(problems, oracle)]
    windows = pd.concat([table.windows, pd.DataFrame(oracle_rows)], ignore_index=True)

    record = {
        "schedule": "size-aware",
        "params": size_aware.params(config.step_tau if args.unit == "steps" else None),
        "objective": "minimize mean log score error at the end of the budget subject to "
                     "tau_end <= tau_mem / margin at every psi_n",
        "objective_value": size_aware.objective,
        "feasible": size_aware.feasible,
        "kappa_max": size_aware.kappa_max,
        "tau_end": size_aware.tau_end,
        "tau_mem_fit": {"c": c, "alpha": alpha, "psi_n": psi.tolist(),
                        "tau_mem": tau_mem.tolist()},
        "gap_threshold": {"stop_level": level, "decay_level": level / 2, "patience": 2,
                          "decay": 0.1, "metric": "rel_gap"},
        "problem": {**config.__dict__, "psi_n": list(config.psi_n), "margin": args.margin,
                    "schedules": None},
        "note": "unit tau: the controller needs tau_per_step (τ per step at the base rate) "
                "from the run; unit steps: onset in steps at the base rate, for any trainer",
    }
    write_json(args.out / "calibration.json", record)
    write_csv(args.out / "calibration_table.csv", windows)
    write_csv(args.out / "threshold_search.csv", pd.DataFrame(search))
    _plot_calibration(windows, args.out / "calibration.png")
    return record


def _first_output(fn):
    return lambda tau: fn(tau)[0]


def _oracle_best(problem, config, margin: float) -> tuple[float, float]:
    """Return (τ, score error) of the best end time that this ψ_n can have within budget."""
    from scipy.optimize import minimize_scalar

    upper = min(config.budget * config.step_tau, problem.scales.tau_mem / margin)
    if problem.scales.tau_min <= upper:
        tau = problem.scales.tau_min
    else:
        tau = upper
    score = float(problem.cf.curves([tau])["score_error"][0])
    refined = minimize_scalar(lambda x: float(problem.cf.curves([x])["score_error"][0]),
                              bounds=(0.0, upper), method="bounded")
    if refined.fun < score:
        tau, score = float(refined.x), float(refined.fun)
    return float(tau), score


def _plot_calibration(windows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from genwindow.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.8))
    labelled = windows.copy()
    labelled["schedule"] = labelled["schedule"].str.slice(0, 40)
    sns.lineplot(data=labelled, x="psi_n", y="final_score_error", hue="schedule", marker="o",
                 ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="ψ_n = n / d",
           ylabel="score error at end of budget")
    ax.legend(fontsize=7)
    save_figure(fig, path)
