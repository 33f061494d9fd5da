"""``genwindow theory ...``: closed-form quantities that need no sampling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genwindow.cli_options import positive_float


def register(subparsers) -> None:
    theory = subparsers.add_parser("theory", help="closed-form theory of the random-features model")
    commands = theory.add_subparsers(dest="theory_command", metavar="SUBCOMMAND", required=True)

    constants = commands.add_parser(
        "constants", help="Gaussian-equivalence constants at one diffusion time",
        description="Print the Gaussian-equivalence constants (Gauss–Hermite quadrature) as JSON.")
    constants.add_argument("--t", type=positive_float("--t"), required=True,
                           help="diffusion time t (> 0, the forward process's own unit)")
    constants.add_argument("--activation", default="tanh",
                           help="odd activation σ: tanh, erf, sin or arctan (default tanh)")
    constants.add_argument("--sigma-x", type=positive_float("--sigma-x"), default=1.0,
                           help="data standard deviation σ_x, so Tr Σ / d = σ_x² (default 1)")
    constants.add_argument("--out", type=Path, default=None,
                           help="folder to also write constants.json into (default: print only)")
    constants.set_defaults(func=run_constants)

    register_spectrum(commands)


def run_constants(args: argparse.Namespace) -> int:
    from genwindow.io import write_json
    from genwindow.theory.constants import ge_constants

    if args.out is not None:
        from genwindow.io import prepare_out_dir

        prepare_out_dir(args.out)
    values = ge_constants(args.t, args.sigma_x**2, args.activation).as_dict()
    values.pop("t")
    print(json.dumps(values, indent=2))
    if args.out is not None:
        write_json(args.out / "constants.json", {"t": args.t, "activation": args.activation,
                                                 "sigma_x": args.sigma_x, **values})
    return 0


def register_spectrum(commands) -> None:
    """Add ``theory spectrum`` and ``theory timescales`` to the theory sub-commands."""
    from genwindow.cli_options import float_list, positive_int

    spectrum = commands.add_parser(
        "spectrum", help="asymptotic eigenvalue density of U (Theorems 3.1 and 3.2)",
        description="Solve the equations of Bonnaire et al. (2025, arXiv:2505.17638, Theorem "
                    "3.1) for the spectral density of the Gaussian-equivalent U. Write "
                    "spectrum.csv (the density without the δ-peak), "
                    "spectrum_theorem_3_2.csv (the leading-order density of Theorem 3.2), "
                    "summary.json (δ-peak, bulks with edges and masses, Theorem 3.2 edges) "
                    "and spectrum.png, with the eigenvalues of one sampled U at size d "
                    "overlaid when --d is given.")
    _add_model_options(spectrum, float_list, psi_n_list=False)
    spectrum.add_argument("--d", type=positive_int("--d"), default=None,
                          help="also sample one Gaussian-equivalent U at this d (p = ψ_p d, "
                               "n = ψ_n d) and overlay its eigenvalues (default: none)")
    spectrum.add_argument("--seed", type=int, default=0,
                          help="seed of the sampled instance (default 0)")
    spectrum.add_argument("--points", type=positive_int("--points"), default=4000,
                          help="points of the log-spaced λ grid (default 4000)")
    spectrum.add_argument("--out", type=Path, required=True, help="output folder")
    spectrum.set_defaults(func=run_spectrum)

    timescales = commands.add_parser(
        "timescales", help="tau_gen and tau_mem from the spectrum of U",
        description="Print and write timescales.csv: tau_gen = (ψ_p/Δ_t) ⟨1/ℓ⟩ over the "
                    "population eigenvalues of the second bulk, tau_mem = ψ_p/(Δ_t λ_min) "
                    "with λ_min the left edge of the first bulk (Theorem 3.2), and their ratio; "
                    "with --exact also the values read off the exact spectrum.")
    _add_model_options(timescales, float_list, psi_n_list=True)
    timescales.add_argument("--exact", action="store_true",
                            help="add columns from the exact spectrum (about 1 s per row)")
    timescales.add_argument("--out", type=Path, default=Path("."),
                            help="folder to write timescales.csv into (default: the current "
                                 "folder)")
    timescales.set_defaults(func=run_timescales)


def _add_model_options(parser, float_list, psi_n_list: bool) -> None:
    parser.add_argument("--psi-p", type=positive_float("--psi-p"), required=True,
                        help="ψ_p = p/d, features per input dimension")
    if psi_n_list:
        parser.add_argument("--psi-n", type=float_list("--psi-n"), required=True,
                            help="ψ_n = n/d values, comma-separated (e.g. 1,2,4,8)")
        parser.add_argument("--t", type=float_list("--t"), required=True,
                            help="diffusion times t, comma-separated (e.g. 0.01,0.1)")
    else:
        parser.add_argument("--psi-n", type=positive_float("--psi-n"), required=True,
                            help="ψ_n = n/d, training points per input dimension")
        parser.add_argument("--t", type=positive_float("--t"), required=True,
                            help="diffusion time t (> 0)")
    parser.add_argument("--sigma-levels", type=float_list("--sigma-levels"), default=[1.0],
                        help="eigenvalues of the data covariance Σ, comma-separated "
                             "(default 1, i.e. Σ = I)")
    parser.add_argument("--sigma-weights", type=float_list("--sigma-weights"), default=None,
                        help="fraction of eigenvalues at each level, summing to 1 "
                             "(default: equal)")
    parser.add_argument("--activation", default="tanh",
                        help="odd activation σ: tanh, erf, sin or arctan (default tanh)")


def run_spectrum(args: argparse.Namespace) -> int:
    import pandas as pd

    from genwindow.io import write_csv, write_json
    from genwindow.theory.spectrum import spectrum_model
    from genwindow.theory.spectrum_summary import count_in_bulks, spectrum_summary

    model = spectrum_model(args.psi_p, args.psi_n, args.t, args.sigma_levels,
                           args.sigma_weights, args.activation)
    summary = spectrum_summary(model, points=args.points)
    eigenvalues = None
    if args.d is not None:
        from genwindow.rfm.instance import sample_instance
        from genwindow.rfm.matrices import ge_eigenvalues

        inst = sample_instance(args.d, args.psi_p, args.psi_n, args.t, seed=args.seed,
                               activation=args.activation, sigma_levels=model.sigma.levels,
                               sigma_weights=model.sigma.weights)
        eigenvalues = ge_eigenvalues(inst)
        counts = count_in_bulks(eigenvalues, summary["bulks"], summary["delta_peak_location"])
        summary["finite_size"] = {"d": inst.d, "p": inst.p, "n": inst.n, "seed": args.seed,
                                  "delta_count": counts["delta"], "bulks": counts["bulks"]}

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "spectrum.csv",
              pd.DataFrame({"lambda": summary["lambda"], "density": summary["density"]}))
    write_csv(args.out / "spectrum_theorem_3_2.csv",
              pd.DataFrame({"lambda": summary["lambda"],
                            "density": summary["theorem_3_2_density"]}))
    record = {key: value for key, value in summary.items()
              if key not in ("lambda", "density", "theorem_3_2_density")}
    write_json(args.out / "summary.json", record)
    _plot_spectrum(summary, eigenvalues, args.out / "spectrum.png")

    print(f"δ-peak: weight {record['delta_peak_weight']:.6g} at λ = "
          f"{record['delta_peak_location']:.6g}")
    for i, bulk in enumerate(record["bulks"]):
        line = (f"bulk {i} ({bulk['label']}): [{bulk['left']:.6g}, {bulk['right']:.6g}], "
                f"mass {bulk['mass']:.6g}")
        if eigenvalues is not None:
            found = record["finite_size"]["bulks"][i]
            line += (f"; d={args.d}: {found['count']} eigenvalues in "
                     f"[{found['left']:.6g}, {found['right']:.6g}]")
        print(line)
    print(f"written to {args.out}")
    return 0


def run_timescales(args: argparse.Namespace) -> int:
    from genwindow.io import format_table, write_csv
    from genwindow.theory.spectrum import SigmaSpectrum
    from genwindow.theory.timescales import timescale_table

    sigma = SigmaSpectrum.from_lists(args.sigma_levels, args.sigma_weights)
    table = timescale_table(args.psi_p, args.psi_n, args.t, sigma.levels, sigma.weights,
                            args.activation, exact=args.exact)
    print(format_table(table))
    path = write_csv(args.out / "timescales.csv", table)
    print(f"written to {path}")
    return 0


def _plot_spectrum(summary: dict, eigenvalues, path: Path) -> None:
    """Draw the density with one linear panel per group of bulks, so the λ axis is broken.

    The panels show the bulks below the first one, the first bulk and the second bulk, each
    with the histogram of the finite-size eigenvalues when they are given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    from genwindow.io import save_figure

    sns.set_theme(style="whitegrid")
    lam, rho = summary["lambda"], summary["density"]
    rho_32 = summary["theorem_3_2_density"]
    titles = {"below-first": "bulks between the δ-peak and the first bulk",
              "first": "first bulk", "other": "other bulks", "second": "second bulk"}
    panels = []
    for label, title in titles.items():
        group = [b for b in summary["bulks"] if b["label"] == label]
        if group:
            panels.append((title, group))
    delta = summary["delta_peak_location"]

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, group) in zip(axes[0], panels):
        left = min(b["left"] for b in group)
        right = max(b["right"] for b in group)
        theorem = summary["theorem_3_2"]
        if title == titles["first"]:
            left, right = min(left, theorem["rho1_left"]), max(right, theorem["rho1_right"])
        if title == titles["second"] and theorem["rho2_supports"]:
            left = min(left, *(s["left"] for s in theorem["rho2_supports"]))
            right = max(right, *(s["right"] for s in theorem["rho2_supports"]))
        show_delta = ax is axes[0][0] and summary["delta_peak_weight"] > 0
        if show_delta:
            left = min(left, delta)
        pad = 0.05 * (right - left)
        lo, hi = left - pad, right + pad
        if eigenvalues is not None:
            inside = eigenvalues[(eigenvalues >= lo) & (eigenvalues <= hi)]
            inside = inside[np.abs(inside - delta) > 1e-10 * max(1.0, delta)]
            counts, bins = np.histogram(inside, bins=50, range=(lo, hi))
            heights = counts / (eigenvalues.size * np.diff(bins))  # fraction of p per unit λ
            ax.stairs(heights, bins, fill=True, alpha=0.35, color="C0",
                      label=f"eigenvalues of U, d = {summary['finite_size']['d']}")
        window = (lam >= lo) & (lam <= hi)
        ax.plot(lam[window], rho[window], color="C1", lw=1.8, label="Theorem 3.1 (exact)")
        ax.plot(lam[window], rho_32[window], color="C2", lw=1.2, ls="--",
                label="Theorem 3.2 (leading order)")
        if show_delta:
            ax.axvline(delta, color="0.3", lw=1, ls=":",
                       label=f"δ-peak at s_t², weight {summary['delta_peak_weight']:.3f}")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("λ")
        ax.set_ylabel("ρ(λ)")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"Spectrum of U: ψ_p = {summary['psi_p']:g}, ψ_n = {summary['psi_n']:g}, "
                 f"t = {summary['t']:g}, Σ levels {summary['sigma_levels']}")
    fig.tight_layout()
    save_figure(fig, path)
