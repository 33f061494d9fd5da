"""Compare schedules on the random-features model: window metrics and n_mem(S), exactly.

For each ψ_n one instance is drawn and its closed form built once. Every schedule then runs
under the step budget S in closed loop against the exact gradient-flow curves (see
``genwindow.rfm.scheduled``). The size-aware controller needs tau_mem(ψ_n) = c ψ_n^α: from
a calibration file when one is given, otherwise fitted to the tau_mem of the instances of
this very comparison (an oracle fit, marked as such in the output).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from genwindow.errors import require
from genwindow.schedules.registry import make_schedule, parse_spec

DEFAULT_SCHEDULES = ("constant", "cosine", "gap-threshold", "size-aware")


@dataclass(frozen=True)
class CompareConfig:
    """One comparison: the RF problem, the budget, the schedules and the criteria."""

    psi_p: float = 64.0
    psi_n: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)
    t: float = 0.1
    d: int = 100
    seed: int = 0
    budget: int = 400                # step budget S
    step_tau: float = 0.25           # τ advanced by one step at the base rate (lr / d²)
    schedules: tuple[str, ...] = DEFAULT_SCHEDULES
    eval_every: int = 5              # steps between monitor evaluations
    monitor_noise: str = "gaussian"  # 'gaussian' or 'none'
    held_out: int = 1000             # held-out samples behind the monitored test loss
    gen_tolerance: float = 0.05
    mem_threshold: float = 0.05      # on rel_gap = (test − train) / test
    ridge: float = 0.0
    calibration: str | None = None   # size-aware calibration file (JSON)
    curve_points: int = 300
    noise_seeds: int = 1             # monitor-noise draws per closed-loop controller run

    def __post_init__(self):
        require(self.budget >= 1, f"--budget: need at least 1 step, got {self.budget}")
        require(self.step_tau > 0, f"--step-tau: must be positive, got {self.step_tau}")
        require(len(self.schedules) >= 1, "--schedules: name at least one schedule")
        require(self.noise_seeds >= 1, f"--noise-seeds: need at least 1, got "
                                       f"{self.noise_seeds}")
        require(len(set(self.schedules)) == len(self.schedules),
                f"--schedules: each schedule once, got {list(self.schedules)}")


@dataclass
class Problem:
    """One ψ_n: the instance's closed form and gradient-flow timescales."""

    psi_n: float
    n: int
    cf: object
    scales: object


@dataclass
class CompareResult:
    """Window metrics per (schedule, ψ_n), n_mem(S) per schedule, curves and monitor log."""

    config: CompareConfig
    windows: pd.DataFrame
    n_mem: pd.DataFrame
    curves: pd.DataFrame
    monitor: pd.DataFrame
    size_aware_fit: dict = field(default_factory=dict)


def build_problems(config: CompareConfig, progress: bool = False) -> list[Problem]:
    """Draw one instance per ψ_n and build its closed form and timescales."""
    from genwindow.rfm.closed_form import ClosedForm
    from genwindow.rfm.instance import sample_instance
    from genwindow.rfm.scheduled import WindowCriteria, timescales

    criteria = WindowCriteria(config.gen_tolerance, "rel_gap", config.mem_threshold)
    problems = []
    for psi_n in config.psi_n:
        inst = sample_instance(d=config.d, psi_p=config.psi_p, psi_n=psi_n, t=config.t,
                               seed=config.seed)
        cf = ClosedForm.from_instance(inst, ridge=config.ridge)
        problems.append(Problem(psi_n, inst.n, cf, timescales(cf, criteria)))
        if progress:
            s = problems[-1].scales
            print(f"psi_n={psi_n:g}: n={inst.n} tau_gen={s.tau_gen:.4g} "
                  f"tau_mem={s.tau_mem:.4g} min score error {s.score_error_min:.4g}",
                  flush=True)
    return problems


def resolve_spec(spec: str, config: CompareConfig, fit: dict) -> str:
    """Complete a bare size-aware spec with the calibration file or the oracle fit."""
    name, params = parse_spec(spec)
    if name != "size-aware" or "c" in params or "calibration" in params:
        return spec
    sep = "," if params else ":"
    if config.calibration:
        return f"{spec}{sep}calibration={config.calibration}"
    return (f"{spec}{sep}c={fit['c']:.6g},alpha={fit['alpha']:.6g},unit=tau,"
            f"variable=psi_n")


