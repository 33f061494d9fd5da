"""Real training of the RF model, to measure where a schedule is more than a change of time.

Each run trains A with ``genwindow.rfm.training.train_rf`` (fresh noise every step, full or
mini-batches) up to the same training time τ_end under several schedules and base rates, and
compares the recorded curves with two exact predictions at the same τ:

- gradient flow at τ(step) (the change-of-time prediction, ``ClosedForm.curves``);
- plain gradient descent with the same per-step factors (``discrete_gd_curves``), which
  differs from gradient flow only by the finite step.

So departure = (SGD − flow) splits into a finite-step part (GD − flow) and a noise part
(SGD − GD). Training uses the Gaussian-equivalent features by default, whose noise-averaged
loss is exactly the closed form's, so no Gaussian-equivalence error enters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from genwindow.errors import require
from genwindow.schedules.registry import make_schedule

SCHEDULE_FAMILIES = {
    "constant": lambda steps: "constant",
    "cosine": lambda steps: "cosine:min_factor=0.05",
    "step": lambda steps: f"step:step_size={max(steps // 3, 1)},gamma=0.3",
    "inverse-time": lambda steps: f"inverse-time:s0={max(steps / 20, 1.0):.6g}",
}
"""Schedules whose parameters scale with the run length, by name."""


@dataclass(frozen=True)
class DeparturesConfig:
    """Real-training runs that test the change-of-time prediction."""

    d: int = 20
    psi_p: float = 4.0
    psi_n: float = 2.0
    t: float = 0.1
    seed: int = 0
    tau_end: float = 60.0
    lr_fractions: tuple[float, ...] = (0.02, 0.2, 0.8)   # of the largest stable GD rate
    batch_fractions: tuple[float, ...] = (1.0, 0.25)     # of n
    schedules: tuple[str, ...] = ("constant", "cosine", "step")
    seeds: int = 3
    features: str = "gaussian-equivalent"
    mem_threshold: float = 0.05
    points: int = 40

    def __post_init__(self):
        unknown = [s for s in self.schedules if s not in SCHEDULE_FAMILIES]
        require(not unknown, f"--schedules: unknown {unknown}; choose from "
                             f"{list(SCHEDULE_FAMILIES)}")
        require(all(0 < f < 1 for f in self.lr_fractions),
                f"--lr-fractions must lie in (0, 1) (1 is the stability edge), got "
                f"{list(self.lr_fractions)}")
        require(all(0 < f <= 1 for f in self.batch_fractions),
                f"--batch-fractions must lie in (0, 1], got {list(self.batch_fractions)}")


def steps_for_tau(family: str, tau_end: float, step_tau: float) -> int:
    """Return the fewest steps after which the schedule's τ = step_tau T(steps) ≥ tau_end."""
    target = tau_end / step_tau

    def reached(steps: int) -> bool:
        shape = make_schedule(SCHEDULE_FAMILIES[family](steps), total_steps=steps)
        return shape.cumulative(steps) >= target

    lo, hi = 1, max(int(math.ceil(target)), 1)
    while not reached(hi):
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reached(mid) else (mid + 1, hi)
    return lo


def crossing_tau(tau: np.ndarray, values: np.ndarray, level: float) -> float:
    """Return the first τ where ``values`` reaches ``level``, linear between records."""
    above = np.nonzero(values >= level)[0]
    if above.size == 0:
        return math.inf
    k = int(above[0])
    if k == 0:
        return float(tau[0])
    frac = (level - values[k - 1]) / (values[k] - values[k - 1])
    return float(tau[k - 1] + frac * (tau[k] - tau[k - 1]))


