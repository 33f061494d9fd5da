"""The diffusion trainer: ε-prediction DDPM training with monitors and a schedule.

One run lives in one folder:

    config.json        the resolved TrainConfig; a rerun must match it
    log.jsonl          every status line and monitor value, one JSON record per line
    state.pt           resume state: model, optimizer, EMA, schedule, RNG states, step
    snapshots/         log-spaced model weights for analysis (step_0001234.pt)
    summary.json       written when the run ends: status, last step, message

Rerunning the same command resumes from state.pt, truncating the log to where that state
was written, so a resumed run produces the same records as an uninterrupted one. Under
torchrun every process trains on its slice of one global batch (drawn identically on all
processes), and process 0 alone runs monitors, the schedule and all writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genwindow.errors import ConfigError
from genwindow.io import append_jsonl, write_json
from genwindow.unet.config import TrainConfig
from genwindow.unet.data import DataSplit, load_data
from genwindow.unet.diffusion import Diffusion
from genwindow.unet.models import build_model, count_parameters
from genwindow.unet import monitors as mon


@dataclass
class RunResult:
    """Outcome of a run: ``status`` is "completed", "stopped" (by the schedule) or
    "diverged", and ``step`` is the number of optimizer steps done."""

    status: str
    step: int
    message: str
    out: Path


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; "
                          f"use --device cpu or auto")
    return torch.device(name)


class Distributed:
    """The process group under torchrun (WORLD_SIZE > 1), or a single process."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            use_cuda = torch.cuda.is_available() and device_name != "cpu"
            if use_cuda:
                torch.cuda.set_device(local_rank)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if use_cuda else "gloo")
            self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        else:
            self.device = resolve_device(device_name)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return tensor.tolist()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return value
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def build_split(config: TrainConfig) -> DataSplit:
    options = {"path": config.data_path, "size": config.size, "heldout": config.heldout,
               "centre": config.centre}
    if config.data not in ("digits", "fashion-mnist", "mnist", "folder", "celeba"):
        # Vector sources (e.g. the Gaussian mixture) take only the split options they know.
        options = {k: v for k, v in options.items() if v is not None and k == "heldout"}
    return load_data(config.data, config.n, config.seed, **options)


def build_monitors(config: TrainConfig, split: DataSplit, diffusion: Diffusion,
                   device) -> list:
    first = config.monitor_first
    settings = mon.SampleSettings(count=config.samples, sampler=config.sampler,
                                  steps=config.sampler_steps, guidance=config.guidance)
    monitors: list = []
    steps = mon.parse_cadence(config.loss_every, config.steps, "--loss-every", first // 10)
    if steps:
        monitors.append(mon.LossMonitor(split, diffusion, steps, config.probe_times,
                                        config.probes, seed=config.seed))
    steps = mon.parse_cadence(config.denoiser_every, config.steps, "--denoiser-every", first)
    if steps:
        monitors.append(mon.DenoiserMonitor(split, diffusion, steps, config.probe_times,
                                            min(config.probes, 256), seed=config.seed))
    steps = mon.parse_cadence(config.fmem_every, config.steps, "--fmem-every", first)
    if steps:
        monitors.append(mon.MemorizationMonitor(steps, settings))
    steps = mon.parse_cadence(config.quality_every, config.steps, "--quality-every", first)
    if steps and split.is_image:
        monitors.append(mon.QualityMonitor(split, steps, settings, config.inception,
                                           device=device, encoder_seed=config.seed))
    return monitors


def _check_config(out: Path, config: TrainConfig) -> None:
    path = out / "config.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    current = config.as_dict()
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differing)
        raise ConfigError(f"--out {out} contains a run with another configuration ({details}); "
                          f"rerun with the same options to resume it, or choose a new --out")


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(generator: torch.Generator, state: dict, device: torch.device) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _log_record(out: Path, record: dict) -> None:
    append_jsonl(out / "log.jsonl", record)


def _format_monitor_line(step: int, values: dict) -> str:
    keys = ("train_loss", "test_loss", "gen_gap", "denoiser_ratio", "f_mem", "f_mem_low",
            "f_mem_high", "fd", "kid", "wen_magnitude")
    parts = [f"{k} {values[k]:.4g}" for k in keys if k in values]
    return f"monitor step {step:>8d}  " + "  ".join(parts)


