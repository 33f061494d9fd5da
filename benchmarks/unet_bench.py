"""Speed of the diffusion trainer: throughput against diffusers, overhead, monitor costs.

    python benchmarks/unet_bench.py throughput [--size 16] [--batch 64] [--steps 10]
    python benchmarks/unet_bench.py overhead [--steps 300]
    python benchmarks/unet_bench.py monitors RUN_DIR [RUN_DIR ...]

``throughput`` times training steps (forward, backward, Adam) of genwindow's U-Net and of
diffusers' UNet2DModel of about the same parameter count, on the same digits, batch and
device, in one process; diffusers is skipped when it is not installed. ``overhead`` times
the trainer (monitors off) against a bare loop of the same steps. ``monitors`` reads the
monitor timings that training runs logged and reports each monitor's share of the run.
Each writes a JSON record under results/unet/bench/ and prints it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from genwindow.io import write_json
from genwindow.unet.config import CPU_DIGITS
from genwindow.unet.data import load_data
from genwindow.unet.diffusion import Diffusion
from genwindow.unet.models import ModelConfig, build_model, count_parameters

OUT = Path("results/unet/bench")


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _time_steps(model, forward, x0, steps: int, warmup: int, device) -> float:
    """Return seconds per Adam step of ε-prediction on ``x0`` (mean over ``steps``)."""
    diffusion = Diffusion(device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(0)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        k = torch.randint(diffusion.T, (len(x0),), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        loss = (forward(diffusion.q_sample(x0, k, noise), k) - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def diffusers_unet(size: int, width: int):
    """Return diffusers' UNet2DModel with three levels (1, 2, 4)·width, attention at the two
    coarsest levels, or None when diffusers is not installed."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        return None
    return UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, layers_per_block=2,
        block_out_channels=(width, 2 * width, 4 * width),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=width // 2, norm_num_groups=8, dropout=0.1)


def throughput(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    split = load_data("digits", args.batch, seed=0, size=args.size)
    x0 = split.train.to(device)
    record = {"benchmark": "throughput", "machine": machine(), "size": args.size,
              "batch": args.batch, "steps": args.steps, "device": str(device)}

    torch.manual_seed(0)
    ours = build_model(ModelConfig(kind="unet", width=args.width), split.shape).to(device)
    seconds = _time_steps(ours, lambda x, k: ours(x, k), x0, args.steps, args.warmup, device)
    record["genwindow_unet"] = {"parameters": count_parameters(ours),
                                "seconds_per_step": seconds,
                                "images_per_second": args.batch / seconds}

    theirs = diffusers_unet(args.size, args.width)
    if theirs is None:
        record["diffusers_unet"] = "skipped: diffusers is not installed (pip install diffusers)"
    else:
        theirs = theirs.to(device)
        seconds = _time_steps(theirs, lambda x, k: theirs(x, k).sample, x0, args.steps,
                              args.warmup, device)
        record["diffusers_unet"] = {"parameters": count_parameters(theirs),
                                    "seconds_per_step": seconds,
                                    "images_per_second": args.batch / seconds}
    return record


def overhead(args) -> dict:
    """Time the trainer with every monitor off against a bare loop of the same steps."""
    from genwindow.unet.trainer import train

    config = replace(CPU_DIGITS, n=args.n, steps=args.steps, loss_every="off",
                     denoiser_every="off", fmem_every="off", quality_every="off",
                     snapshots_per_decade=1.0, checkpoint_every=args.steps, log_every=100)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train(config, folder, progress=False)
        trainer_seconds = time.perf_counter() - start
        # The training loop alone: the wall time that the last status line records.
        records = [json.loads(x) for x in (Path(folder) / "log.jsonl").read_text().split("\n")
                   if x.strip()]
        loop_seconds = max(r["seconds"] for r in records if r.get("kind") == "train")

    split = load_data("digits", args.n, seed=0)
    torch.manual_seed(0)
    model = build_model(config.model_config(), split.shape)
    diffusion = Diffusion(config.diffusion_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(1)
    rows = config.batch_size() * config.repeats()
    start = time.perf_counter()
    for _ in range(args.steps):
        index = torch.randperm(args.n, generator=generator)[:config.batch_size()]
        index = index.repeat_interleave(config.repeats())
        k = torch.randint(diffusion.T, (rows,), generator=generator)
        noise = torch.randn((rows, *split.shape), generator=generator)
        loss = diffusion.loss_per_item(model, split.train[index], k, noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
    bare_seconds = time.perf_counter() - start
    return {"benchmark": "overhead", "machine": machine(), "n": args.n, "steps": args.steps,
            "rows_per_step": rows, "trainer_seconds": trainer_seconds,
            "trainer_loop_seconds": loop_seconds, "bare_seconds": bare_seconds,
            "loop_overhead_share": loop_seconds / bare_seconds - 1.0,
            "total_overhead_share": trainer_seconds / bare_seconds - 1.0,
            "note": "trainer_seconds adds data loading, model construction and start-up to "
                    "the loop; the loop includes status lines, snapshots and resume states"}


def monitor_costs(args) -> dict:
    """Return each monitor's share of wall time in finished runs, from their logs."""
    runs = []
    for run_dir in args.runs:
        lines = [json.loads(x) for x in (Path(run_dir) / "log.jsonl").read_text().splitlines()
                 if x.strip()]
        totals: dict[str, float] = {}
        for record in lines:
            for name, seconds in (record.get("monitor_seconds") or {}).items():
                totals[name] = totals.get(name, 0.0) + seconds
        wall = max((r["seconds"] for r in lines if r.get("kind") == "train"), default=0.0)
        training = wall - sum(totals.values())
        runs.append({"run": str(run_dir), "wall_seconds": wall,
                     "training_seconds": training,
                     "monitor_seconds": totals,
                     "share_of_training": {k: v / training for k, v in totals.items()},
                     "all_monitors_share": sum(totals.values()) / training})
    return {"benchmark": "monitors", "machine": machine(), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("throughput")
    one.add_argument("--size", type=int, default=16)
    one.add_argument("--batch", type=int, default=64)
    one.add_argument("--width", type=int, default=32)
    one.add_argument("--steps", type=int, default=10)
    one.add_argument("--warmup", type=int, default=2)
    two = commands.add_parser("overhead")
    two.add_argument("--n", type=int, default=64)
    two.add_argument("--steps", type=int, default=300)
    three = commands.add_parser("monitors")
    three.add_argument("runs", nargs="+")
    args = parser.parse_args()
    record = {"throughput": throughput, "overhead": overhead,
              "monitors": monitor_costs}[args.command](args)
    write_json(OUT / f"{args.command}.json", record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