def _average_draws(draws: list[dict]) -> dict:
    """Average window metrics over monitor-noise draws.

    ``memorized`` is true if any draw memorized, ``ends_in_window`` only if every draw does.
    step_mem is averaged over the draws that memorized; ``memorized_draws`` counts them and
    ``steps_in_window_sd`` is the spread of the window length over the draws.
    """
    frame = pd.DataFrame(draws)
    averaged = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == bool:
            averaged[column] = bool(values.any() if column == "memorized" else values.all())
        else:
            averaged[column] = float(np.nanmean(values)) if values.notna().any() else math.nan
    averaged["memorized_draws"] = int(frame.memorized.sum())
    averaged["noise_draws"] = len(draws)
    averaged["steps_in_window_sd"] = float(frame.steps_in_window.std(ddof=0))
    averaged["stop_step_sd"] = float(frame.stop_step.std(ddof=0))
    return averaged


def interpolate_n_mem(psi_n: np.ndarray, tau_end: np.ndarray, tau_mem: np.ndarray) -> float:
    """Return the ψ_n at which τ_end / τ_mem crosses 1, interpolated in log–log.

    NaN when every ψ_n memorizes (n_mem is beyond the grid); 0 when none does.
    """
    with np.errstate(divide="ignore"):
        margin = np.log(tau_end) - np.log(tau_mem)
    memorizes = margin >= 0
    if memorizes.all():
        return math.nan
    if not memorizes.any():
        return 0.0
    i = int(np.nonzero(memorizes)[0].max())
    if i + 1 >= psi_n.size or not np.isfinite(margin[i + 1]):
        return float(psi_n[i])
    frac = margin[i] / (margin[i] - margin[i + 1])
    return float(math.exp(math.log(psi_n[i]) + frac * math.log(psi_n[i + 1] / psi_n[i])))


def compare(config: CompareConfig, problems: list[Problem] | None = None,
            progress: bool = False) -> CompareResult:
    """Run every schedule of ``config`` on every ψ_n; return the window metrics and curves."""
    from genwindow.rfm.scheduled import (MonitorNoise, curve_frame, fit_power_law,
                                         run_schedule, window_metrics)

    if problems is None:
        problems = build_problems(config, progress)
    psi = np.array([p.psi_n for p in problems])
    c, alpha = fit_power_law(psi, [p.scales.tau_mem for p in problems])
    fit = {"c": c, "alpha": alpha, "unit": "tau", "variable": "psi_n",
           "source": config.calibration or "oracle fit to the tau_mem of this comparison"}
    noise = MonitorNoise(config.monitor_noise, config.held_out)

    rows, curves, monitor = [], [], []
    for index, spec in enumerate(config.schedules):
        resolved = resolve_spec(spec, config, fit)
        for position, problem in enumerate(problems):
            draws = []
            for draw in range(config.noise_seeds):
                schedule = make_schedule(resolved, total_steps=config.budget, n=problem.n,
                                         psi_n=problem.psi_n, tau_per_step=config.step_tau)
                seed = (config.seed * 7919 + index) * 131 + position + 100_003 * draw
                runs = run_schedule(problem.cf, schedule, config.budget, config.step_tau,
                                    problem.n, config.eval_every, noise, seed=seed)
                draws.append((runs, window_metrics(runs, problem.scales, problem.cf)))
                # Without monitor noise, or for a schedule that ignores the monitor, every draw
                # gives the same run.
                if not getattr(schedule, "reads_metrics", True) or noise.kind == "none":
                    break
            run = draws[0][0]
            rows.append({"schedule": spec, "psi_n": problem.psi_n, "n": problem.n,
                         **_average_draws([metrics for _, metrics in draws]),
                         "spec": resolved})
            frame = curve_frame(problem.cf, run, config.curve_points)
            frame.insert(0, "psi_n", problem.psi_n)
            frame.insert(0, "schedule", spec)
            curves.append(frame)
            for record in run.monitor_log:
                monitor.append({"schedule": spec, "psi_n": problem.psi_n, **record})
        if progress:
            print(f"schedule {spec}: done", flush=True)

    windows = pd.DataFrame(rows)
    n_mem_rows = []
    for spec in config.schedules:
        part = windows[windows.schedule == spec].sort_values("psi_n")
        memorized = part[part.memorized]
        grid = float(memorized.psi_n.max()) if len(memorized) else 0.0
        n_mem_rows.append({
            "schedule": spec,
            "psi_n_mem_grid": grid,
            "n_mem_grid": int(round(grid * config.d)),
            "psi_n_mem_interp": interpolate_n_mem(part.psi_n.to_numpy(),
                                                  part.tau_end.to_numpy(),
                                                  part.tau_mem.to_numpy()),
            "mean_steps_in_window": float(part.steps_in_window.mean()),
            "mean_final_score_error": float(part.final_score_error.mean()),
            "memorized_count": int(part.memorized.sum()),
        })
    return CompareResult(config, windows, pd.DataFrame(n_mem_rows),
                         pd.concat(curves, ignore_index=True), pd.DataFrame(monitor), fit)


