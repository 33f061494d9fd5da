"""Gaussian-mixture runs: the lean loop, the trainer integration, the CLI and the summary."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from genwindow.cli import main
from genwindow.errors import ConfigError
from genwindow.schedules.registry import available
from genwindow.unet.data import load_data
from genwindow.unet.gmm import GaussianMixture, mixture_of_split
from genwindow.unet.gmm_analysis import (crossing_step, fit_exponent, n_mem_at_budget,
                                        tau_gen_kl)
from genwindow.unet.gmm_run import GMMRunConfig, eval_steps, run_gmm, wilson_interval

TINY = GMMRunConfig(n=16, steps=60, evals=2, first_eval=30, monitor_every=20, samples=100,
                    sampler_steps=20, kl_times=16, heldout=64)
TINY_ARGS = ["--evals", "2", "--first-eval", "30", "--monitor-every", "20", "--samples",
             "100", "--sampler-steps", "20", "--kl-times", "16", "--heldout", "64"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gmm_source_matches_mixture():
    split = load_data("gmm", 32, seed=5, d=3, mean=2.0, heldout=10)
    assert split.train.shape == (32, 3)
    assert split.heldout.shape == (10, 3)
    mixture = mixture_of_split(split)
    assert mixture == GaussianMixture.symmetric(d=3, mean=2.0)
    expected = mixture.sample(32, 5, stream=0)
    assert torch.equal(split.train, torch.from_numpy(expected).float())
    with pytest.raises(ConfigError, match="size"):
        load_data("gmm", 8, seed=0, size=8)


def test_run_logs_monitors_and_is_reproducible():
    first = run_gmm(TINY)
    second = run_gmm(TINY)
    assert first["step"].tolist() == [0, 20, 30, 40, 60]
    assert set(eval_steps(TINY)) == {0, 30, 60}
    evaluated = first.dropna(subset=["kl"])
    assert evaluated["step"].tolist() == [0, 30, 60]
    assert np.allclose(first["train_loss"], second["train_loss"], rtol=0, atol=0)
    assert np.allclose(evaluated["kl"], second.dropna(subset=["kl"])["kl"], rtol=0, atol=0)
    assert first["train_loss"].iloc[-1] < first["train_loss"].iloc[0]
    assert first["lr_time"].tolist() == [0, 20, 30, 40, 60]
    assert np.allclose(first["gen_gap"], first["test_loss"] - first["train_loss"])


def test_schedule_controls_rate_and_stop():
    spec = "threshold:metric=score_error,decay_level=0,stop_level=0,decay=0.5"
    frame = run_gmm(GMMRunConfig(**{**TINY.__dict__, "schedule": spec}))
    # score_error > 0 at step 0, so the controller halves the rate and stops after step 0.
    assert frame["step"].tolist() == [0, 1]
    assert frame["lr_time"].iloc[-1] == pytest.approx(0.5)


# Specs of the schedules that need parameters. Every other schedule runs by its name.
# size-aware gets its law as c and alpha on the run's n, small enough to act in 60 steps.
EVERY_SCHEDULE = {
    "size-aware": "size-aware:c=0.5,alpha=1,kappa=1",
    "fixed-budget": "fixed-budget:total_steps=40",
}


@pytest.mark.parametrize("name", sorted(available()))
def test_every_schedule_runs_unchanged(name):
    frame = run_gmm(GMMRunConfig(**{**TINY.__dict__,
                                    "schedule": EVERY_SCHEDULE.get(name, name)}))
    assert frame["lr_time"].notna().all()
    assert np.isfinite(frame["score_error"].dropna()).all()
    assert 0 < frame["lr_time"].iloc[-1] <= frame["step"].iloc[-1]


class Interrupt(Exception):
    pass


def _interrupt_at(step):
    def progress(row):
        if row["step"] == step:
            raise Interrupt

    return progress


CLOCKS = ["train_seconds", "monitor_seconds"]


def test_interrupted_run_resumes_to_same_log(tmp_path):
    config = GMMRunConfig(**{**TINY.__dict__, "schedule": "plateau:metric=score_error,factor=0.5,patience=1,threshold=0.5"})
    whole = run_gmm(config, tmp_path / "whole", checkpoint_every=20)
    with pytest.raises(Interrupt):
        run_gmm(config, tmp_path / "cut", progress=_interrupt_at(40), checkpoint_every=20)
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    assert not (tmp_path / "cut" / "metrics.csv").exists()

    resumed = run_gmm(config, tmp_path / "cut", checkpoint_every=20)
    pd.testing.assert_frame_equal(resumed.drop(columns=CLOCKS), whole.drop(columns=CLOCKS))
    logged = pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert logged["step"].tolist() == whole["step"].tolist()
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()


def test_resume_with_other_options_fails(tmp_path):
    with pytest.raises(Interrupt):
        run_gmm(TINY, tmp_path, progress=_interrupt_at(40), checkpoint_every=20)
    with pytest.raises(ConfigError, match="lr = 0.006 there, 0.001 now"):
        run_gmm(GMMRunConfig(**{**TINY.__dict__, "lr": 1e-3}), tmp_path, checkpoint_every=20)
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match="delete it"):
        run_gmm(TINY, tmp_path, checkpoint_every=20)


def test_run_writes_files(tmp_path):
    run_gmm(TINY, tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["n"] == 16
    assert config["mixture"]["weights"] == [0.5, 0.5]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert (tmp_path / "run" / "metrics.csv").exists()


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="--optimizer"):
        GMMRunConfig(optimizer="rmsprop").check()
    with pytest.raises(ConfigError, match="--sampler"):
        GMMRunConfig(sampler="heun").check()
    with pytest.raises(ConfigError, match="--n"):
        GMMRunConfig(n=1).check()
    with pytest.raises(ConfigError, match="--momentum"):
        GMMRunConfig(momentum=1.0).check()


def test_cli_run_sweep_summary(tmp_path, capsys):
    assert main(["gmm", "run", "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    assert "width = 128" in capsys.readouterr().out
    folder = tmp_path / "sweep"
    assert main(["gmm", "sweep", "--n", "16,32", "--steps", "40", "--out", str(folder),
                 *TINY_ARGS]) == 0
    assert sorted(p.name for p in folder.glob("W128_*")) == ["W128_constant_n16_s0",
                                                             "W128_constant_n32_s0"]
    for name in ("summary.csv", "fits.json", "curves.png", "timescales.png"):
        assert (folder / name).exists(), name
    assert main(["gmm", "summary", str(folder)]) == 0
    assert main(["gmm", "summary", str(folder), "--reference", str(folder),
                 "--budget", "5"]) == 0
    n_mem = pd.read_csv(folder / "n_mem.csv")
    assert list(n_mem["sizes"]) == ["16,32"]
    time_change = pd.read_csv(folder / "time_change.csv")
    assert sorted(time_change["n"]) == [16, 32]


@pytest.mark.parametrize("argv, message", [
    (["gmm", "run", "--out", "x", "--optimizer", "rmsprop"], "--optimizer"),
    (["gmm", "run", "--out", "x", "--preset", "gpu"], "--preset"),
    (["gmm", "sweep", "--out", "x", "--n", "a,b"], "--n"),
    (["gmm", "run", "--out", "x", "--lr", "-1"], "--lr"),
    (["gmm", "run", "--out", "x", "--seed", "-1"], "--seed"),
    (["gmm", "run", "--out", "x", "--kl-times", "8"], "--kl-times"),
    (["gmm", "run", "--out", "x", "--samples", "1"], "--samples"),
    (["gmm", "run", "--out", "x", "--n", "100000000"], "--n"),
    (["gmm", "run", "--out", "x", "--dry-run", "--schedule", "bogus"], "bogus"),
    (["gmm", "run", "--out", "x", "--dry-run", "--schedule", "plateau:metric=typo"],
     "'typo'"),
    (["gmm", "sweep", "--out", "x", "--schedules", ";;"], "--schedules"),
    (["gmm", "sweep", "--out", "x", "--schedules", "constant;bogus"], "bogus"),
    (["gmm", "sweep", "--out", "x", "--n", "1"], "--n"),
])
def test_cli_bad_values_exit_with_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sweep_strips_specs_rejects_changes(tmp_path, capsys):
    folder = tmp_path / "sweep"
    argv = ["gmm", "sweep", "--n", "16", "--steps", "40", "--out", str(folder), *TINY_ARGS]
    assert main([*argv, "--schedules", "constant; cosine"]) == 0
    assert sorted(p.name for p in folder.glob("W128_*")) == ["W128_constant_n16_s0",
                                                             "W128_cosine_n16_s0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--lr", "0.001"])
    assert exit_info.value.code == 2
    assert "lr = 0.006 there, 0.001 now" in capsys.readouterr().err


def test_reference_matches_n_rejects_schedules(tmp_path, capsys):
    folder = tmp_path / "sweep"
    assert main(["gmm", "sweep", "--n", "16,32", "--steps", "40", "--out", str(folder),
                 "--schedules", "constant;cosine", *TINY_ARGS]) == 0
    reference = folder / "W128_constant_n16_s0"
    assert main(["gmm", "summary", str(folder), "--reference", str(reference)]) == 0
    table = pd.read_csv(folder / "time_change.csv")
    assert set(table["n"]) == {16}
    with pytest.raises(SystemExit):
        main(["gmm", "summary", str(folder), "--reference",
              str(folder / "W128_cosine_n16_s0")])
    assert "constant-rate" in capsys.readouterr().err


def test_rerun_of_finished_run_folder(tmp_path, capsys):
    argv = ["gmm", "run", "--n", "16", "--steps", "40", "--out", str(tmp_path), *TINY_ARGS]
    assert main(argv) == 0
    before = (tmp_path / "metrics.csv").read_text()
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--lr", "0.01"])
    assert exit_info.value.code == 2
    assert "lr = 0.006 there, 0.01 now" in capsys.readouterr().err
    assert (tmp_path / "metrics.csv").read_text() == before


def test_time_change_needs_same_rate(tmp_path, capsys):
    from genwindow.unet.gmm_analysis import time_change_check

    config = dict(TINY.__dict__)
    frame = run_gmm(TINY)
    other = {**config, "lr": 0.03}
    assert time_change_check([(config, frame)], [(other, frame)]).empty
    assert "left out" in capsys.readouterr().out


def test_summary_names_corrupt_run(tmp_path, capsys):
    folder = tmp_path / "sweep"
    assert main(["gmm", "sweep", "--n", "16", "--steps", "40", "--out", str(folder),
                 *TINY_ARGS]) == 0
    (folder / "W128_constant_n16_s0" / "metrics.csv").write_text("step,kl\n1,\"2\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["gmm", "summary", str(folder)])
    assert exit_info.value.code == 2
    assert "W128_constant_n16_s0 is not a readable gmm run" in capsys.readouterr().err


def test_cli_train_uses_trainer(tmp_path):
    out = tmp_path / "trained"
    assert main(["gmm", "train", "--n", "8", "--steps", "20", "--samples", "50",
                 "--sampler-steps", "10", "--exact-every", "10", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    monitor = [r for r in records if r["kind"] == "monitor"]
    assert {"score_error", "gen_gap", "kl", "f_mem"} <= set().union(*monitor)
    assert json.loads((out / "config.json").read_text())["batch"] == 8
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_train_resume_other_d_fails(tmp_path, capsys):
    out = tmp_path / "trained"
    argv = ["gmm", "train", "--n", "8", "--steps", "10", "--samples", "20",
            "--sampler-steps", "5", "--exact-every", "10", "--out", str(out)]
    assert main([*argv, "--d", "4"]) == 0
    saved = json.loads((out / "gmm.json").read_text())
    assert saved == {"d": 4, "mean": 1.0, "exact_every": 10, "sampler": "em",
                     "sampler_steps": 5}
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--d", "8"])
    assert exit_info.value.code == 2
    assert "d = 4 there, 8 now" in capsys.readouterr().err


def test_crossing_and_tau_gen():
    steps = np.array([0, 100, 1000, 10000])
    assert crossing_step(steps, [0, 0.0, 0.1, 0.3], 0.2) == pytest.approx(math.sqrt(1e7))
    assert math.isnan(crossing_step(steps, [0, 0, 0, 0.01], 0.02))
    tau, previous = tau_gen_kl(steps, [50.0, 3.0, 0.2, 0.1], [5.0, 0.5, 0.05, 0.05])
    assert (tau, previous) == (1000.0, 100.0)


def test_fit_exponent_recovers_power_law():
    n = np.array([128, 256, 512, 1024])
    fit = fit_exponent(n, 3.0 * n**1.2 * np.array([1.01, 0.99, 1.0, 1.02]))
    assert abs(fit["exponent"] - 1.2) < 0.05
    assert fit["exponent_se"] < 0.05


def test_fit_exponent_interval_local_slopes():
    n = np.array([128, 128, 256, 256, 512, 512])
    # Factors r and 1/r, so that the mean of log tau at each n lies on the power law.
    tau = 5.0 * n**0.9 * np.array([1.03, 1 / 1.03, 1.02, 1 / 1.02, 1.04, 1 / 1.04])
    fit = fit_exponent(n, tau)
    assert fit["exponent_low"] < fit["exponent"] < fit["exponent_high"]
    # Student t with 4 degrees of freedom: 2.776 standard errors either side.
    width = fit["exponent_high"] - fit["exponent_low"]
    assert width == pytest.approx(2 * 2.776 * fit["exponent_se"], rel=1e-3)
    assert fit["local"]["128-256"] == pytest.approx(0.9, abs=1e-12)
    assert fit["local"]["256-512"] == pytest.approx(0.9, abs=1e-12)


def _summary_rows(schedule, rows):
    return [{"width": 128, "schedule": schedule, "n": n, "tau_mem": tau, "steps": steps}
            for n, tau, steps in rows]


def test_n_mem_at_budget_cases():
    nan = float("nan")
    table = pd.DataFrame(
        _summary_rows("constant", [(128, 8000, 20000), (256, 16000, 30000),
                                   (512, 28000, 40000)])
        + _summary_rows("oracle", [(128, nan, 20000), (256, nan, 10000)])
        + _summary_rows("fast", [(128, 900, 20000), (256, 1800, 20000)]))
    rows = n_mem_at_budget(table, 20000).set_index("schedule")

    constant = rows.loc["constant"]
    share = math.log(20000 / 16000) / math.log(28000 / 16000)
    assert constant["n_mem"] == pytest.approx(256 * 2**share, rel=1e-12)
    assert (constant["n_mem_low"], constant["n_mem_high"]) == (256, 512)

    # The n = 256 oracle run stopped at 10,000 steps without memorizing, so it is left out
    # at S = 20,000. The n = 128 run spent the budget without memorizing.
    oracle = rows.loc["oracle"]
    assert oracle["sizes"] == "128"
    assert math.isnan(oracle["n_mem_low"])
    assert oracle["n_mem_high"] == 128
    assert math.isnan(oracle["n_mem"])

    fast = rows.loc["fast"]
    assert fast["n_mem_low"] == 256
    assert math.isnan(fast["n_mem_high"])
    assert math.isnan(fast["n_mem"])


def test_wilson_interval():
    low, high = wilson_interval(0.0, 1000)
    assert low == 0.0
    assert 0.003 < high < 0.005
    low, high = wilson_interval(0.5, 100)
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.05, rel=0.03)


def test_time_change_check_identity():
    from genwindow.unet.gmm_analysis import time_change_check

    config = dict(TINY.__dict__)
    frame = run_gmm(TINY)
    table = time_change_check([(config, frame)], [(config, frame)])
    row = table.iloc[0]
    assert row["lr_time_end"] == 60
    assert row["score_error_end"] == pytest.approx(row["score_error_const_at_T"], abs=1e-12)
    assert row["f_mem_end"] == pytest.approx(row["f_mem_const_at_T"], abs=1e-12)
    assert row["kl_end"] == pytest.approx(row["kl_const_at_T"], rel=1e-12)
