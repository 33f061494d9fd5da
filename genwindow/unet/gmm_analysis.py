"""Timescales and fits from the logs of Gaussian-mixture runs (``genwindow gmm sweep``).

tau_gen: the first evaluation step whose KL divergence is statistically indistinguishable
from the run's minimum (KL − 2 SE ≤ KL_min + 2 SE_min); the onset lies after the evaluation
before it. tau_mem: the step at which f_mem crosses a level (10% by default), interpolated
linearly in log step between evaluations; its interval runs from where the upper end of the
95% interval of f_mem crosses the level to where the lower end does. A run that never
reaches the level has tau_mem = NaN and a lower bound at its last step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


EXTRA_LEVELS = (0.01, 0.05, 0.1, 0.3)   # further f_mem levels reported beside the main one


def crossing_step(steps, values, level: float) -> float:
    """Return the step at which ``values`` first reaches ``level``, interpolated linearly in
    log step between the two evaluations around it; NaN when it never does."""
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    above = np.flatnonzero(values >= level)
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0 or steps[i - 1] <= 0:
        return float(steps[i])
    x0, x1 = math.log(steps[i - 1]), math.log(steps[i])
    fraction = (level - values[i - 1]) / (values[i] - values[i - 1])
    return float(math.exp(x0 + fraction * (x1 - x0)))


def tau_gen_kl(steps, kl, kl_se) -> tuple[float, float]:
    """Return (tau_gen, previous evaluation step) from a KL curve with standard errors."""
    steps, kl, kl_se = (np.asarray(a, dtype=np.float64) for a in (steps, kl, kl_se))
    keep = np.isfinite(kl)
    steps, kl, kl_se = steps[keep], kl[keep], kl_se[keep]
    if len(kl) == 0:
        return float("nan"), float("nan")
    best = int(np.argmin(kl))
    reached = np.flatnonzero(kl - 2 * kl_se <= kl[best] + 2 * kl_se[best])
    first = int(reached[0])
    return float(steps[first]), float(steps[first - 1]) if first > 0 else 0.0


def summarise_run(config: dict, frame, level: float | None = None) -> dict:
    """Return one row of timescales and end-of-budget values for one run's log."""
    level = config.get("fmem_level", 0.1) if level is None else level
    evals = frame.dropna(subset=["kl"]).sort_values("step")
    steps = evals["step"].to_numpy()
    tau_gen, tau_gen_prev = tau_gen_kl(steps, evals["kl"], evals["kl_se"])
    tau_mem = crossing_step(steps, evals["f_mem"], level)
    early = crossing_step(steps, evals["f_mem_high"], level)
    late = crossing_step(steps, evals["f_mem_low"], level)
    last = evals.iloc[-1]
    lr_time = np.interp(tau_mem, frame["step"], frame["lr_time"]) \
        if math.isfinite(tau_mem) else float("nan")
    window_end = min(tau_mem, last["step"]) if math.isfinite(tau_mem) else last["step"]
    return {
        "n": config["n"], "seed": config["seed"], "width": config["width"],
        "schedule": config["schedule"], "steps": int(last["step"]),
        "finished": bool(config.get("finished", True)),
        "budget": config["steps"],
        "tau_gen": tau_gen, "tau_gen_prev": tau_gen_prev,
        "kl_min": float(evals["kl"].min()),
        "tau_mem": tau_mem, "tau_mem_low": early, "tau_mem_high": late,
        "tau_mem_lr_time": float(lr_time),
        **{f"tau_mem_{round(100 * extra)}pct": crossing_step(steps, evals["f_mem"], extra)
           for extra in EXTRA_LEVELS},
        "steps_in_window": float(max(0.0, window_end - tau_gen)),
        "kl_end": float(last["kl"]), "kl_end_se": float(last["kl_se"]),
        "f_mem_end": float(last["f_mem"]),
        "score_error_min": float(frame["score_error"].min()),
        "score_error_end": float(frame["score_error"].iloc[-1]),
        "train_seconds": float(frame["train_seconds"].iloc[-1]),
        "monitor_seconds": float(frame["monitor_seconds"].iloc[-1]),
    }


