"""``genwindow schedules list | compare | departures | sgd-budget`` and ``genwindow calibrate``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genwindow.cli_options import float_list, positive_float, positive_int

# Kept equal to genwindow.schedules.rf_compare.DEFAULT_SCHEDULES, which imports pandas.
DEFAULT_SCHEDULES = ("constant", "cosine", "gap-threshold", "size-aware")


def _schedule_list(text: str) -> list[str]:
    """Split ``--schedules`` at commas that start a new schedule name, not a parameter."""
    from genwindow.schedules.registry import available

    names = set(available())
    specs: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        head = part.split(":", 1)[0]
        if head in names or "=" not in part or not specs:
            specs.append(part)
        else:
            specs[-1] += "," + part
    if not specs:
        raise argparse.ArgumentTypeError(f"--schedules needs at least one name, got {text!r}")
    return specs


def _add_problem_options(parser: argparse.ArgumentParser, budget: int) -> None:
    parser.add_argument("--psi-p", type=positive_float("--psi-p"), default=64.0,
                        help="ψ_p = p/d, features per input dimension (default 64)")
    parser.add_argument("--psi-n", type=float_list("--psi-n"), default=[4.0, 8.0, 16.0, 32.0],
                        help="ψ_n = n/d values, comma-separated (default 4,8,16,32)")
    parser.add_argument("--t", type=positive_float("--t"), default=0.1,
                        help="diffusion time t at which the score is learned (default 0.1)")
    parser.add_argument("--d", type=positive_int("--d"), default=100,
                        help="input dimension d (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of W, X, Ω (default 0)")
    parser.add_argument("--budget", type=positive_int("--budget"), default=budget,
                        help=f"step budget S (default {budget})")
    parser.add_argument("--step-tau", type=positive_float("--step-tau"), default=0.25,
                        help="training time τ = η/d² of one step at the base learning rate "
                             "(default 0.25; gradient descent is stable below "
                             "ψ_p / (Δ_t λ_max(U)), about 7 at the defaults)")
    parser.add_argument("--gen-tolerance", type=positive_float("--gen-tolerance"),
                        default=0.05,
                        help="a run generalizes once its score error is within this fraction "
                             "of (initial − minimum) above the minimum (default 0.05)")
    parser.add_argument("--mem-threshold", type=positive_float("--mem-threshold"),
                        default=0.05,
                        help="a run memorizes once (test − train loss) / test loss reaches "
                             "this value (default 0.05)")
    parser.add_argument("--ridge", type=float, default=0.0,
                        help="ridge ρ ≥ 0 in the loss, as weight decay (default 0)")


def register(subparsers) -> None:
    schedules = subparsers.add_parser(
        "schedules", help="learning-rate schedules and controllers",
        description="List the schedules, or compare them exactly on the random-features "
                    "model.")
    commands = schedules.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND",
                                        required=True)
    listing = commands.add_parser("list", help="print every schedule name and its parameters")
    listing.set_defaults(func=run_list)

    compare = commands.add_parser(
        "compare", help="window metrics and n_mem(S) of schedules on the RF model",
        description="Run schedules under a step budget on the exact gradient-flow curves of "
                    "the random-features model, one instance per ψ_n, and write "
                    "windows.csv, n_mem.csv, curves.csv and figures.")
    _add_problem_options(compare, budget=400)
    compare.add_argument("--schedules", type=_schedule_list,
                         default=list(DEFAULT_SCHEDULES),
                         help="comma-separated schedule specs, e.g. "
                              "constant,cosine,gap-threshold:decay=0.1,patience=3 "
                              "(default constant,cosine,gap-threshold,size-aware; see "
                              "'genwindow schedules list')")
    compare.add_argument("--eval-every", type=positive_int("--eval-every"), default=5,
                         help="steps between monitor evaluations of controllers (default 5)")
    compare.add_argument("--monitor-noise", default="gaussian", choices=["gaussian", "none"],
                         help="sampling noise of the monitored losses (default gaussian)")
    compare.add_argument("--held-out", type=positive_int("--held-out"), default=1000,
                         help="held-out samples behind the monitored test loss "
                              "(default 1000)")
    compare.add_argument("--noise-seeds", type=positive_int("--noise-seeds"), default=1,
                         help="monitor-noise draws per controller run; window metrics are "
                              "averaged and a ψ_n counts as memorizing if any draw does "
                              "(default 1)")
    compare.add_argument("--calibration", type=Path, default=None,
                         help="calibration JSON for size-aware (default: fit tau_mem = "
                              "c ψ_n^α to this comparison's own instances)")
    compare.add_argument("--out", type=Path, default=Path("runs/schedules-compare"),
                         help="output folder (default runs/schedules-compare)")
    compare.set_defaults(func=run_compare)

    departures = commands.add_parser(
        "departures", help="real SGD against the change-of-time prediction",
        description="Train the RF model for real (fresh noise each step, full or mini-batch) "
                    "under several schedules and rates to the same τ, and measure how far "
                    "the curves depart from gradient flow at that τ and from exact gradient "
                    "descent with the same steps.")
    departures.add_argument("--d", type=positive_int("--d"), default=20,
                            help="input dimension d (default 20)")
    departures.add_argument("--psi-p", type=positive_float("--psi-p"), default=4.0,
                            help="ψ_p = p/d (default 4)")
    departures.add_argument("--psi-n", type=positive_float("--psi-n"), default=2.0,
                            help="ψ_n = n/d (default 2)")
    departures.add_argument("--t", type=positive_float("--t"), default=0.1,
                            help="diffusion time t (default 0.1)")
    departures.add_argument("--seed", type=int, default=0, help="seed of W, X, Ω (default 0)")
    departures.add_argument("--tau-end", type=positive_float("--tau-end"), default=60.0,
                            help="training time τ every run reaches (default 60)")
    departures.add_argument("--lr-fractions", type=float_list("--lr-fractions"),
                            default=[0.02, 0.2, 0.8],
                            help="base rates as fractions of the largest stable "
                                 "gradient-descent rate (default 0.02,0.2,0.8)")
    departures.add_argument("--batch-fractions", type=float_list("--batch-fractions"),
                            default=[1.0, 0.25],
                            help="batch sizes as fractions of n (default 1,0.25)")
    departures.add_argument("--schedules", default="constant,cosine,step",
                            help="comma-separated names from constant, cosine, step, "
                                 "inverse-time (default constant,cosine,step)")
    departures.add_argument("--seeds", type=positive_int("--seeds"), default=3,
                            help="training seeds per setting (default 3)")
    departures.add_argument("--features", default="gaussian-equivalent",
                            choices=["gaussian-equivalent", "true"],
                            help="features trained (default gaussian-equivalent, whose "
                                 "noise-averaged loss is exactly the closed form's)")
    departures.add_argument("--out", type=Path, default=Path("runs/schedules-departures"),
                            help="output folder (default runs/schedules-departures)")
    departures.set_defaults(func=run_departures)

    sweep = commands.add_parser(
        "sgd-budget", help="window and n_mem(S) of real SGD at several rates",
        description="Train the RF model for real for a fixed number of steps at several base "
                    "rates and dataset sizes, full and mini-batch, and read steps in the "
                    "window, the final score error and n_mem(S) beside gradient flow at the "
                    "same rates.")
    sweep.add_argument("--d", type=positive_int("--d"), default=20,
                       help="input dimension d (default 20)")
    sweep.add_argument("--psi-p", type=positive_float("--psi-p"), default=4.0,
                       help="ψ_p = p/d (default 4)")
    sweep.add_argument("--psi-n", type=float_list("--psi-n"), default=[1.0, 2.0, 4.0, 8.0],
                       help="ψ_n = n/d values (default 1,2,4,8)")
    sweep.add_argument("--t", type=positive_float("--t"), default=0.1,
                       help="diffusion time t (default 0.1)")
    sweep.add_argument("--seed", type=int, default=0, help="seed of W, X, Ω (default 0)")
    sweep.add_argument("--budget", type=positive_int("--budget"), default=400,
                       help="step budget S (default 400)")
    sweep.add_argument("--lr-fractions", type=float_list("--lr-fractions"),
                       default=[0.05, 0.2, 0.8],
                       help="base rates as fractions of the largest stable rate "
                            "(default 0.05,0.2,0.8)")
    sweep.add_argument("--batch-fractions", type=float_list("--batch-fractions"),
                       default=[1.0, 0.25], help="batch sizes as fractions of n (default 1,0.25)")
    sweep.add_argument("--schedule", default="constant",
                       help="learning-rate shape spec (default constant)")
    sweep.add_argument("--seeds", type=positive_int("--seeds"), default=3,
                       help="training seeds per setting (default 3)")
    sweep.add_argument("--out", type=Path, default=Path("runs/schedules-sgd-budget"),
                       help="output folder (default runs/schedules-sgd-budget)")
    sweep.set_defaults(func=run_sgd_budget)

    calibrate = subparsers.add_parser(
        "calibrate", help="choose schedule parameters for an objective on the RF model",
        description="Fit tau_mem = c ψ_n^α on the random-features closed form, then choose "
                    "the size-aware controller's onset κ (and decay) for the lowest final "
                    "score error with no memorization at any ψ_n, by gradient through the "
                    "closed form (JAX); the gap-threshold level by a robust search.")
    _add_problem_options(calibrate, budget=400)
    calibrate.add_argument("--mode", default="stop", choices=["stop", "decay"],
                           help="size-aware action after the onset (default stop)")
    calibrate.add_argument("--unit", default="tau", choices=["tau", "steps"],
                           help="unit of tau_mem in the calibration file: tau (needs the run's "
                                "τ per step) or steps at the base rate (default tau)")
    calibrate.add_argument("--margin", type=positive_float("--margin"), default=1.0,
                           help="memorization constraint tau_end ≤ tau_mem / margin at every "
                                "ψ_n (default 1)")
    calibrate.add_argument("--eval-every", type=positive_int("--eval-every"), default=5,
                           help="steps between monitor evaluations (default 5)")
    calibrate.add_argument("--held-out", type=positive_int("--held-out"), default=1000,
                           help="held-out samples behind the monitored test loss "
                                "(default 1000)")
    calibrate.add_argument("--out", type=Path, default=Path("runs/calibrate"),
                           help="output folder (default runs/calibrate)")
    calibrate.set_defaults(func=run_calibrate)


def run_list(args: argparse.Namespace) -> int:
    from genwindow.schedules.registry import describe

    print(describe())
    return 0


def _check_common(args: argparse.Namespace) -> None:
    from genwindow.errors import require

    require(args.ridge >= 0, f"--ridge: must be ≥ 0, got {args.ridge}")
    require(len(set(args.psi_n)) == len(args.psi_n),
            f"--psi-n: each value once, got {args.psi_n}")


def run_compare(args: argparse.Namespace) -> int:
    from genwindow.io import format_table
    from genwindow.schedules.registry import make_schedule
    from genwindow.schedules.rf_compare import CompareConfig, compare, write_compare

    _check_common(args)
    # Reject an unknown name or parameter before the expensive closed forms are built.
    for spec in args.schedules:
        if not spec.startswith("size-aware"):
            make_schedule(spec, total_steps=args.budget, n=1, psi_n=1.0, tau_per_step=1.0)
    if args.calibration is not None:
        from genwindow.schedules.controllers import load_calibration

        load_calibration(args.calibration)
    config = CompareConfig(psi_p=args.psi_p, psi_n=tuple(sorted(args.psi_n)), t=args.t,
                           d=args.d, seed=args.seed, budget=args.budget,
                           step_tau=args.step_tau, schedules=tuple(args.schedules),
                           eval_every=args.eval_every, monitor_noise=args.monitor_noise,
                           held_out=args.held_out, gen_tolerance=args.gen_tolerance,
                           mem_threshold=args.mem_threshold, ridge=args.ridge,
                           noise_seeds=args.noise_seeds,
                           calibration=None if args.calibration is None
                           else str(args.calibration))
    start = time.perf_counter()
    result = compare(config, progress=True)
    write_compare(result, args.out)
    columns = ["schedule", "psi_n", "step_gen", "step_mem", "steps_in_window", "stop_step",
               "final_score_error", "memorized"]
    print(format_table(result.windows[columns]))
    print(format_table(result.n_mem))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def run_departures(args: argparse.Namespace) -> int:
    from genwindow.io import format_table
    from genwindow.schedules.rf_departures import (DeparturesConfig, run_departures,
                                                   write_departures)

    config = DeparturesConfig(
        d=args.d, psi_p=args.psi_p, psi_n=args.psi_n, t=args.t, seed=args.seed,
        tau_end=args.tau_end, lr_fractions=tuple(args.lr_fractions),
        batch_fractions=tuple(args.batch_fractions),
        schedules=tuple(s.strip() for s in args.schedules.split(",") if s.strip()),
        seeds=args.seeds, features=args.features)
    start = time.perf_counter()
    frame, summary = run_departures(config, progress=True)
    write_departures(frame, summary, config, args.out)
    columns = ["schedule", "lr_fraction", "batch", "steps", "flow_score_error",
               "sgd_score_error", "departure_finite_step", "departure_noise",
               "tau_mem_flow", "tau_mem_sgd"]
    print(format_table(summary[columns]))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def run_sgd_budget(args: argparse.Namespace) -> int:
    from genwindow.errors import require
    from genwindow.io import format_table, write_csv, write_json
    from genwindow.schedules.registry import make_schedule
    from genwindow.schedules.rf_departures import (BudgetSweepConfig, budget_sweep_n_mem,
                                                   run_budget_sweep)
    from genwindow.schedules.shapes import Shape

    require(isinstance(make_schedule(args.schedule, total_steps=args.budget), Shape),
            f"--schedule: {args.schedule!r} must be a learning-rate shape, not a controller")
    config = BudgetSweepConfig(d=args.d, psi_p=args.psi_p, psi_n=tuple(sorted(args.psi_n)),
                               t=args.t, seed=args.seed, budget=args.budget,
                               lr_fractions=tuple(args.lr_fractions),
                               batch_fractions=tuple(args.batch_fractions),
                               schedule=args.schedule, seeds=args.seeds)
    start = time.perf_counter()
    frame = run_budget_sweep(config, progress=True)
    n_mem = budget_sweep_n_mem(frame)
    write_csv(args.out / "sgd_budget.csv", frame)
    write_csv(args.out / "sgd_budget_n_mem.csv", n_mem)
    write_json(args.out / "config.json", config.__dict__)
    print(format_table(frame.drop(columns=["n"])))
    print(format_table(n_mem))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from genwindow.schedules.calibration import calibrate_rf

    _check_common(args)
    start = time.perf_counter()
    calibrate_rf(args, progress=True)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
