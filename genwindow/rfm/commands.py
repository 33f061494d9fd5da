"""``genwindow rfm curves | train | scaling``: the random-features model at finite size."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from genwindow.cli_options import (float_list, fraction, nonnegative_float, nonnegative_int,
                                   positive_float, positive_int)
from genwindow.theory.constants import ACTIVATIONS

SCALING_PSI_N = "4,8,16,32"


def add_problem_options(parser: argparse.ArgumentParser, psi_n_list: bool = False) -> None:
    parser.add_argument("--psi-p", type=positive_float("--psi-p"), default=64.0,
                        help="ψ_p = p/d, features per input dimension (default 64)")
    if psi_n_list:
        parser.add_argument("--psi-n", type=float_list("--psi-n"), default=SCALING_PSI_N,
                            help=f"ψ_n = n/d values, comma-separated (default {SCALING_PSI_N})")
    else:
        parser.add_argument("--psi-n", type=positive_float("--psi-n"), default=8.0,
                            help="ψ_n = n/d, training points per input dimension (default 8)")
    parser.add_argument("--t", type=positive_float("--t"), default=0.1,
                        help="diffusion time t at which the score is learned (default 0.1)")
    parser.add_argument("--d", type=positive_int("--d", minimum=2), default=100,
                        help="input dimension d (default 100); p and n follow from ψ_p, ψ_n")
    parser.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS),
                        help="odd activation σ of the features (default tanh)")
    parser.add_argument("--sigma-levels", type=float_list("--sigma-levels"), default=[1.0],
                        help="eigenvalues of the data covariance Σ, comma-separated "
                             "(default 1, i.e. Σ = I)")
    parser.add_argument("--sigma-weights", type=float_list("--sigma-weights"), default=None,
                        help="fraction of dimensions at each level, comma-separated, summing "
                             "to 1 (default: equal shares)")
    parser.add_argument("--features", default="gaussian-equivalent",
                        choices=["gaussian-equivalent", "true"],
                        help="U from the Gaussian equivalent, or from the true features "
                             "σ(Wx/√d) with Monte Carlo over the noise "
                             "(default gaussian-equivalent)")
    parser.add_argument("--noise-samples", type=positive_int("--noise-samples"), default=256,
                        help="noise draws per data point for --features true (default 256)")
    parser.add_argument("--ridge", type=nonnegative_float("--ridge"), default=0.0,
                        help="ridge ρ ≥ 0 added to U in the dynamics (default 0)")
    parser.add_argument("--points", type=positive_int("--points", minimum=50), default=400,
                        help="log-spaced τ values of the closed-form curves, at least 50 "
                             "(default 400)")
    parser.add_argument("--rise", type=positive_float("--rise"), default=0.1,
                        help="fraction above the minimum score error that marks "
                             "tau_mem_score (default 0.1)")


def config_from_args(args: argparse.Namespace, psi_n: float | None = None):
    from genwindow.rfm.experiments import RFConfig

    levels = tuple(args.sigma_levels)
    weights = (tuple(args.sigma_weights) if args.sigma_weights is not None
               else tuple([1.0 / len(levels)] * len(levels)))
    seed = args.seed if isinstance(args.seed, int) else 0
    return RFConfig(psi_p=args.psi_p, psi_n=args.psi_n if psi_n is None else psi_n,
                    t=args.t, d=args.d, seed=seed, activation=args.activation,
                    sigma_levels=levels, sigma_weights=weights, features=args.features,
                    ridge=args.ridge, noise_samples=args.noise_samples, points=args.points,
                    rise=args.rise)


def register(subparsers) -> None:
    rfm = subparsers.add_parser("rfm", help="random-features score model at finite size")
    commands = rfm.add_subparsers(dest="rfm_command", metavar="SUBCOMMAND", required=True)

    curves = commands.add_parser(
        "curves", help="closed-form learning curves, timescales and gap bands",
        description="Closed-form gradient-flow curves of one random-features problem.")
    add_problem_options(curves)
    curves.add_argument("--seed", type=nonnegative_int("--seed"), default=0,
                        help="seed of W, X, Ω (default 0)")
    curves.add_argument("--out", type=Path, default=Path("runs/rfm-curves"),
                        help="output folder (default runs/rfm-curves)")
    curves.set_defaults(func=run_curves)

    train = commands.add_parser(
        "train", help="real training of A with fresh noise, beside the closed form",
        description="Train A with fresh noise each step and compare with the closed form.")
    add_problem_options(train)
    train.set_defaults(d=20, psi_p=4.0, psi_n=2.0, features="true")
    train.add_argument("--seed", type=nonnegative_int("--seed"), default=0,
                       help="seed of W, X, Ω and of the training noise (default 0)")
    train.add_argument("--lr", type=positive_float("--lr"), default=None,
                       help="learning rate η on A in s_A = (A/√p) σ(Wx/√d); each step "
                            "advances τ by η/d² (default: --lr-fraction of the largest "
                            "stable gradient-descent rate)")
    train.add_argument("--lr-fraction", type=fraction("--lr-fraction"), default=0.1,
                       help="rate as a fraction, in (0, 1), of the largest stable "
                            "gradient-descent rate p d/(Δ_t λ_max) (default 0.1)")
    train.add_argument("--steps", type=positive_int("--steps"), default=2000,
                       help="optimizer steps (default 2000)")
    train.add_argument("--optimizer", default="gd", choices=["gd", "adam"],
                       help="gd (plain gradient descent) or adam (default gd)")
    train.add_argument("--batch-size", type=positive_int("--batch-size"), default=None,
                       help="data points per step (default: all n, full batch)")
    train.add_argument("--record", type=positive_int("--record"), default=60,
                       help="log-spaced steps at which losses are recorded (default 60)")
    train.add_argument("--schedule", default="constant",
                       help="learning-rate schedule spec, e.g. cosine or "
                            "gap-threshold:decay=0.1 (default constant)")
    train.add_argument("--device", default="cpu",
                       help="torch device: cpu, cuda or cuda:K (default cpu)")
    train.add_argument("--out", type=Path, default=Path("runs/rfm-train"),
                       help="output folder (default runs/rfm-train)")
    train.set_defaults(func=run_train)

    scaling = commands.add_parser(
        "scaling", help="tau_gen and tau_mem against ψ_n over seeds (the main job)",
        description="Closed-form curves for several ψ_n and seeds; fits tau_mem ∝ ψ_n^α. "
                    "Rerunning the same command reuses the points already computed.")
    add_problem_options(scaling, psi_n_list=True)
    scaling.add_argument("--seeds", type=positive_int("--seeds"), default=3,
                         help="number of seeds per ψ_n (seeds 0..K-1, default 3)")
    scaling.add_argument("--out", type=Path, default=Path("runs/rfm-scaling"),
                         help="output folder (default runs/rfm-scaling)")
    scaling.set_defaults(func=run_scaling, seed=0)


def _print_summary(summary: dict, bands: list[dict]) -> None:
    from genwindow.io import format_table
    import pandas as pd

    keys = ["tau_gen", "tau_mem", "tau_mem_score", "tau_gen_formula", "tau_mem_formula",
            "score_error_min", "train_loss_inf", "test_loss_inf"]
    print(format_table(pd.DataFrame([{k: summary[k] for k in keys}])))
    print(format_table(pd.DataFrame(bands)))


def check_sizes(config, psi_n_values) -> list[int]:
    """Validate every ψ_n against d and the memory before any work; return the sizes n."""
    from genwindow.resources import check_memory
    from genwindow.rfm.instance import estimate_bytes, sizes_from_ratios, sigma_diagonal

    sigma_diagonal(config.d, config.sigma_levels, config.sigma_weights)
    sizes = [sizes_from_ratios(config.d, config.psi_p, psi_n) for psi_n in psi_n_values]
    p, n = max(sizes, key=lambda size: size[1])
    check_memory(estimate_bytes(config.d, p, n, config.features, config.points),
                 f"the problem with d = {config.d}, p = {p}, n = {n}", "--d")
    return [n for _, n in sizes]


def run_curves(args: argparse.Namespace) -> int:
    from genwindow.io import prepare_out_dir, save_figure, write_csv, write_json
    from genwindow.report.rfm_figures import curves_figure
    from genwindow.rfm.experiments import closed_form_curves
    import pandas as pd

    config = config_from_args(args)
    check_sizes(config, [config.psi_n])
    prepare_out_dir(args.out)
    curves, summary, bands, _ = closed_form_curves(config)
    write_csv(args.out / "curves.csv", curves)
    write_csv(args.out / "bands.csv", pd.DataFrame(bands))
    write_json(args.out / "timescales.json", {**summary, "bands": bands,
                                              "config": config.as_dict()})
    title = f"ψ_p = {config.psi_p:g}, ψ_n = {config.psi_n:g}, t = {config.t:g}, d = {config.d}"
    save_figure(curves_figure(curves, summary, title=title), args.out / "curves.png")
    _print_summary(summary, bands)
    print(f"wrote {args.out}/curves.csv, timescales.json, bands.csv, curves.png")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from genwindow.errors import ConfigError
    from genwindow.io import prepare_out_dir, save_figure, write_csv, write_json
    from genwindow.report.rfm_figures import curves_figure
    from genwindow.rfm.closed_form import ClosedForm
    from genwindow.rfm.experiments import CURVE_COLUMNS, summarize
    from genwindow.rfm.matrices import build_matrices
    from genwindow.rfm.training import log_spaced_steps, max_stable_lr, train_rf
    from genwindow.schedules.registry import make_schedule

    config = config_from_args(args)
    check_sizes(config, [config.psi_n])
    try:
        import torch

        device = torch.device(args.device)
    except RuntimeError as error:
        raise ConfigError(f"--device: invalid device {args.device!r} ({error}); "
                          f"use cpu, cuda or cuda:K") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {args.device} requested but this PyTorch has no CUDA "
                          f"device available; use --device cpu")
    prepare_out_dir(args.out)
    inst = config.instance()
    matrices = build_matrices(inst, config.features, config.noise_samples, config.seed)
    stable_lr = max_stable_lr(matrices)
    lr = args.lr if args.lr is not None else args.lr_fraction * stable_lr
    schedule = make_schedule(args.schedule, total_steps=args.steps, n=inst.n,
                             psi_n=inst.psi_n, tau_per_step=lr / inst.d**2)
    print(f"training A: d={inst.d} p={inst.p} n={inst.n} t={inst.t:g} lr={lr:.4g} "
          f"({args.optimizer}, {args.steps} steps, features={config.features})")
    record = log_spaced_steps(args.steps, args.record)
    training = train_rf(inst, lr, args.steps, args.optimizer, args.batch_size, config.seed,
                        record, schedule, config.features, matrices, args.device,
                        progress=True)

    cf = ClosedForm.from_matrices(matrices, config.ridge)
    closed = pd.DataFrame({"tau": training["tau"], **cf.curves(training["tau"])})
    closed = closed[CURVE_COLUMNS]
    limits = cf.limits()
    summary = {"trained": summarize(inst, training, limits, config.rise),
               "closed_form": summarize(inst, closed, limits, config.rise),
               "lr": lr, "max_stable_lr": stable_lr,
               "optimizer": args.optimizer, "schedule": args.schedule,
               "batch_size": args.batch_size or inst.n, "steps": args.steps,
               "config": config.as_dict()}
    deviation = np.max(np.abs(training["test_loss"].to_numpy() - closed["test_loss"]))
    summary["max_test_loss_deviation"] = float(deviation)
    write_csv(args.out / "training.csv", training)
    write_csv(args.out / "curves.csv", closed)
    write_json(args.out / "timescales.json", summary)
    title = f"trained ({args.optimizer}, lr={lr:.3g}) vs closed form, d = {inst.d}"
    save_figure(curves_figure(closed, summary["closed_form"], training, title),
                args.out / "curves.png")
    print(training.iloc[:: max(1, len(training) // 8)].to_string(index=False))
    print(f"max |test loss trained − closed form| = {deviation:.3g}")
    print(f"wrote {args.out}/training.csv, curves.csv, timescales.json, curves.png")
    return 0


def run_scaling(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from genwindow.errors import ConfigError
    from genwindow.io import format_table, prepare_out_dir, save_figure, write_csv, write_json
    from genwindow.report.rfm_figures import scaling_figure
    from genwindow.rfm.experiments import POINT_KEYS, closed_form_curves, scaling_tables

    base = config_from_args(args, psi_n=args.psi_n[0])
    sizes = check_sizes(base, args.psi_n)
    if len(set(sizes)) < len(sizes):
        raise ConfigError(f"--psi-n: values {args.psi_n} give repeated training-set sizes "
                          f"n = {sizes} at d = {base.d}; give distinct ψ_n or raise --d")
    prepare_out_dir(args.out)
    points_dir = args.out / "points"
    rows, curves_by_psi_n = [], {}
    jobs = [(psi_n, seed) for psi_n in args.psi_n for seed in range(args.seeds)]
    for psi_n, seed in tqdm(jobs, desc="rfm scaling", unit="point"):
        config = replace(base, psi_n=psi_n, seed=seed)
        stem = f"psi_n={psi_n:g}_seed={seed}"
        cached = _load_point(points_dir / f"{stem}.json", config.as_dict())
        if seed == 0 and cached is not None:
            cached = cached if _curve_is_complete(points_dir / f"{stem}.csv", config) else None
        if cached is None:
            curves, summary, _, _ = closed_form_curves(config)
            summary.pop("definitions")
            if seed == 0:
                write_csv(points_dir / f"{stem}.csv", curves)
            write_json(points_dir / f"{stem}.json", {"config": config.as_dict(),
                                                     "summary": summary})
        else:
            summary = cached
        shares = summary.pop("band_shares", {})
        rows.append({**{k: summary[k] for k in POINT_KEYS},
            **{f"share_{band}": share for band, share in shares.items()}})
        if seed == 0:
            curves_by_psi_n[psi_n] = pd.read_csv(points_dir / f"{stem}.csv")

    table, fits = scaling_tables(rows)
    write_csv(args.out / "scaling.csv", table)
    write_json(args.out / "scaling.json", {**fits, "config": base.as_dict(),
                                           "psi_n": args.psi_n, "seeds": args.seeds})
    title = f"ψ_p = {base.psi_p:g}, t = {base.t:g}, d = {base.d}, seeds = {args.seeds}"
    save_figure(scaling_figure(curves_by_psi_n, table, fits, title), args.out / "scaling.png")
    columns = ["psi_n", "seed", "tau_gen", "tau_mem", "tau_mem_formula", "score_error_min"]
    print(format_table(table[columns]))
    for key in ("tau_mem_exponent", "tau_gen_exponent", "score_error_min_exponent"):
        fit = fits[key]
        if fit["points"] < 3 or len(args.psi_n) < 2:
            print(f"{key}: not fitted: needs at least 3 points over 2 distinct ψ_n "
                  f"(have {fit['points']} points, {len(args.psi_n)} ψ_n)")
            continue
        print(f"{key}: {fit['exponent']:.3f}  95% interval [{fit['low']:.3f}, "
              f"{fit['high']:.3f}]  ({fit['points']} points)")
    spread = fits["tau_gen_spread"]
    print(f"tau_gen: mean {spread['mean']:.4g}, max/min {spread['max_over_min']:.3f}")
    print(f"wrote {args.out}/scaling.csv, scaling.json, scaling.png")
    return 0


def _note(message: str) -> None:
    """Print a message without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message)


def _load_point(path: Path, config: dict) -> dict | None:
    """Return the saved summary at ``path`` if it was made with ``config``, else None.

    A file that cannot be read or lacks a field is reported and computed again.
    """
    from genwindow.rfm.experiments import POINT_KEYS

    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        same_config = saved.get("config") == json.loads(json.dumps(config))
        summary = saved["summary"]
        if same_config:
            for key in POINT_KEYS:
                float(summary[key])
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError,
            ValueError) as error:
        _note(f"recomputing {path}: the saved point is unreadable ({error!r})")
        return None
    return summary if same_config else None


def _curve_is_complete(path: Path, config) -> bool:
    """Return True when the saved seed-0 curve has every row of the τ grid."""
    import pandas as pd

    try:
        rows = len(pd.read_csv(path))
    except (OSError, ValueError) as error:
        if path.exists():
            _note(f"recomputing {path}: the saved curve is unreadable ({error!r})")
        return False
    if rows != config.points + 1:
        _note(f"recomputing {path}: the saved curve has {rows} rows, expected "
              f"{config.points + 1}")
        return False
    return True
