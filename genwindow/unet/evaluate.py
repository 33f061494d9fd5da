"""Timescales and curves from the monitor logs of finished (or running) training runs.

tau_gen: the first monitored step at which the Fréchet distance in encoder features has made
``gen_fraction`` (default 90%) of its improvement from the first value to its minimum over
the run. tau_mem: the first step at which the lower end of the bootstrap 95% interval of
f_mem is above zero; the onset lies between the previous f_mem evaluation and that step.
tau_gap: the first step at which the relative loss gap (test − train) / test, averaged over
the probe times, exceeds ``gap_threshold``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genwindow.io import save_figure, write_csv, write_json
from genwindow.unet import metrics
from genwindow.unet.trainer import read_log, steps_array


def run_timescales(run_dir: Path, gap_threshold: float = 0.5,
                   gen_fraction: float = 0.9) -> tuple[dict, pd.DataFrame]:
    """Return (timescales, monitor curves) of one run folder."""
    import json

    records = read_log(run_dir, "monitor")
    config = json.loads((Path(run_dir) / "config.json").read_text())
    fd_steps, fd = steps_array(records, "fd")
    mem_steps, mem_low = steps_array(records, "f_mem_low")
    loss_steps, train_loss = steps_array(records, "train_loss")
    _, test_loss = steps_array(records, "test_loss")
    relative_gap = (test_loss - train_loss) / np.where(test_loss != 0, test_loss, np.nan)

    tau_mem, tau_mem_before = metrics.tau_mem(mem_steps, mem_low) if len(mem_steps) else \
        (float("nan"), float("nan"))
    timescales = {
        "run": str(run_dir), "n": config["n"], "seed": config["seed"], "data": config["data"],
        "tau_gen": metrics.tau_gen(fd_steps, fd, gen_fraction) if len(fd) else float("nan"),
        "tau_mem": tau_mem, "tau_mem_after": tau_mem_before,
        "tau_gap": metrics.first_crossing(loss_steps, relative_gap, gap_threshold)
        if len(loss_steps) else float("nan"),
        "last_step": max((r["step"] for r in records), default=0),
    }
    keys = ["f_mem", "f_mem_low", "f_mem_high", "train_loss", "test_loss", "gen_gap", "fd",
            "kid", "denoiser_ratio", "wen_magnitude"]
    rows = [{"step": r["step"], **{k: r.get(k) for k in keys}} for r in records]
    curves = pd.DataFrame(rows, columns=["step", *keys])
    curves.insert(0, "n", config["n"])
    curves.insert(1, "seed", config["seed"])
    return timescales, curves


def evaluate_runs(run_dirs: list[Path], out: Path, gap_threshold: float = 0.5,
                  gen_fraction: float = 0.9) -> pd.DataFrame:
    """Write timescales.csv, curves.csv, evaluation.json and curves.png for the runs; return
    the timescale table. With several n, also fit tau_mem ∝ n^exponent."""
    results = [run_timescales(Path(d), gap_threshold, gen_fraction) for d in run_dirs]
    table = pd.DataFrame([r[0] for r in results])
    curves = pd.concat([r[1] for r in results], ignore_index=True)
    fits = {"tau_mem": metrics.fit_power_law(table["n"], table["tau_mem"]),
            "tau_gap": metrics.fit_power_law(table["n"], table["tau_gap"])}
    out = Path(out)
    write_csv(out / "timescales.csv", table)
    write_csv(out / "curves.csv", curves)
    write_json(out / "evaluation.json", {"timescales": table.to_dict(orient="records"),
                                         "power_law_fits": fits,
                                         "gap_threshold": gap_threshold,
                                         "gen_fraction": gen_fraction})
    save_figure(_plot_curves(curves), out / "curves.png")
    return table


def _plot_curves(curves: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("f_mem", "f_mem (nearest/second-nearest < 1/3)"),
              ("gen_gap", "loss gap test − train"), ("fd", "Fréchet distance (encoder)"))
    for ax, (key, label) in zip(axes, panels):
        data = curves.dropna(subset=[key])
        data = data[data["step"] > 0]
        if len(data):
            sns.lineplot(data=data, x="step", y=key, hue="n", marker="o", ax=ax,
                         palette="viridis", errorbar=None)
        ax.set_xscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
    fig.tight_layout()
    return fig
