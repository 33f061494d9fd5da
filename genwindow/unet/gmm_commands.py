"""``genwindow gmm``: train on the Gaussian mixture with exact monitors, sweep, summarise.

    genwindow gmm run --preset cpu-gmm --n 128 --steps 20000 --out runs/gmm/n128
    genwindow gmm sweep --n 128,256,512 --seeds 0,1 --out runs/gmm/sweep
    genwindow gmm summary runs/gmm/sweep
    genwindow gmm train --n 128 --out runs/gmm/trainer-n128

``run`` and ``sweep`` use a lean loop that checkpoints every 1,000 steps
(``genwindow.unet.gmm_run``); ``train`` uses the diffusion trainer with checkpoints,
snapshots and resume (``genwindow.unet.gmm_trainer``). Both train the same network on the
same loss; ``summary`` reads the folders of ``run`` and ``sweep``.
"""

from __future__ import annotations

import argparse

from genwindow.cli_options import int_list, nonnegative_int, positive_float, positive_int

RUN_OPTIONS = (
    ("--d", positive_int("--d"), "data dimension"),
    ("--n", positive_int("--n"), "training points"),
    ("--seed", nonnegative_int("--seed"), "seed of data, initialisation and noise"),
    ("--width", positive_int("--width"), "MLP width W"),
    ("--blocks", positive_int("--blocks"), "residual blocks"),
    ("--optimizer", str, "sgd (momentum) or adam"),
    ("--lr", positive_float("--lr"), "base learning rate"),
    ("--momentum", float, "SGD momentum, in [0, 1)"),
    ("--steps", positive_int("--steps"), "step budget"),
    ("--schedule", str, "learning-rate schedule or controller spec (genwindow.schedules)"),
    ("--evals", positive_int("--evals"), "log-spaced steps that measure f_mem and KL"),
    ("--first-eval", positive_int("--first-eval"), "first log-spaced evaluation step"),
    ("--heldout", positive_int("--heldout"), "held-out points for test_loss"),
    ("--monitor-every", positive_int("--monitor-every"),
     "steps between loss and score-error measurements"),
    ("--samples", positive_int("--samples"), "generated samples for f_mem and KL"),
    ("--sampler", str, "em (Euler–Maruyama) or ddim"),
    ("--sampler-steps", positive_int("--sampler-steps"), "sampler steps, 2 … 1000"),
    ("--kl-times", positive_int("--kl-times"),
     "diffusion times of the entropy integral, at least 16"),
    ("--fmem-level", positive_float("--fmem-level"), "f_mem level that defines tau_mem, in "
                                                     "(0, 1)"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("gmm", help="Gaussian-mixture experiment with exact "
                                               "score, KL and f_mem")
    commands = parser.add_subparsers(dest="gmm_command", metavar="ACTION", required=True)

    run = commands.add_parser("run", help="train one network and log its exact monitors")
    _add_run_options(run)
    run.add_argument("--out", required=True,
                     help="output folder; rerun the same command to resume an interrupted run")
    run.add_argument("--dry-run", action="store_true", help="print the configuration only")
    run.set_defaults(func=_run)

    sweep = commands.add_parser("sweep", help="runs over n × seed × width × schedule, then "
                                              "the summary")
    _add_run_options(sweep, exclude=("--n", "--seed", "--width", "--schedule", "--steps"))
    sweep.add_argument("--n", dest="n_list", type=int_list("--n", minimum=2),
                       default=[128, 256, 512],
                       help="training-set sizes, comma-separated (default 128,256,512)")
    sweep.add_argument("--seeds", type=int_list("--seeds"), default=[0],
                       help="seeds, comma-separated (default 0)")
    sweep.add_argument("--widths", type=int_list("--widths", minimum=1), default=None,
                       help="MLP widths, comma-separated (default: the preset's)")
    sweep.add_argument("--schedules", default=None,
                       help="schedule specs separated by ';' (default: the preset's)")
    sweep.add_argument("--steps", type=positive_int("--steps"), default=None,
                       help="step budget for n = 128 (default: the preset's, cpu-gmm: "
                            "40000); other n get it times n/128, at least 1")
    sweep.add_argument("--max-steps", type=positive_int("--max-steps"), default=None,
                       help="cap on the step budget of any run (default: none)")
    sweep.add_argument("--out", required=True,
                       help="output folder, one subfolder per run; rerun the same command to "
                            "skip finished runs and resume an interrupted one")
    sweep.set_defaults(func=_sweep)

    trainer = commands.add_parser(
        "train", help="train with the diffusion trainer (checkpoints, resume, snapshots) "
                      "and the exact monitors")
    trainer.add_argument("--preset", default="cpu-gmm", choices=("cpu-gmm", "cpu-gmm-adam"),
                         help="trainer configuration to start from (default cpu-gmm)")
    trainer.add_argument("--n", type=positive_int("--n", minimum=2), default=None,
                         help="training points (cpu-gmm: 128)")
    trainer.add_argument("--seed", type=nonnegative_int("--seed"), default=None,
                         help="seed (cpu-gmm: 0)")
    trainer.add_argument("--width", type=positive_int("--width"), default=None,
                         help="MLP width W (cpu-gmm: 128)")
    trainer.add_argument("--lr", type=positive_float("--lr"), default=None,
                         help="base learning rate (cpu-gmm: 0.006, cpu-gmm-adam: 0.0006)")
    trainer.add_argument("--steps", type=positive_int("--steps"), default=None,
                         help="step budget (cpu-gmm: 20000)")
    trainer.add_argument("--schedule", default=None,
                         help="schedule or controller spec (cpu-gmm: constant)")
    trainer.add_argument("--samples", type=positive_int("--samples", minimum=2), default=None,
                         help="generated samples for f_mem and KL (cpu-gmm: 1000)")
    trainer.add_argument("--d", type=positive_int("--d"), default=8,
                         help="data dimension (default 8)")
    trainer.add_argument("--exact-every", type=positive_int("--exact-every"), default=500,
                         help="steps between exact loss and score-error measurements "
                              "(default 500); f_mem and KL run at 4 log-spaced steps per "
                              "decade")
    trainer.add_argument("--sampler", choices=("em", "ddim"), default="em",
                         help="sampler of the f_mem and KL monitor (default em)")
    trainer.add_argument("--sampler-steps", type=positive_int("--sampler-steps"),
                         default=1000, help="sampler steps, 2 … 1000 (default 1000)")
    trainer.add_argument("--out", required=True, help="run folder; rerun to resume")
    trainer.set_defaults(func=_train)

    summary = commands.add_parser("summary", help="tau_gen, tau_mem and fits of a sweep")
    summary.add_argument("folder", help="folder written by `genwindow gmm sweep`")
    summary.add_argument("--reference", default=None,
                         help="a constant-rate run folder, or a sweep folder whose constant "
                              "runs are matched by n, seed and width: compare every run "
                              "with it at the same training time Σ lr factors (writes "
                              "time_change.csv)")
    summary.add_argument("--budget", type=positive_int("--budget"), default=None,
                         help="step budget S: write n_mem.csv, the largest n that memorizes "
                              "within S steps for each schedule (with --reference, its "
                              "constant runs too)")
    summary.set_defaults(func=_summary)


def _add_run_options(parser, exclude=()) -> None:
    parser.add_argument("--preset", default="cpu-gmm", help="named configuration to start "
                                                            "from (default cpu-gmm)")
    from genwindow.unet.gmm_run import PRESETS

    preset = PRESETS["cpu-gmm"]
    for flag, kind, text in RUN_OPTIONS:
        if flag not in exclude:
            field = flag.lstrip("-").replace("-", "_")
            shown = getattr(preset, field, None)
            suffix = f" (cpu-gmm: {shown})" if shown is not None else ""
            parser.add_argument(flag, type=kind, default=None, help=text + suffix)


def _config(args, **overrides):
    from genwindow.errors import ConfigError
    from genwindow.unet.gmm_run import PRESETS, with_options

    if args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r} is unknown; choose one of "
                          f"{', '.join(PRESETS)}")
    options = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"), None)
               for flag, _, _ in RUN_OPTIONS}
    options.update(overrides)
    return with_options(PRESETS[args.preset], **options).check()