def fit_exponent(x, y) -> dict:
    """Fit y = c · x^exponent on log-log axes over finite positive points.

    Returns the slope with its standard error and a 95% Student-t interval on points − 2
    degrees of freedom (NaN with fewer than three points). ``local`` maps each pair of
    consecutive x values to the slope between the means of log y at them, which shows
    whether the exponent drifts with x.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    points = int(keep.sum())
    nan = float("nan")
    if len(np.unique(x[keep])) < 2:
        return {"exponent": nan, "exponent_se": nan, "exponent_low": nan,
                "exponent_high": nan, "points": points}
    lx, ly = np.log(x[keep]), np.log(y[keep])
    slope, intercept = np.polyfit(lx, ly, 1)
    se = low = high = nan
    if points > 2:
        residual = ly - (slope * lx + intercept)
        se = float(np.sqrt(residual @ residual / (points - 2) / ((lx - lx.mean()) ** 2).sum()))
        half = float(stats.t.ppf(0.975, points - 2)) * se
        low, high = float(slope - half), float(slope + half)
    sizes = np.unique(x[keep])
    mean_log = [float(ly[x[keep] == size].mean()) for size in sizes]
    local = {f"{a:g}-{b:g}": float((mean_log[i + 1] - mean_log[i]) / math.log(b / a))
             for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
    return {"exponent": float(slope), "exponent_se": se, "exponent_low": low,
            "exponent_high": high, "prefactor": float(np.exp(intercept)), "points": points,
            "local": local}


def n_mem_at_budget(table, budget: float) -> "pd.DataFrame":
    """Return n_mem(S), the largest training-set size that memorizes within ``budget`` steps,
    for each (width, schedule) of a summary table.

    tau_mem grows with n, so n_mem(S) lies between the largest n whose median tau_mem over
    seeds is at most S and the next n run. When both of those n have a finite tau_mem,
    n_mem is interpolated linearly on log-log axes. A run that stopped before S without
    reaching the f_mem level gives no information at S and is left out. ``n_mem_low`` and
    ``n_mem_high`` bracket n_mem by the sizes run (NaN where no run bounds it).
    """
    import pandas as pd

    rows = []
    for (width, schedule), group in table.groupby(["width", "schedule"]):
        per_n = []
        for n, runs in group.groupby("n"):
            informative = runs[np.isfinite(runs["tau_mem"]) | (runs["steps"] >= budget)]
            if len(informative):
                # A run without a crossing memorizes after its last step, so after S.
                tau = informative["tau_mem"].fillna(np.inf)
                per_n.append((float(n), float(np.median(tau)), len(informative)))
        nan = float("nan")
        row = {"width": width, "schedule": schedule, "budget": budget, "n_mem": nan,
               "n_mem_low": nan, "n_mem_high": nan,
               "sizes": ",".join(f"{n:g}" for n, _, _ in per_n),
               "runs": sum(count for _, _, count in per_n)}
        tau_of = {n: tau for n, tau, _ in per_n}
        low = max((n for n, tau in tau_of.items() if tau <= budget), default=nan)
        # Comparisons with NaN are false, so with no low bound every later n qualifies.
        high = min((n for n, tau in tau_of.items() if tau > budget and not n < low),
                   default=nan)
        row["n_mem_low"], row["n_mem_high"] = low, high
        if math.isfinite(low) and math.isfinite(high) and math.isfinite(tau_of[high]):
            share = math.log(budget / tau_of[low]) / math.log(tau_of[high] / tau_of[low])
            row["n_mem"] = float(math.exp(math.log(low) + share * math.log(high / low)))
        rows.append(row)
    return pd.DataFrame(rows)


def load_runs(folder: str | Path):
    """Return [(config, frame)] for every run under ``folder`` that has measured KL.

    A run still in progress (or stopped from outside) has metrics.jsonl but no metrics.csv;
    it is read from the JSON lines and its config gets ``finished`` = False.
    """
    runs = []
    for config_path in sorted(Path(folder).glob("*/config.json")):
        run = load_run(config_path.parent)
        if run is not None and "kl" in run[1] and run[1]["kl"].notna().any():
            runs.append(run)
    return runs


def load_run(run: str | Path):
    """Return (config, frame) of one run folder, None when it has no metrics yet, or raise
    ConfigError naming the folder when its files are damaged."""
    import pandas as pd

    from genwindow.errors import ConfigError

    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text())
        missing = [key for key in ("n", "seed", "width", "schedule", "steps")
                   if key not in config]
        if missing:
            raise ValueError(f"config.json without {', '.join(missing)}")
        if (run / "metrics.csv").exists():
            frame = pd.read_csv(run / "metrics.csv")
            config["finished"] = True
        elif (run / "metrics.jsonl").exists():
            lines = (run / "metrics.jsonl").read_text().splitlines()
            frame = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
            config["finished"] = False
        else:
            return None
        missing = [key for key in ("step", "lr_time", "score_error") if key not in frame]
        if missing:
            raise ValueError(f"metrics without the columns {', '.join(missing)}")
        if frame.empty:
            raise ValueError("metrics without rows")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ConfigError(f"{run} is not a readable gmm run ({error}); delete it and rerun "
                          f"the `genwindow gmm sweep` or `gmm run` command that wrote it, or "
                          f"move it out of the folder") from error
    return config, frame


def write_summary(folder: str | Path) -> dict:
    """Write summary.csv, fits.json and figures for the runs under ``folder``."""
    import pandas as pd

    from genwindow.io import format_table, write_csv, write_json

    folder = Path(folder)
    runs = load_runs(folder)
    if not runs:
        print(f"no finished runs under {folder}")
        return {}
    table = pd.DataFrame([summarise_run(c, f) for c, f in runs])
    table = table.sort_values(["width", "schedule", "n", "seed"], ignore_index=True)
    write_csv(folder / "summary.csv", table)

    # Fits use finished runs only: an unfinished run's tau_gen and crossings can still move.
    finished = table[table["finished"]]
    fits = {}
    for (width, schedule), group in finished.groupby(["width", "schedule"]):
        fits[f"tau_mem~n W={width} {schedule}"] = fit_exponent(group["n"], group["tau_mem"])
        fits[f"tau_gen~n W={width} {schedule}"] = fit_exponent(group["n"], group["tau_gen"])
    for (n, schedule), group in finished.groupby(["n", "schedule"]):
        if group["width"].nunique() >= 2:
            fits[f"tau_mem~W n={n} {schedule}"] = fit_exponent(group["width"],
                                                               group["tau_mem"])
    write_json(folder / "fits.json", fits)
    _plot(runs, table, folder)
    columns = ["n", "seed", "width", "schedule", "steps", "finished", "tau_gen", "kl_min",
               "tau_mem", "tau_mem_low", "tau_mem_high", "kl_end", "f_mem_end"]
    print(format_table(table[columns]))
    for name, fit in fits.items():
        print(f"{name}: exponent {fit['exponent']:.3f} ± {fit['exponent_se']:.3f}, 95% "
              f"[{fit['exponent_low']:.3f}, {fit['exponent_high']:.3f}] "
              f"({fit['points']} points)")
    return fits


def _plot(runs, table, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from genwindow.io import save_figure

    sns.set_theme(style="whitegrid")
    # One colour per (n, W, schedule), shared by its seeds. Unfinished runs are faded.
    keys = sorted({(c["schedule"], c["width"], c["n"]) for c, _ in runs})
    palette = dict(zip(keys, sns.color_palette("husl", len(keys))))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    labelled = set()
    for config, frame in sorted(runs, key=lambda run: (run[0]["schedule"], run[0]["width"],
                                                       run[0]["n"], run[0]["seed"])):
        key = (config["schedule"], config["width"], config["n"])
        label = f"n={config['n']} W={config['width']} {config['schedule']}"
        style = {"color": palette[key], "alpha": 1.0 if config["finished"] else 0.4,
                 "label": None if key in labelled else label}
        labelled.add(key)
        evals = frame.dropna(subset=["kl"])
        evals = evals[evals["step"] > 0]
        axes[0].errorbar(evals["step"], evals["kl"], yerr=2 * evals["kl_se"], capsize=2,
                         marker=".", linewidth=1, **style)
        axes[1].plot(evals["step"], evals["f_mem"], marker=".", linewidth=1, **style)
        trained = frame["step"] > 0
        axes[2].plot(frame["step"][trained], frame["score_error"][trained], linewidth=1,
                     **style)
    axes[0].set(xscale="log", yscale="symlog", xlabel="step", ylabel="KL(P_gen ‖ P0) [nats]")
    axes[0].set_ylim(bottom=-1.0)   # the estimate dips below 0 only within its error
    axes[1].set(xscale="log", xlabel="step", ylabel="f_mem")
    axes[2].set(xscale="log", yscale="log", xlabel="step",
                ylabel="score error E‖ε_θ − ε*‖²/d")
    fig.legend(*axes[1].get_legend_handles_labels(), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=7,
               title="seeds share a colour, unfinished runs are faded")
    fig.tight_layout()
    save_figure(fig, folder / "curves.png")

    groups = list(table.groupby(["width", "schedule"]))
    colors = dict(zip([key for key, _ in groups], sns.color_palette(n_colors=len(groups))))
    by_width = table.groupby(["n", "schedule"]).filter(lambda g: g["width"].nunique() >= 2)
    fig, axes = plt.subplots(1, 2 if len(by_width) else 1, figsize=(11, 4.5), squeeze=False)
    ax = axes[0, 0]
    for (width, schedule), group in groups:
        color = colors[(width, schedule)]
        yerr = np.vstack([group["tau_mem"] - group["tau_mem_low"],
                          group["tau_mem_high"] - group["tau_mem"]])
        ax.errorbar(group["n"], group["tau_mem"], yerr=np.nan_to_num(yerr), marker="o",
                    linestyle="", capsize=3, color=color,
                    label=f"tau_mem W={width} {schedule}")
        ax.errorbar(group["n"], group["tau_gen"],
                    yerr=np.vstack([group["tau_gen"] - group["tau_gen_prev"],
                                    np.zeros(len(group))]),
                    marker="s", linestyle="", capsize=3, color=color, alpha=0.5,
                    label=f"tau_gen W={width} {schedule}")
        fit = fit_exponent(group["n"], group["tau_mem"])
        reached = group[np.isfinite(group["tau_mem"])]
        if math.isfinite(fit["exponent"]) and fit["points"] >= 3 and len(reached):
            sizes = np.geomspace(reached["n"].min(), reached["n"].max(), 20)
            ax.plot(sizes, fit["prefactor"] * sizes ** fit["exponent"], color=color,
                    linewidth=1, label=f"fit n^{fit['exponent']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="n", ylabel="step",
           title="tau_mem (f_mem crossing) and tau_gen (KL within errors of its minimum)")
    sizes = sorted(table["n"].unique())
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    _label_log_axis(ax.yaxis)
    ax.legend(fontsize=6)
    if len(by_width):
        ax = axes[0, 1]
        for (n, schedule), group in by_width.groupby(["n", "schedule"]):
            yerr = np.vstack([group["tau_mem"] - group["tau_mem_low"],
                              group["tau_mem_high"] - group["tau_mem"]])
            ax.errorbar(group["width"], group["tau_mem"], yerr=np.nan_to_num(yerr),
                        marker="o", linestyle="", capsize=3, label=f"n={n} {schedule}")
        widths = sorted(by_width["width"].unique())
        reference = by_width[by_width["width"] == widths[0]]["tau_mem"].median()
        ax.plot(widths, reference * widths[0] / np.asarray(widths, dtype=float), color="gray",
                linestyle="--", linewidth=1, label="∝ 1/W")
        ax.set(xscale="log", yscale="log", xlabel="width W", ylabel="tau_mem (step)",
               title="tau_mem against width")
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        _label_log_axis(ax.yaxis)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder / "timescales.png")


def _label_log_axis(axis) -> None:
    """Put labelled ticks at 1, 2 and 5 times each power of ten, so that a log axis that
    spans less than a decade still shows numbers."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(ticker.NullLocator())