def run_departures(config: DeparturesConfig, progress: bool = False):
    """Train every (schedule, rate, batch, seed); return (per-record frame, summary frame)."""
    from genwindow.rfm.closed_form import ClosedForm
    from genwindow.rfm.instance import sample_instance
    from genwindow.rfm.matrices import build_matrices
    from genwindow.rfm.scheduled import discrete_gd_curves
    from genwindow.rfm.training import max_stable_lr, train_rf

    inst = sample_instance(d=config.d, psi_p=config.psi_p, psi_n=config.psi_n, t=config.t,
                           seed=config.seed)
    matrices = build_matrices(inst, config.features)
    cf = ClosedForm.from_matrices(matrices)
    lr_max = max_stable_lr(matrices)

    records = []
    for lr_fraction in config.lr_fractions:
        lr = lr_fraction * lr_max
        step_tau = lr / config.d**2
        for family in config.schedules:
            steps = steps_for_tau(family, config.tau_end, step_tau)
            spec = SCHEDULE_FAMILIES[family](steps)
            shape = make_schedule(spec, total_steps=steps)
            grid = np.unique(np.concatenate([
                np.round(np.linspace(0, steps, config.points)),
                np.round(np.geomspace(1, steps, config.points))]).astype(int))
            factors = shape.factor(np.arange(steps))
            tau = step_tau * shape.cumulative(grid)
            flow = cf.curves(tau)
            gd = discrete_gd_curves(cf, factors, step_tau, grid)
            for batch_fraction in config.batch_fractions:
                batch = max(int(round(batch_fraction * inst.n)), 1)
                for seed in range(config.seeds):
                    frame = train_rf(inst, lr=lr, steps=steps, batch_size=batch,
                                     seed=1000 * seed + 17, record_steps=grid,
                                     schedule=make_schedule(spec, total_steps=steps),
                                     features=config.features, matrices=matrices)
                    records.append(pd.DataFrame({
                        "schedule": family, "lr_fraction": lr_fraction, "lr": lr,
                        "batch": batch, "batch_fraction": batch_fraction, "seed": seed,
                        "step": frame.step.to_numpy(), "tau": frame.tau.to_numpy(),
                        "score_error": frame.score_error.to_numpy(),
                        "rel_gap": (frame.gen_gap / frame.test_loss).to_numpy(),
                        "flow_score_error": flow["score_error"],
                        "gd_score_error": gd["score_error"],
                        "flow_rel_gap": flow["gen_gap"] / flow["test_loss"],
                        "gd_rel_gap": gd["gen_gap"] / gd["test_loss"]}))
                if progress:
                    print(f"lr {lr_fraction:g} × max, {family}, batch {batch}: {steps} steps",
                          flush=True)
    frame = pd.concat(records, ignore_index=True)
    return frame, summarize(frame, config)


def summarize(frame: pd.DataFrame, config: DeparturesConfig) -> pd.DataFrame:
    """Return one row per (schedule, rate, batch): end-of-run departures and τ_mem shift."""
    rows = []
    keys = ["schedule", "lr_fraction", "batch_fraction"]
    for key, part in frame.groupby(keys, sort=True):
        mean = part.groupby("step", sort=True).mean(numeric_only=True)
        last = mean.iloc[-1]
        spread = part[part.step == part.step.max()].score_error.std(ddof=1)
        flow_se = last.flow_score_error
        inner = mean[mean.tau > 0]
        rows.append({
            **dict(zip(keys, key)),
            "batch": int(part.batch.iloc[0]),
            "steps": int(part.step.max()),
            "tau_end": float(last.tau),
            "sgd_score_error": float(last.score_error),
            "sgd_score_error_std": float(spread),
            "gd_score_error": float(last.gd_score_error),
            "flow_score_error": float(flow_se),
            "departure_total": float((last.score_error - flow_se) / flow_se),
            "departure_finite_step": float((last.gd_score_error - flow_se) / flow_se),
            "departure_noise": float((last.score_error - last.gd_score_error)
                                     / last.gd_score_error),
            "max_departure_along_run": float(np.max(np.abs(
                inner.score_error - inner.flow_score_error) / inner.flow_score_error)),
            "sgd_rel_gap": float(last.rel_gap),
            "flow_rel_gap": float(last.flow_rel_gap),
            "tau_mem_sgd": crossing_tau(mean.tau.to_numpy(), mean.rel_gap.to_numpy(),
                                        config.mem_threshold),
            "tau_mem_flow": crossing_tau(mean.tau.to_numpy(), mean.flow_rel_gap.to_numpy(),
                                         config.mem_threshold),
        })
    return pd.DataFrame(rows)


