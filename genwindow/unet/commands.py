"""``genwindow unet train | sample | evaluate``: diffusion models on real data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genwindow.cli_options import positive_float, positive_int

# (flag, TrainConfig field, argparse type, help). Every option defaults to the preset's value.
_PROBE = "comma-separated diffusion times t (> 0)"
_CADENCE = "'log:P' (P per decade), 'every:N' (steps) or 'off'"


def _nonneg_int(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be an integer, got {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{option} must be ≥ 0, got {text}")
        return value
    return parse


def _fraction(option: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}")
        if not 0.0 <= value < 1.0:
            raise argparse.ArgumentTypeError(f"{option} must be in [0, 1), got {text}")
        return value
    return parse


def _times(option: str):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be {_PROBE}, got {text!r}")
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{option} must be {_PROBE}, got {text!r}")
        return values
    return parse


def _size(text: str) -> int:
    from genwindow.unet.data import IMAGE_SIZES

    if text.strip() not in {str(s) for s in IMAGE_SIZES}:
        raise argparse.ArgumentTypeError(
            f"--size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {text!r}")
    return int(text)


TRAIN_OPTIONS = [
    ("--data", "data", str, "data source: digits, fashion-mnist, mnist, folder, celeba, or a "
                            "registered vector source"),
    ("--n", "n", positive_int("--n"), "training-set size (items)"),
    ("--seed", "seed", _nonneg_int("--seed"), "seed of the split, initialisation and noise"),
    ("--data-path", "data_path", str, "folder of the data (folder, celeba, fashion-mnist)"),
    ("--size", "size", _size, "resize images to SIZE×SIZE pixels: 8, 16, 28 or 32"),
    ("--heldout", "heldout", positive_int("--heldout"), "held-out items (default: the "
                                                         "source's choice)"),
    ("--centre", "centre", str, "subtract the training mean: pixel (mean image), global "
                                "(one number) or none"),
    ("--model", "model", str, "network: unet or mlp (residual MLP)"),
    ("--width", "width", positive_int("--width"), "U-Net base channels W, or MLP width (units)"),
    ("--blocks", "blocks", positive_int("--blocks"), "residual blocks of the MLP"),
    ("--dropout", "dropout", _fraction("--dropout"), "dropout probability"),
    ("--cond-dropout", "cond_dropout", _fraction("--cond-dropout"),
     "probability of the null label ∅ per training item (class-conditional only)"),
    ("--diffusion-steps", "diffusion_steps", positive_int("--diffusion-steps"),
     "DDPM steps T"),
    ("--beta-start", "beta_start", positive_float("--beta-start"), "first DDPM beta"),
    ("--beta-end", "beta_end", positive_float("--beta-end"), "last DDPM beta"),
    ("--optimizer", "optimizer", str, "sgd (with momentum) or adam"),
    ("--lr", "lr", positive_float("--lr"), "base learning rate (per step)"),
    ("--momentum", "momentum", _fraction("--momentum"), "SGD momentum"),
    ("--weight-decay", "weight_decay", float, "weight decay (L2, per step)"),
    ("--batch", "batch", _nonneg_int("--batch"), "training items per step; 0 = min(n, 512)"),
    ("--noise-repeats", "noise_repeats", _nonneg_int("--noise-repeats"),
     "noise draws per training item within one batch; 0 = enough for about 256 rows"),
    ("--grad-clip", "grad_clip", float, "max gradient norm; 0 disables clipping"),
    ("--ema", "ema", _fraction("--ema"), "EMA decay per step; 0 disables EMA"),
    ("--schedule", "schedule", str, "learning-rate schedule spec, e.g. constant, "
                                    "cosine:total_steps=1000"),
    ("--steps", "steps", positive_int("--steps"), "optimizer steps"),
    ("--snapshots-per-decade", "snapshots_per_decade", positive_float("--snapshots-per-decade"),
     "log-spaced analysis snapshots per decade of steps"),
    ("--checkpoint-every", "checkpoint_every", positive_int("--checkpoint-every"),
     "steps between resume states"),
    ("--log-every", "log_every", positive_int("--log-every"), "steps between status lines"),
    ("--explode-factor", "explode_factor", positive_float("--explode-factor"),
     "stop when the windowed loss exceeds this multiple of its minimum"),
    ("--loss-every", "loss_every", str, f"loss monitor cadence: {_CADENCE}"),
    ("--denoiser-every", "denoiser_every", str, f"denoiser monitor cadence: {_CADENCE}"),
    ("--fmem-every", "fmem_every", str, f"f_mem monitor cadence: {_CADENCE}"),
    ("--quality-every", "quality_every", str, f"FD/KID monitor cadence: {_CADENCE}"),
    ("--monitor-first", "monitor_first", positive_int("--monitor-first"),
     "first nonzero step of log-spaced sampling monitors (loss monitor: a tenth of it)"),
    ("--probe-times", "probe_times", _times("--probe-times"),
     f"loss and denoiser probe times: {_PROBE}"),
    ("--probes", "probes", positive_int("--probes"), "noised items per probe set"),
    ("--samples", "samples", positive_int("--samples"), "generated samples per f_mem/FD "
                                                        "measurement"),
    ("--sampler", "sampler", str, "ddim (deterministic) or ddpm (ancestral)"),
    ("--sampler-steps", "sampler_steps", positive_int("--sampler-steps"), "DDIM steps"),
    ("--guidance", "guidance", float, "classifier-free guidance weight (1 = conditional)"),
    ("--inception", "inception", str, "TorchScript Inception file for the usual FID"),
    ("--device", "device", str, "auto, cpu, cuda or cuda:N"),
]


def register(subparsers) -> None:
    unet = subparsers.add_parser("unet", help="train and evaluate diffusion models on data")
    commands = unet.add_subparsers(dest="unet_command", metavar="SUBCOMMAND", required=True)

    train = commands.add_parser(
        "train", help="train (or resume) a diffusion model with live monitors",
        description="Train an ε-prediction DDPM; rerun the same command to resume.")
    train.add_argument("--preset", default="cpu-digits",
                       help="named protocol whose values the options override: cpu-digits "
                            "or paper-celeba32")
    from genwindow.unet.config import CPU_DIGITS

    for flag, field, kind, text in TRAIN_OPTIONS:
        default = getattr(CPU_DIGITS, field)
        # torchrun's own parser takes "--n" as an abbreviation of its options, so the
        # training-set size also has a spelling that survives a torchrun command line.
        flags = (flag, "--train-size") if flag == "--n" else (flag,)
        train.add_argument(*flags, dest=field, type=kind, default=None,
                           help=f"{text} (cpu-digits: {default}; other presets differ)")
    train.add_argument("--conditional", action="store_true", default=None,
                       help="class-conditional model with condition dropout")
    train.add_argument("--no-bf16", dest="bf16", action="store_false", default=None,
                       help="disable bf16 autocast on CUDA")
    train.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile the training step")
    train.add_argument("--out", type=Path, help="run folder (required unless --dry-run)")
    train.add_argument("--dry-run", action="store_true",
                       help="print the resolved configuration and exit")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(func=run_train)

    sample = commands.add_parser("sample", help="generate samples from a run's snapshot")
    sample.add_argument("run_dir", type=Path, help="folder of a training run")
    sample.add_argument("--count", type=positive_int("--count"), default=64,
                        help="samples to generate (default 64)")
    sample.add_argument("--seed", type=_nonneg_int("--seed"), default=0,
                        help="seed of the first sample; sample i uses seed + i (default 0)")
    sample.add_argument("--snapshot", type=_nonneg_int("--snapshot"), default=None,
                        help="step of the snapshot (default: the latest)")
    sample.add_argument("--sampler", default="ddim", help="ddim or ddpm (default ddim)")
    sample.add_argument("--sampler-steps", type=positive_int("--sampler-steps"), default=50,
                        help="DDIM steps (default 50)")
    sample.add_argument("--out", type=Path, default=None,
                        help="folder for samples.npz and samples.png (default: RUN_DIR/samples)")
    sample.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    sample.set_defaults(func=run_sample)

    evaluate = commands.add_parser(
        "evaluate", help="tau_gen, tau_mem and curves from a run's monitor log")
    evaluate.add_argument("run_dir", type=Path, nargs="+", help="folders of training runs")
    evaluate.add_argument("--gap-threshold", type=positive_float("--gap-threshold"),
                          default=0.5, help="relative loss gap (test − train) / test that "
                                            "marks tau_gap (default 0.5)")
    evaluate.add_argument("--gen-fraction", type=_fraction("--gen-fraction"), default=0.9,
                          help="share of the total FD improvement that marks tau_gen "
                               "(default 0.9)")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="folder for evaluation.json, CSV and figures (default: the run "
                               "folder, or ./evaluation for several runs)")
    evaluate.set_defaults(func=run_evaluate)


def resolve_config(args: argparse.Namespace):
    from genwindow.errors import ConfigError
    from genwindow.unet.config import PRESETS, apply_overrides

    if args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r} is not known; choose one of "
                          f"{', '.join(PRESETS)}")
    overrides = {field: getattr(args, field) for _, field, _, _ in TRAIN_OPTIONS}
    overrides.update(conditional=args.conditional, bf16=args.bf16, compile=args.compile)
    config = apply_overrides(PRESETS[args.preset], overrides)
    config.validate()
    return config


def run_train(args: argparse.Namespace) -> int:
    from genwindow.errors import ConfigError
    from genwindow.unet.trainer import train

    from genwindow.io import prepare_out_dir
    from genwindow.schedules.registry import make_schedule

    config = resolve_config(args)
    # Build the schedule once here, so that a bad spec fails before any work (and in
    # --dry-run) with the same message the trainer would give.
    make_schedule(config.schedule, total_steps=config.steps, n=config.n)
    if args.dry_run:
        print(json.dumps({"preset": args.preset, **config.as_dict()}, indent=2))
        return 0
    if args.out is None:
        raise ConfigError("--out is required: the folder for the run's log, snapshots and "
                          "resume state")
    prepare_out_dir(args.out)
    result = train(config, args.out, progress=not args.no_progress)
    print(f"{result.status}: {result.message} ({result.out})")
    return 1 if result.status == "diverged" else 0


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from genwindow.unet.trainer import load_run, resolve_device

    device = resolve_device(args.device)
    config, model, split, diffusion, step = load_run(args.run_dir, device, args.snapshot)
    seeds = list(range(args.seed, args.seed + args.count))
    labels = None
    if config.conditional:
        import torch

        labels = torch.arange(args.count) % split.num_classes
    samples = diffusion.sample(model, seeds, split.shape, sampler=args.sampler,
                               num_steps=args.sampler_steps, labels=labels, device=device)
    if split.mean is not None:
        samples = samples + split.mean.cpu()
    out = args.out or args.run_dir / "samples"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"samples_step{step}.npz", samples=samples.numpy(), seeds=np.asarray(seeds))
    if split.is_image:
        _save_grid(samples, out / f"samples_step{step}.png")
    print(f"wrote {args.count} samples of step {step} to {out}")
    return 0


def _save_grid(samples, path: Path) -> None:
    import math

    import numpy as np
    from PIL import Image

    count, channels, h, w = samples.shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    grid = np.zeros((rows * h, cols * w), dtype=np.float32)
    for i, image in enumerate(samples[:, 0].numpy()):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = (image + 1) / 2
    Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8)).resize(
        (cols * w * 4, rows * h * 4), Image.Resampling.NEAREST).save(path)


def run_evaluate(args: argparse.Namespace) -> int:
    from genwindow.unet.evaluate import evaluate_runs

    out = args.out or (args.run_dir[0] if len(args.run_dir) == 1 else Path("evaluation"))
    table = evaluate_runs(args.run_dir, out, gap_threshold=args.gap_threshold,
                          gen_fraction=args.gen_fraction)
    from genwindow.io import format_table

    print(format_table(table))
    print(f"wrote evaluation.json, timescales.csv and curves to {out}")
    return 0