def time_change_check(runs, references) -> "pd.DataFrame":
    """Compare each scheduled run at its end with a constant-rate run at the same training
    time T = Σ lr factors.

    ``references`` is a list of (config, frame) constant-rate runs. Each finished run is
    compared with the reference of equal n, seed and width, or, when there is one reference,
    with it wherever n and width agree. Both must share the base rate, optimizer and
    network; other runs are left out with a printed line.

    For gradient flow on a quadratic loss (the random-features model) a learning-rate
    schedule only reparametrises time, so the state after a schedule equals the constant-rate
    state at step T. Agreement here shows that this prediction carries over to the trained
    MLP with momentum SGD; a difference measures where it fails.
    """
    import pandas as pd

    def key(config):
        return config["n"], config["seed"], config["width"]

    def setup(config):
        # Σ lr factors compares runs only at equal base rate, optimizer and network.
        return tuple(config.get(name) for name in ("n", "width", "blocks", "d", "lr",
                                                   "optimizer", "momentum"))

    by_key = {key(config): (config, frame) for config, frame in references}
    rows = []
    for config, frame in runs:
        if not config.get("finished", True):
            continue
        ref_config, ref = by_key.get(key(config), (None, None))
        if ref is None and len(references) == 1:
            # One reference run serves every seed of its n and width.
            ref_config, ref = references[0]
        if ref is None or setup(ref_config) != setup(config):
            print(f"time change: no constant-rate reference with n = {config['n']}, W = "
                  f"{config['width']} and the same rate and optimizer; "
                  f"{config['schedule']} seed {config['seed']} left out")
            continue
        ref_evals = ref.dropna(subset=["kl"])
        ref_evals = ref_evals[ref_evals["step"] > 0]
        last = frame.iloc[-1]
        evals = frame.dropna(subset=["kl"])
        end = evals.iloc[-1]
        lr_time = float(last["lr_time"])
        inside = lr_time <= ref["step"].max()
        log_time = math.log(max(lr_time, 1.0))
        rows.append({
            "schedule": config["schedule"], "n": config["n"], "seed": config["seed"],
            "width": config["width"], "steps": int(last["step"]),
            "finished": bool(config.get("finished", True)),
            "lr_time_end": lr_time,
            "score_error_end": float(last["score_error"]),
            "score_error_const_at_T": float(np.interp(lr_time, ref["step"],
                                                      ref["score_error"]))
            if inside else float("nan"),
            "gen_gap_end": float(last["gen_gap"]),
            "gen_gap_const_at_T": float(np.interp(lr_time, ref["step"], ref["gen_gap"]))
            if inside else float("nan"),
            "f_mem_end": float(end["f_mem"]),
            "f_mem_const_at_T": float(np.interp(log_time, np.log(ref_evals["step"]),
                                                ref_evals["f_mem"])) if inside else float("nan"),
            "kl_end": float(end["kl"]), "kl_end_se": float(end["kl_se"]),
            "kl_const_at_T": float(np.interp(log_time, np.log(ref_evals["step"]),
                                             ref_evals["kl"])) if inside else float("nan"),
        })
    return pd.DataFrame(rows)