def write_departures(frame: pd.DataFrame, summary: pd.DataFrame, config: DeparturesConfig,
                     out) -> None:
    """Write departures.csv, departures_summary.csv, config.json and two figures."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from genwindow.io import save_figure, write_csv, write_json

    out = Path(out)
    write_csv(out / "departures.csv", frame)
    write_csv(out / "departures_summary.csv", summary)
    write_json(out / "config.json", asdict(config))

    for column, name in (("score_error", "sgd_score_error_vs_tau.png"),
                         ("rel_gap", "sgd_gap_vs_tau.png")):
        full = frame[(frame.batch_fraction == frame.batch_fraction.max()) & (frame.tau > 0)]
        lrs = sorted(full.lr_fraction.unique())
        fig, axes = plt.subplots(1, len(lrs), figsize=(4 * len(lrs), 3.4), squeeze=False,
                                 sharey=True)
        for ax, lr_fraction in zip(axes[0], lrs):
            part = full[full.lr_fraction == lr_fraction]
            sns.lineplot(data=part, x="tau", y=column, hue="schedule", ax=ax,
                         errorbar="sd", legend=ax is axes[0][-1])
            flow = part[part.schedule == part.schedule.iloc[0]].groupby("tau").mean(
                numeric_only=True)
            ax.plot(flow.index, flow[f"flow_{column}"], color="black", lw=1, ls="--",
                    label="gradient flow")
            ax.set(xscale="log", yscale="log", xlabel="τ = Σ η / d²",
                   title=f"full batch, lr = {lr_fraction:g} × stable max")
        axes[0][0].set_ylabel(column.replace("_", " "))
        save_figure(fig, out / name)


@dataclass(frozen=True)
class BudgetSweepConfig:
    """Real training under one step budget at several base rates and dataset sizes."""

    d: int = 20
    psi_p: float = 4.0
    psi_n: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    t: float = 0.1
    seed: int = 0
    budget: int = 400
    lr_fractions: tuple[float, ...] = (0.05, 0.2, 0.8)
    batch_fractions: tuple[float, ...] = (1.0, 0.25)
    schedule: str = "constant"
    seeds: int = 3
    gen_tolerance: float = 0.05
    mem_threshold: float = 0.05
    points: int = 60

    def __post_init__(self):
        require(self.budget >= 1, f"--budget: need at least 1 step, got {self.budget}")
        require(all(0 < f < 1 for f in self.lr_fractions),
                f"--lr-fractions must lie in (0, 1) (1 is the stability edge), got "
                f"{list(self.lr_fractions)}")
        require(all(0 < f <= 1 for f in self.batch_fractions),
                f"--batch-fractions must lie in (0, 1], got {list(self.batch_fractions)}")


def _first_record(steps: np.ndarray, hits: np.ndarray) -> float:
    index = np.nonzero(hits)[0]
    return float(steps[index[0]]) if index.size else math.nan


def run_budget_sweep(config: BudgetSweepConfig, progress: bool = False) -> pd.DataFrame:
    """Return window metrics in steps for real training and for gradient flow, per setting.

    The base rate is a fraction of the largest stable rate of the largest ψ_n (one rate for
    all ψ_n, as in a real sweep over dataset sizes). Generalizing and memorizing use the
    gradient-flow criteria of ``WindowCriteria``, read on the seed-mean curves at the
    recorded steps, so steps are resolved to the record grid.
    """
    from genwindow.rfm.closed_form import ClosedForm
    from genwindow.rfm.instance import sample_instance
    from genwindow.rfm.matrices import build_matrices
    from genwindow.rfm.scheduled import WindowCriteria, timescales
    from genwindow.rfm.training import max_stable_lr, train_rf

    criteria = WindowCriteria(config.gen_tolerance, "rel_gap", config.mem_threshold)
    problems = []
    for psi_n in config.psi_n:
        inst = sample_instance(d=config.d, psi_p=config.psi_p, psi_n=psi_n, t=config.t,
                               seed=config.seed)
        matrices = build_matrices(inst, "gaussian-equivalent")
        cf = ClosedForm.from_matrices(matrices)
        problems.append((psi_n, inst, matrices, cf, timescales(cf, criteria)))
    lr_max = min(max_stable_lr(m) for _, _, m, _, _ in problems)

    grid = np.unique(np.concatenate([np.round(np.linspace(0, config.budget, config.points)),
                                     np.round(np.geomspace(1, config.budget, config.points))])
                     ).astype(int)
    rows = []
    for lr_fraction in config.lr_fractions:
        lr = lr_fraction * lr_max
        step_tau = lr / config.d**2
        shape = make_schedule(config.schedule, total_steps=config.budget)
        tau = step_tau * shape.cumulative(grid)
        for psi_n, inst, matrices, cf, scales in problems:
            gen_level = scales.score_error_min + config.gen_tolerance * (
                scales.score_error_start - scales.score_error_min)
            flow = cf.curves(tau)
            flow_gap = flow["gen_gap"] / flow["test_loss"]
            settings = [("gradient flow", None)] + [
                (f"SGD batch {b:g}·n", b) for b in config.batch_fractions]
            for method, batch_fraction in settings:
                if batch_fraction is None:
                    score, gap = flow["score_error"], flow_gap
                else:
                    batch = max(int(round(batch_fraction * inst.n)), 1)
                    runs = [train_rf(inst, lr=lr, steps=config.budget, batch_size=batch,
                                     seed=1000 * seed + 29, record_steps=grid,
                                     schedule=make_schedule(config.schedule,
                                                            total_steps=config.budget),
                                     features="gaussian-equivalent", matrices=matrices)
                            for seed in range(config.seeds)]
                    score = np.mean([r.score_error.to_numpy() for r in runs], axis=0)
                    gap = np.mean([(r.gen_gap / r.test_loss).to_numpy() for r in runs],
                                  axis=0)
                gap = np.nan_to_num(gap, nan=0.0)
                step_gen = _first_record(grid, score <= gen_level)
                step_mem = _first_record(grid, gap >= config.mem_threshold)
                start = config.budget if math.isnan(step_gen) else step_gen
                stop = config.budget if math.isnan(step_mem) else step_mem
                rows.append({"lr_fraction": lr_fraction, "method": method, "psi_n": psi_n,
                             "n": inst.n, "tau_budget": float(tau[-1]),
                             "step_gen": step_gen, "step_mem": step_mem,
                             "steps_in_window": max(stop - start, 0),
                             "memorized": not math.isnan(step_mem),
                             "final_score_error": float(score[-1]),
                             "final_rel_gap": float(gap[-1])})
            if progress:
                print(f"lr {lr_fraction:g} × max, psi_n {psi_n:g}: done", flush=True)
    return pd.DataFrame(rows)


def budget_sweep_n_mem(frame: pd.DataFrame) -> pd.DataFrame:
    """Return n_mem(S) (the largest ψ_n that memorizes) per rate and method."""
    rows = []
    for (lr_fraction, method), part in frame.groupby(["lr_fraction", "method"], sort=True):
        memorized = part[part.memorized]
        rows.append({"lr_fraction": lr_fraction, "method": method,
                     "psi_n_mem": float(memorized.psi_n.max()) if len(memorized) else 0.0,
                     "mean_steps_in_window": float(part.steps_in_window.mean()),
                     "mean_final_score_error": float(part.final_score_error.mean())})
    return pd.DataFrame(rows)
