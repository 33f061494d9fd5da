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
    for a in axes:
        a.text(0.02, 0.02, "dashed: tau_gen, dotted: tau_mem", transform=a.transAxes,
               fontsize=8)
    _label_log_axis(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _label_log_axis(ax) -> None:
    """Label the minor ticks of a log y axis, so that values below a decade can be read."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False,
                                                         minor_thresholds=(3, 1)))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def scaling_figure(curves_by_psi_n: dict, table, summary: dict, title: str = ""):
    """Plot the timescales against ψ_n with their fits, and seed 0's curves for each ψ_n."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))

    # Panel 1: every seed's tau_gen and tau_mem against ψ_n, with the fitted power laws.
    ax = axes[0]
    psi = np.array(sorted(table["psi_n"].unique()), dtype=float)
    for key, color, marker in (("tau_mem", "C3", "o"), ("tau_gen", "C0", "s"),
                               ("tau_mem_formula", "C7", "^")):
        ax.plot(table["psi_n"], table[key], marker, color=color, ms=5, alpha=0.8)
        fit = summary.get(f"{key}_exponent")
        if fit is not None and np.isfinite(fit["exponent"]):
            ax.plot(psi, fit["prefactor"] * psi ** fit["exponent"], "-", color=color,
                    label=f"{key} ∝ ψ_n^{fit['exponent']:.2f} "
                          f"[{fit['low']:.2f}, {fit['high']:.2f}]")
    ax.set(xscale="log", yscale="log", xlabel="ψ_n = n/d", ylabel="training time τ",
           title="timescales, all seeds, 95% intervals")
    ax.legend(fontsize=7)

    palette = sns.color_palette("viridis", len(curves_by_psi_n))
    for color, (psi_n, curves) in zip(palette, sorted(curves_by_psi_n.items())):
        tau = curves["tau"].to_numpy()
        keep = tau > 0
        tau_mem = float(table.loc[table["psi_n"] == psi_n, "tau_mem"].median())
        label = f"ψ_n = {psi_n:g}"
        gap = curves["gen_gap"].to_numpy()[keep]
        axes[1].plot(tau[keep], curves["score_error"][keep], color=color, label=label)
        axes[2].plot(tau[keep], gap, color=color, label=label)
        axes[3].plot(tau[keep] / tau_mem, gap / gap[-1], color=color, label=label)
    axes[1].set(xscale="log", yscale="log", xlabel="τ", ylabel="score error",
                title="seed 0")
    _label_log_axis(axes[1])
    axes[2].set(xscale="log", xlabel="τ", ylabel="L_test − L_train", title="seed 0")
    axes[3].set(xscale="log", xlabel="τ / tau_mem", ylabel="gap / gap at the last τ",
                title="seed 0, rescaled by the measured tau_mem")
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
