"""The trainer end to end at tiny sizes: logs, resume after SIGKILL, divergence, schedules,
class conditioning, vector data, two-process DistributedDataParallel and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from genwindow.cli import main
from genwindow.unet.config import TrainConfig
from genwindow.unet.data import DataSplit
from genwindow.unet.monitors import log_spaced_steps
from genwindow.unet.trainer import read_log, train

REPO = Path(__file__).resolve().parents[1]

TINY = TrainConfig(n=8, steps=60, width=32, blocks=1, log_every=10, checkpoint_every=20,
                   loss_every="every:20", denoiser_every="every:30", fmem_every="every:30",
                   quality_every="off", samples=16, sampler_steps=5, probes=32,
                   diffusion_steps=100, snapshots_per_decade=1.0, probe_times=(0.01, 0.1))

# Wall-clock fields differ between runs; everything else must match exactly.
VOLATILE = {"seconds", "monitor_seconds"}


def _records(out: Path) -> list[dict]:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in lines]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def test_run_writes_log_snapshots_and_summary(tmp_path):
    result = train(TINY, tmp_path / "run", progress=False)
    assert result.status == "completed"
    assert result.step == 60
    monitor = read_log(tmp_path / "run", "monitor")
    assert [r["step"] for r in monitor] == [0, 20, 30, 40, 60]
    assert {"train_loss", "test_loss", "gen_gap", "train_loss_t0.01"} <= set(monitor[1])
    assert {"f_mem", "f_mem_low", "f_mem_high", "denoiser_ratio"} <= set(monitor[2])
    train_records = read_log(tmp_path / "run", "train")
    assert [r["step"] for r in train_records] == [10, 20, 30, 40, 50, 60]
    snapshots = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots == [f"step_{s:09d}.pt" for s in log_spaced_steps(60, 1.0)]
    assert len(snapshots) == 4
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"


class CrashAt:
    """A monitor that raises at one step, as a crash between two resume states would."""

    name = "crash"

    def __init__(self, step):
        self.steps = {step}

    def measure(self, context):
        raise RuntimeError("simulated crash")


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(TINY, tmp_path / "full", progress=False)
    assert full.status == "completed"
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TINY, out, progress=False, extra_monitors=[CrashAt(50)])
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 40
    assert not (out / "summary.json").exists()
    resumed = train(TINY, out, progress=False)
    assert resumed.status == "completed"
    assert _records(out) == _records(tmp_path / "full")


def test_changed_config_is_rejected(tmp_path):
    from genwindow.errors import ConfigError

    train(replace(TINY, steps=20), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="another configuration"):
        train(replace(TINY, steps=20, lr=0.5), tmp_path / "run", progress=False)


def _cli_command(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "genwindow.cli", "unet", "train", "--n", "8",
            "--steps", str(steps), "--width", "32", "--blocks", "1", "--diffusion-steps", "100", "--probe-times", "0.01,0.1",
            "--log-every", "10", "--checkpoint-every", "25", "--loss-every", "every:50",
            "--denoiser-every", "off", "--fmem-every", "every:150", "--quality-every", "off",
            "--samples", "16", "--sampler-steps", "5", "--probes", "32", "--no-progress",
            "--out", str(out)]


def test_sigkill_then_rerun_gives_identical_results(tmp_path):
    steps = 300
    reference = tmp_path / "reference"
    subprocess.run(_cli_command(reference, steps), check=True, env=_env(),
                   capture_output=True)

    out = tmp_path / "killed"
    process = subprocess.Popen(_cli_command(out, steps), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and process.poll() is None:
        state = out / "state.pt"
        if state.exists() and (out / "log.jsonl").exists():
            last = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()
                    if x.strip()]
            steps_done = max((r["step"] for r in last if r["kind"] == "train"), default=0)
            if steps_done >= 60:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed_at = steps_done
                break
        time.sleep(0.02)
    if killed_at is None:
        process.kill()
        pytest.fail("the run finished before it could be killed mid-way")
    assert not (out / "summary.json").exists()
    assert killed_at < steps

    subprocess.run(_cli_command(out, steps), check=True, env=_env(), capture_output=True)
    assert _records(out) == _records(reference)
    final = torch.load(out / "snapshots" / f"step_{steps:09d}.pt", weights_only=True)
    expected = torch.load(reference / "snapshots" / f"step_{steps:09d}.pt", weights_only=True)
    for key, value in expected["model"].items():
        assert torch.equal(final["model"][key], value), key


def test_exploding_loss_stops_with_message(tmp_path):
    config = replace(TINY, optimizer="sgd", lr=50.0, momentum=0.9, grad_clip=0.0, steps=200,
                     fmem_every="off", denoiser_every="off")
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "diverged"
    assert "last good snapshot" in result.message
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert (tmp_path / "run" / "snapshots" / "step_000000000.pt").exists()


def test_schedule_sets_lr_factor(tmp_path):
    config = replace(TINY, schedule="step:step_size=30,gamma=0.1", fmem_every="off",
                     denoiser_every="off")
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "completed"
    rates = {r["step"]: r["lr_factor"] for r in read_log(tmp_path / "run", "train")}
    assert rates[30] == 1.0
    assert abs(rates[40] - 0.1) < 1e-12


def test_schedule_stops_run(tmp_path):
    config = replace(TINY, schedule="fixed-budget:total_steps=25", fmem_every="off",
                     denoiser_every="off")
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "stopped"
    assert 25 <= result.step <= 26
    final = read_log(tmp_path / "run", "monitor")[-1]
    assert final["step"] == result.step
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "stopped"


def test_conditional_run_logs_wen_magnitude(tmp_path):
    config = replace(TINY, conditional=True, cond_dropout=0.2, denoiser_every="off")
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "completed"
    final = read_log(tmp_path / "run", "monitor")[-1]
    assert final["wen_magnitude"] > 0
    assert len(final["wen_per_sample"]) == config.samples


@pytest.mark.parametrize("options", [{"model": "unet", "width": 8, "dropout": 0.1},
                                     {"ema": 0.9, "optimizer": "sgd", "lr": 0.01}])
def test_unet_and_ema_runs(tmp_path, options):
    config = replace(TINY, steps=6, log_every=3, loss_every="every:6", fmem_every="every:6",
                     denoiser_every="off", samples=4, **options)
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "completed"
    snapshot = torch.load(tmp_path / "run" / "snapshots" / "step_000000006.pt",
                          weights_only=True)
    assert (snapshot["ema"] is not None) == ("ema" in options)
    final = read_log(tmp_path / "run", "monitor")[-1]
    assert final["step"] == 6
    assert "f_mem" in final


def test_vector_data_split(tmp_path):
    generator = torch.Generator().manual_seed(0)
    split = DataSplit(name="vectors", train=torch.randn(8, 4, generator=generator),
                      heldout=torch.randn(16, 4, generator=generator), shape=(4,))
    result = train(TINY, tmp_path / "run", progress=False, split=split)
    assert result.status == "completed"
    final = read_log(tmp_path / "run", "monitor")[-1]
    assert 0.0 <= final["f_mem"] <= 1.0


def test_two_process_ddp_matches_one_process(tmp_path):
    steps = 20
    # No --n here: torchrun's parser takes "--n" for an abbreviation of its own options,
    # so the run uses the preset's n = 64.
    args = ["unet", "train", "--steps", str(steps), "--width", "16", "--blocks",
            "1", "--diffusion-steps", "50", "--probe-times", "0.01,0.1", "--log-every", "5", "--loss-every", "every:10",
            "--denoiser-every", "off", "--fmem-every", "off", "--quality-every", "off",
            "--probes", "16", "--batch", "8", "--no-progress", "--device", "cpu"]
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "genwindow.cli", *args, "--out", str(single)],
                   check=True, env=_env(), capture_output=True)
    double = tmp_path / "double"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                          "2", "--master_port", "29517", "-m", "genwindow.cli", *args,
                          "--out", str(double)], env=_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    one = [r for r in _records(single) if r["kind"] in ("train", "monitor")]
    two = [r for r in _records(double) if r["kind"] in ("train", "monitor")]
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for key in ("loss", "train_loss", "test_loss"):
            if key in a:
                assert abs(a[key] - b[key]) < 1e-4 * abs(a[key]), (key, a, b)


def test_cli_train_sample_evaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENWINDOW_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = main(["unet", "train", "--n", "8", "--steps", "40", "--width", "32", "--blocks",
                 "1", "--diffusion-steps", "100", "--probe-times", "0.01,0.1", "--log-every", "10", "--fmem-every",
                 "every:20", "--quality-every", "every:40", "--samples", "16",
                 "--sampler-steps", "5", "--probes", "32", "--no-progress", "--out", str(out)])
    assert code == 0
    assert main(["unet", "sample", str(out), "--count", "4", "--sampler-steps", "5",
                 "--device", "cpu"]) == 0
    assert list((out / "samples").glob("samples_step40.*"))
    assert main(["unet", "evaluate", str(out)]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["timescales"][0]["n"] == 8
    assert (out / "curves.png").exists()
    # The same command resumes a finished run as a no-op.
    assert main(["unet", "train", "--n", "8", "--steps", "40", "--width", "32", "--blocks",
                 "1", "--diffusion-steps", "100", "--probe-times", "0.01,0.1", "--log-every", "10", "--fmem-every",
                 "every:20", "--quality-every", "every:40", "--samples", "16",
                 "--sampler-steps", "5", "--probes", "32", "--no-progress",
                 "--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_cli_dry_run_and_bad_values(capsys):
    assert main(["unet", "train", "--dry-run", "--preset", "paper-celeba32"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "unet"
    assert printed["optimizer"] == "sgd"
    with pytest.raises(SystemExit):
        main(["unet", "train", "--lr", "-1", "--dry-run"])
    assert "--lr must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["unet", "train", "--fmem-every", "log:x", "--dry-run"])
    assert "--fmem-every must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["unet", "train", "--n", "8"])
    assert "--out is required" in capsys.readouterr().err


def test_unlabelled_folder_with_quality(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("GENWINDOW_CACHE", str(tmp_path / "cache"))
    rng = torch.Generator().manual_seed(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(60):
        pixels = (torch.rand(12, 12, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    config = replace(TINY, data="folder", data_path=str(folder), size=8, n=8, heldout=12,
                     steps=6, log_every=3, loss_every="off", denoiser_every="off",
                     fmem_every="off", quality_every="every:6", samples=8)
    result = train(config, tmp_path / "run", progress=False)
    assert result.status == "completed"
    final = read_log(tmp_path / "run", "monitor")[-1]
    assert final["fd"] > 0
    assert final["fd_train"] >= 0
    # The encoder of an unlabelled source learns rotations: one cached file.
    assert len(list((tmp_path / "cache" / "encoders").glob("*.pt"))) == 1
