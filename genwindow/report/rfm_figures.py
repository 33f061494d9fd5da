"""Figures of the random-features runs: learning curves and their n-scaling."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402


def curves_figure(curves, summary: dict, training=None, title: str = ""):
    """Plot losses, score error and gap against τ, with the timescales marked."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    tau = curves["tau"].to_numpy()
    keep = tau > 0
    ax = axes[0]
    ax.plot(tau[keep], curves["train_loss"][keep], label="train loss (closed form)")
    ax.plot(tau[keep], curves["test_loss"][keep], label="test loss (closed form)")
    if training is not None:
        t_keep = training["tau"] > 0
        ax.plot(training["tau"][t_keep], training["train_loss"][t_keep], "o", ms=3,
                label="train loss (trained)")
        ax.plot(training["tau"][t_keep], training["test_loss"][t_keep], "s", ms=3,
                label="test loss (trained)")
    ax.set(xscale="log", xlabel="training time τ", ylabel="denoising loss")
    ax.legend(fontsize=8)

    ax = axes[1]
    ax.plot(tau[keep], curves["score_error"][keep], color="C2", label="score error")
    if training is not None:
        ax.plot(training["tau"][t_keep], training["score_error"][t_keep], "o", color="C2",
                ms=3, label="score error (trained)")
    ax.set(xscale="log", yscale="log", xlabel="training time τ", ylabel="score error")
    for key, style in (("tau_gen", "--"), ("tau_mem", ":")):
        if np.isfinite(summary.get(key, np.nan)):
            for a in axes:
                a.axvline(summary[key], color="gray", ls=style, lw=1)
    ax.text(0.02, 0.02, "dashed: tau_gen, dotted: tau_mem", transform=ax.transAxes,
            fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scaling_figure(curves_by_psi_n: dict, table, summary: dict, title: str = ""):
    """Plot gap and score error against τ for each ψ_n, and the gap against τ/tau_mem."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    palette = sns.color_palette("viridis", len(curves_by_psi_n))
    for color, (psi_n, curves) in zip(palette, sorted(curves_by_psi_n.items())):
        tau = curves["tau"].to_numpy()
        keep = tau > 0
        tau_mem = float(table.loc[table["psi_n"] == psi_n, "tau_mem"].median())
        label = f"ψ_n = {psi_n:g}"
        axes[0].plot(tau[keep], curves["score_error"][keep], color=color, label=label)
        axes[1].plot(tau[keep], curves["gen_gap"][keep], color=color, label=label)
        gap = curves["gen_gap"].to_numpy()[keep]
        axes[2].plot(tau[keep] / tau_mem, gap / gap[-1], color=color, label=label)
    axes[0].set(xscale="log", yscale="log", xlabel="τ", ylabel="score error")
    axes[1].set(xscale="log", xlabel="τ", ylabel="L_test − L_train")
    axes[2].set(xscale="log", xlabel="τ / tau_mem", ylabel="gap / gap at the last τ")
    fit = summary["tau_mem_exponent"]
    axes[1].set_title(f"tau_mem ∝ ψ_n^{fit['exponent']:.2f} "
                      f"[{fit['low']:.2f}, {fit['high']:.2f}]", fontsize=10)
    axes[2].set_title("rescaled by the measured tau_mem", fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