def _print_row(row) -> None:
    text = (f"step {row['step']:>7}  lr×{row['lr_factor']:.3g}  train {row['train_loss']:.4f}"
            f"  test {row['test_loss']:.4f}  score_err {row['score_error']:.4f}")
    if "kl" in row:
        text += (f"  KL {row['kl']:.3f}±{row['kl_se']:.3f}  f_mem {row['f_mem']:.3f}")
    print(text, flush=True)


def _run(args) -> int:
    from dataclasses import asdict

    import torch

    from genwindow.unet.gmm_run import make_run_schedule, run_gmm

    config = _config(args)
    make_run_schedule(config)
    if args.dry_run:
        for key, value in asdict(config).items():
            print(f"{key:>14} = {value}")
        return 0
    from genwindow.io import prepare_out_dir

    out = prepare_out_dir(args.out)
    if _finished_run_matches(out, config):
        print(f"{out}: finished already with these options, nothing to do")
        return 0
    torch.set_num_threads(1)
    run_gmm(config, args.out, progress=_print_row)
    return 0


def _finished_run_matches(run, config) -> bool:
    """Return True when ``run`` contains a finished run of ``config`` and False when it
    contains none. Raise ConfigError when it contains one with other options."""
    import json

    from genwindow.errors import ConfigError
    from genwindow.unet.gmm_run import config_differences

    if not (run / "metrics.csv").exists():
        return False
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{run} has metrics.csv but no readable config.json ({error}); "
                          f"give a new --out") from error
    listed = config_differences(saved, config)
    if listed:
        raise ConfigError(f"{run} contains a finished run with other options ({listed}); "
                          f"give a new --out for these options")
    return True