def train(config: TrainConfig, out: str | Path, *, progress: bool = True,
          extra_monitors: list | None = None, split: DataSplit | None = None) -> RunResult:
    """Train (or resume) the run that ``config`` describes in folder ``out``.

    ``extra_monitors`` follow the ``genwindow.unet.monitors.Monitor`` protocol; ``split``
    replaces the data that ``config.data`` names (for callers that build it themselves).
    """
    from genwindow.schedules.registry import make_schedule

    config.validate()
    out = Path(out)
    dist = Distributed(config.device)
    device = dist.device
    try:
        if dist.main:
            _check_config(out, config)
        summary_path = out / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            if summary.get("status") in ("completed", "stopped"):
                return RunResult(summary["status"], summary["step"],
                                 f"run in {out} already finished ({summary['status']} at "
                                 f"step {summary['step']}); nothing to do", out)
        return _train(config, out, dist, device, progress, extra_monitors or [], split,
                      make_schedule)
    finally:
        dist.close()


def _train(config, out, dist, device, progress, extra_monitors, split, make_schedule):
    from tqdm import tqdm

    # Data, networks, optimizer: deterministic functions of the configuration.
    torch.manual_seed(config.seed)
    if split is None:
        split = build_split(config)
    split = split.to(device)
    diffusion = Diffusion(config.diffusion_config(), device=device)
    num_classes = split.num_classes if config.conditional else 0
    if config.conditional and not split.num_classes:
        raise ConfigError(f"--conditional needs class labels, but --data {config.data} has "
                          f"none; drop --conditional")
    model = build_model(config.model_config(), split.shape, num_classes).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if config.ema > 0 else None
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                     weight_decay=config.weight_decay)
    schedule = make_schedule(config.schedule, total_steps=config.steps, n=config.n)
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    torch.manual_seed(config.seed + 2 + dist.rank)

    train_model = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model, dynamic=False)
    autocast = config.bf16 and device.type == "cuda"

    # Resume state.
    step, window_sum, window_count, min_window = 0, 0.0, 0, math.inf
    state_path = out / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        schedule.load_state_dict(state["schedule"])
        _set_rng_state(generator, state["rng"], device)
        step = state["step"]
        window_sum, window_count = state["window"]
        min_window = state["min_window"]
        if dist.main:
            with open(out / "log.jsonl", "r+b") as log:
                log.truncate(state["log_bytes"])
    elif dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "log.jsonl").write_text("")
        write_json(out / "config.json", config.as_dict())

    monitors = (build_monitors(config, split, diffusion, device) + extra_monitors
                if dist.main else [])
    snapshot_steps = set(mon.log_spaced_steps(config.steps, config.snapshots_per_decade))
    batch = config.batch_size()
    repeats = config.repeats()
    per_rank = batch // dist.world
    if per_rank * dist.world != batch:
        raise ConfigError(f"--batch {batch} must be divisible by the {dist.world} processes")
    rows = slice(dist.rank * per_rank * repeats,
                 (dist.rank + 1) * per_rank * repeats)

    def save_state(at_step: int) -> None:
        _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "ema": None if ema is None else ema.state_dict(),
                      "schedule": schedule.state_dict(), "rng": _rng_state(generator, device),
                      "step": at_step, "window": (window_sum, window_count),
                      "min_window": min_window,
                      "log_bytes": (out / "log.jsonl").stat().st_size}, state_path)

    def save_snapshot(at_step: int) -> None:
        folder = out / "snapshots"
        folder.mkdir(exist_ok=True)
        _save_atomic({"step": at_step, "model": model.state_dict(),
                      "ema": None if ema is None else ema.state_dict()},
                     folder / f"step_{at_step:09d}.pt")

    if dist.main and step == 0:
        _log_record(out, {"kind": "start", "step": 0, "parameters": count_parameters(model),
                          "device": str(device), "processes": dist.world,
                          "data": split.info or {}, "shape": list(split.shape)})
        save_snapshot(0)

    bar = tqdm(total=config.steps, initial=step, disable=not (progress and dist.main),
               dynamic_ncols=True, unit="step")
    status, message = "completed", ""
    wall_start = time.perf_counter()
    n = split.n
    while True:
        # Monitors (process 0), then the schedule's action, shared with every process.
        metrics: dict = {}
        if dist.main and monitors:
            eval_model = ema if ema is not None else model
            was_training = eval_model.training
            eval_model.eval()
            context = mon.MonitorContext(eval_model, diffusion, split, device, step, autocast)
            metrics, seconds = mon.run_monitors(monitors, context)
            eval_model.train(was_training)
            if metrics:
                _log_record(out, {"kind": "monitor", "step": step, **metrics,
                                  "monitor_seconds": seconds})
                bar.write(_format_monitor_line(step, metrics))
        if step >= config.steps:
            break
        if dist.main:
            scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            action = schedule.update(step, scalars)
            factor, stop = float(action.lr_factor), float(bool(action.stop))
        else:
            factor, stop = 1.0, 0.0
        factor, stop = dist.broadcast([factor, stop])
        for group in optimizer.param_groups:
            group["lr"] = config.lr * factor

        # One optimizer step on a batch drawn identically on every process.
        if batch <= n:
            index = torch.randperm(n, generator=generator, device=device)[:batch]
        else:
            index = torch.randint(n, (batch,), generator=generator, device=device)
        index = index.repeat_interleave(repeats)
        k = torch.randint(diffusion.T, (len(index),), generator=generator, device=device)
        noise = torch.randn((len(index), *split.shape), generator=generator, device=device)
        labels = None
        if num_classes:
            labels = split.train_labels[index].clone()
            drop = torch.rand(len(index), generator=generator, device=device)
            labels[drop < config.cond_dropout] = num_classes
            labels = labels[rows]
        train_model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = diffusion.loss_per_item(train_model, split.train[index[rows]], k[rows],
                                           noise[rows], labels).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss_value = float(dist.mean(loss.detach().float()))
        if not math.isfinite(loss_value):
            status, message = "diverged", f"non-finite loss ({loss_value}) at step {step}"
            break
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1.0 - config.ema)
        step += 1
        bar.update(1)

        # Status line, explosion check, snapshots and resume state.
        window_sum += loss_value
        window_count += 1
        if window_count == config.log_every or step == config.steps:
            window = window_sum / window_count
            window_sum, window_count = 0.0, 0
            if dist.main:
                record = {"kind": "train", "step": step, "loss": window,
                          "lr": config.lr * factor, "lr_factor": factor,
                          "seconds": time.perf_counter() - wall_start}
                _log_record(out, record)
                bar.set_postfix(loss=f"{window:.4f}", lr=f"{config.lr * factor:.3g}")
            if window > config.explode_factor * min_window:
                status = "diverged"
                message = (f"loss exploded at step {step}: window mean {window:.4g} is above "
                           f"{config.explode_factor:g} × its minimum {min_window:.4g}")
                break
            min_window = min(min_window, window)
        if dist.main and step in snapshot_steps:
            save_snapshot(step)
        if dist.main and (step % config.checkpoint_every == 0 or step == config.steps):
            save_state(step)
        if stop:
            status, message = "stopped", f"the schedule stopped the run after step {step}"
            if dist.main:
                save_snapshot(step)
                save_state(step)
            if monitors and dist.main:
                context = mon.MonitorContext(ema if ema is not None else model, diffusion,
                                             split, device, step, autocast)
                for monitor in monitors:
                    monitor.steps.add(step)
                final, seconds = mon.run_monitors(monitors, context)
                _log_record(out, {"kind": "monitor", "step": step, **final,
                                  "monitor_seconds": seconds})
            break
    bar.close()

    if status == "diverged":
        snapshots = sorted((out / "snapshots").glob("step_*.pt"))
        last = snapshots[-1].name if snapshots else "none"
        message += (f"; training stopped. The last good snapshot is snapshots/{last}; lower "
                    f"--lr or set --grad-clip, then rerun in a new --out")
    elif status == "completed":
        message = f"finished {step} steps"
    if dist.main:
        _log_record(out, {"kind": "end", "step": step, "status": status, "message": message})
        write_json(out / "summary.json", {"status": status, "step": step, "message": message,
                                          "parameters": count_parameters(model)})
    return RunResult(status, step, message, out)