def write_compare(result: CompareResult, out) -> list:
    """Write windows.csv, n_mem.csv, curves.csv, config.json and the figures into ``out``."""
    from pathlib import Path

    from genwindow.io import write_csv, write_json

    out = Path(out)
    written = [write_csv(out / "windows.csv", result.windows),
               write_csv(out / "n_mem.csv", result.n_mem),
               write_csv(out / "curves.csv", result.curves),
               write_json(out / "config.json", {**asdict(result.config),
                                                "size_aware_fit": result.size_aware_fit})]
    if len(result.monitor):
        written.append(write_csv(out / "monitor.csv", result.monitor))
    written += plot_compare(result, out)
    return written


def plot_compare(result: CompareResult, out) -> list:
    """Draw score error and gap against step, curves against τ, and window length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from genwindow.io import save_figure

    config = result.config
    curves = result.curves
    written = []
    panels = sorted(curves.psi_n.unique())
    for column, label, name, level in (
            ("score_error", "score error", "score_error_vs_step.png", None),
            ("rel_gap", "(test − train) / test loss", "gap_vs_step.png",
             config.mem_threshold)):
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4),
                                 squeeze=False, sharey=True)
        for ax, psi_n in zip(axes[0], panels):
            part = curves[(curves.psi_n == psi_n) & (curves.step > 0)]
            sns.lineplot(data=part, x="step", y=column, hue="schedule", ax=ax,
                         legend=ax is axes[0][-1])
            ax.set(xscale="log", yscale="log", title=f"ψ_n = {psi_n:g}", xlabel="step",
                   ylabel=label)
            if level is not None:
                ax.axhline(level, color="grey", lw=0.8, ls="--")
        _legend_outside(axes[0][-1])
        save_figure(fig, out / name)
        written.append(out / name)

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False,
                             sharey=True)
    for ax, psi_n in zip(axes[0], panels):
        part = curves[(curves.psi_n == psi_n) & (curves.tau > 0)]
        sns.lineplot(data=part, x="tau", y="score_error", hue="schedule", ax=ax,
                     legend=ax is axes[0][-1], estimator=None, sort=True)
        ax.set(xscale="log", yscale="log", title=f"ψ_n = {psi_n:g}",
               xlabel="τ = step_tau · T(step)", ylabel="score error")
    _legend_outside(axes[0][-1])
    save_figure(fig, out / "score_error_vs_tau.png")
    written.append(out / "score_error_vs_tau.png")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    sns.lineplot(data=result.windows, x="psi_n", y="steps_in_window", hue="schedule",
                 marker="o", ax=ax)
    ax.set(xscale="log", xlabel="ψ_n = n / d", ylabel=f"steps in window (budget "
                                                      f"{config.budget})")
    _legend_outside(ax)
    save_figure(fig, out / "window_vs_psi_n.png")
    written.append(out / "window_vs_psi_n.png")
    return written


def _legend_outside(ax) -> None:
    if ax.get_legend() is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