def _train(args) -> int:
    import torch

    from genwindow.unet.config import apply_overrides
    from genwindow.unet.gmm_trainer import CPU_GMM, CPU_GMM_ADAM, train_gmm

    base = CPU_GMM if args.preset == "cpu-gmm" else CPU_GMM_ADAM
    config = apply_overrides(base, {"n": args.n, "seed": args.seed, "width": args.width,
                                    "lr": args.lr, "steps": args.steps,
                                    "schedule": args.schedule, "samples": args.samples})
    from genwindow.io import prepare_out_dir

    prepare_out_dir(args.out)
    torch.set_num_threads(1)
    result = train_gmm(config, args.out, d=args.d, exact_every=args.exact_every,
                       sampler=args.sampler, sampler_steps=args.sampler_steps)
    print(f"{result.status}: {result.message}")
    return 0 if result.status in ("completed", "stopped") else 1


def _sweep(args) -> int:

    import torch

    from genwindow.errors import ConfigError
    from genwindow.io import prepare_out_dir
    from genwindow.unet.gmm_analysis import write_summary
    from genwindow.unet.gmm_run import make_run_schedule, run_gmm

    torch.set_num_threads(1)
    base = _config(args)
    widths = args.widths or [base.width]
    schedules = [s.strip() for s in (args.schedules or base.schedule).split(";") if s.strip()]
    if not schedules:
        raise ConfigError(f"--schedules {args.schedules!r} contains no schedule; give specs "
                          f"separated by ';', such as 'constant;cosine'")
    # Check every run's options and schedule before the first one starts.
    runs = []
    for width in widths:
        for schedule in schedules:
            for n in args.n_list:
                for seed in args.seeds:
                    steps = max(1, round((args.steps or base.steps) * n / 128))
                    if args.max_steps:
                        steps = min(steps, args.max_steps)
                    config = _config(args, n=n, seed=seed, width=width, schedule=schedule,
                                     steps=steps)
                    make_run_schedule(config)
                    # NOTE: specs are compared as text, so one schedule written with other
                    # spacing or key order gets its own run folder and summary row.
                    runs.append((f"W{width}_{_slug(schedule)}_n{n}_s{seed}", config))
    folder = prepare_out_dir(args.out)
    for name, config in runs:
        run = folder / name
        if _finished_run_matches(run, config):
            print(f"{name}: done already, skipped", flush=True)
            continue
        print(f"{name}: {config.steps} steps", flush=True)
        run_gmm(config, run, progress=_print_row)
    write_summary(folder)
    return 0


def _summary(args) -> int:
    from pathlib import Path

    import pandas as pd

    from genwindow.errors import ConfigError
    from genwindow.io import format_table, write_csv
    from genwindow.unet.gmm_analysis import (load_runs, n_mem_at_budget, summarise_run,
                                             time_change_check, write_summary)

    folder = Path(args.folder)
    if not folder.exists():
        raise ConfigError(f"FOLDER: {folder} not found; give the --out folder of a "
                          f"`genwindow gmm sweep`")
    if not folder.is_dir():
        raise ConfigError(f"FOLDER: {folder} is a file, not a folder; give the --out folder "
                          f"of a `genwindow gmm sweep`")
    runs = load_runs(folder)
    if not runs:
        raise ConfigError(f"FOLDER: no runs with a KL measurement under {folder}; `gmm "
                          f"summary` reads the --out folder of a `genwindow gmm sweep` or the "
                          f"parent of `gmm run` folders, not `gmm train` folders")
    references = _reference_runs(args.reference) if args.reference else []
    write_summary(folder)
    if references:
        table = time_change_check(runs, references)
        write_csv(folder / "time_change.csv", table)
        print(format_table(table))
    if args.budget:
        own = {(c["n"], c["seed"], c["width"], c["schedule"]) for c, _ in runs}
        extra = [(c, f) for c, f in references
                 if (c["n"], c["seed"], c["width"], c["schedule"]) not in own]
        table = pd.DataFrame([summarise_run(c, f) for c, f in runs + extra])
        n_mem = n_mem_at_budget(table[table["finished"]], args.budget)
        write_csv(folder / "n_mem.csv", n_mem)
        print(format_table(n_mem))
    return 0


def _reference_runs(reference) -> list:
    """Return the finished constant-rate runs of ``--reference``: one run folder, or every
    such run of a sweep folder."""
    from pathlib import Path

    from genwindow.errors import ConfigError
    from genwindow.unet.gmm_analysis import load_run, load_runs

    path = Path(reference)
    if (path / "config.json").exists():
        run = load_run(path)
        if run is None or not run[0]["finished"]:
            raise ConfigError(f"--reference {reference}: the run has not finished (no "
                              f"metrics.csv); finish it by rerunning its command")
        if run[0]["schedule"] != "constant":
            raise ConfigError(f"--reference {reference} ran the schedule "
                              f"{run[0]['schedule']!r}; give a constant-rate run")
        return [run]
    runs = [(c, f) for c, f in load_runs(path)
            if c["schedule"] == "constant" and c["finished"]] if path.is_dir() else []
    if not runs:
        raise ConfigError(f"--reference {reference}: neither a finished `genwindow gmm run` "
                          f"nor a sweep folder with finished constant-rate runs")
    return runs


def _slug(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in spec)