def load_run(run_dir: str | Path, device="cpu", snapshot: int | None = None):
    """Return (config, model, split, diffusion, step) of a run folder's snapshot.

    ``snapshot`` None takes the latest; the model has the EMA weights when the run has EMA.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise ConfigError(f"{run_dir}: no config.json; give the --out folder of a "
                          f"`genwindow unet train` run")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    split = build_split(config)
    snapshots = sorted((run_dir / "snapshots").glob("step_*.pt"))
    if snapshot is not None:
        snapshots = [p for p in snapshots if int(p.stem.split("_")[1]) == snapshot]
        if not snapshots:
            raise ConfigError(f"--snapshot {snapshot}: {run_dir}/snapshots has no such step")
    if not snapshots:
        raise ConfigError(f"{run_dir}: no snapshots found")
    saved = torch.load(snapshots[-1], map_location=device, weights_only=True)
    num_classes = split.num_classes if config.conditional else 0
    model = build_model(config.model_config(), split.shape, num_classes).to(device)
    model.load_state_dict(saved["ema"] if saved.get("ema") is not None else saved["model"])
    model.eval()
    return config, model, split, Diffusion(config.diffusion_config(), device), saved["step"]


def read_log(run_dir: str | Path, kind: str = "monitor") -> list[dict]:
    """Return the records of ``kind`` from a run's log.jsonl, in order."""
    path = Path(run_dir) / "log.jsonl"
    if not path.exists():
        raise ConfigError(f"{run_dir}: no log.jsonl; give the --out folder of a training run")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == kind]


def steps_array(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (steps, values) of ``key`` over the records that have it."""
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs)
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
