"""The schedules and calibrate commands on small problems, and their option checks."""

import json

import pandas as pd
import pytest

from genwindow.cli import main
from genwindow.schedules.registry import make_schedule

SMALL = ["--psi-p", "4", "--psi-n", "1,2,4", "--d", "20", "--budget", "120"]


def test_default_schedules_agree():
    from genwindow.schedules.commands import DEFAULT_SCHEDULES as in_commands
    from genwindow.schedules.rf_compare import DEFAULT_SCHEDULES as in_compare

    assert in_commands == in_compare


def test_schedules_list(capsys):
    assert main(["schedules", "list"]) == 0
    assert "gap-threshold" in capsys.readouterr().out


def test_compare_writes_tables_and_figures(tmp_path):
    out = tmp_path / "cmp"
    assert main(["schedules", "compare", *SMALL, "--schedules",
                 "constant,cosine,gap-threshold:decay=0.1,patience=3,size-aware",
                 "--noise-seeds", "3", "--out", str(out)]) == 0
    windows = pd.read_csv(out / "windows.csv")
    assert set(windows.schedule) == {"constant", "cosine", "gap-threshold:decay=0.1,patience=3",
                                     "size-aware"}
    assert len(windows) == 12
    for column in ("step_gen", "step_mem", "steps_in_window", "final_score_error"):
        assert column in windows
    n_mem = pd.read_csv(out / "n_mem.csv")
    assert len(n_mem) == 4
    for name in ("score_error_vs_step.png", "gap_vs_step.png", "window_vs_psi_n.png",
                 "score_error_vs_tau.png", "config.json", "curves.csv"):
        assert (out / name).exists()
    # Only the controller with noisy monitors draws the noise three times.
    draws = windows.set_index("schedule").noise_draws.groupby(level=0).max()
    assert draws["gap-threshold:decay=0.1,patience=3"] == 3
    assert draws["constant"] == 1
    assert draws["size-aware"] == 1
    # The constant rate reaches τ = 120 · 0.25 = 30 at the end of the budget.
    constant = windows[windows.schedule == "constant"]
    assert constant.tau_end.tolist() == pytest.approx([30.0] * 3)


def test_calibrate_writes_file_that_size_aware_reads(tmp_path):
    out = tmp_path / "cal"
    assert main(["calibrate", *SMALL, "--out", str(out)]) == 0
    record = json.loads((out / "calibration.json").read_text())
    assert record["schedule"] == "size-aware"
    assert record["feasible"]
    table = pd.read_csv(out / "calibration_table.csv")
    assert "oracle per ψ_n" in set(table.schedule)
    assert (out / "calibration.png").exists()
    ctrl = make_schedule(f"size-aware:calibration={out / 'calibration.json'}", psi_n=2.0,
                         tau_per_step=0.25)
    assert ctrl.kappa == pytest.approx(record["params"]["kappa"])
    # The compare command accepts the file too.
    assert main(["schedules", "compare", *SMALL, "--schedules", "size-aware",
                 "--calibration", str(out / "calibration.json"),
                 "--out", str(tmp_path / "cmp")]) == 0
    windows = pd.read_csv(tmp_path / "cmp" / "windows.csv")
    assert not windows.memorized.any()


def test_calibrate_in_steps_gives_same_onset(tmp_path):
    assert main(["calibrate", *SMALL, "--unit", "steps", "--out", str(tmp_path / "s")]) == 0
    assert main(["calibrate", *SMALL, "--out", str(tmp_path / "t")]) == 0
    in_steps = make_schedule(f"size-aware:calibration={tmp_path / 's' / 'calibration.json'}",
                             psi_n=2.0)
    in_tau = make_schedule(f"size-aware:calibration={tmp_path / 't' / 'calibration.json'}",
                           psi_n=2.0, tau_per_step=0.25)
    assert in_steps.unit == "steps"
    assert in_steps.onset == pytest.approx(in_tau.onset, rel=1e-12)


def test_departures_small_run(tmp_path):
    out = tmp_path / "dep"
    assert main(["schedules", "departures", "--d", "10", "--psi-p", "2", "--psi-n", "1",
                 "--tau-end", "10", "--lr-fractions", "0.1,0.5", "--batch-fractions", "1",
                 "--schedules", "constant,cosine", "--seeds", "2", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "departures_summary.csv")
    assert len(summary) == 4
    assert (summary.tau_end >= 10.0).all()
    # Full-batch GD with fresh noise scatters around the exact discrete-time curve.
    assert (summary.departure_finite_step.abs() < 0.2).all()
    assert (out / "sgd_score_error_vs_tau.png").exists()


def test_sgd_budget_small_run(tmp_path):
    out = tmp_path / "sweep"
    assert main(["schedules", "sgd-budget", "--d", "10", "--psi-p", "2", "--psi-n", "1,2",
                 "--budget", "60", "--lr-fractions", "0.2", "--batch-fractions", "1",
                 "--seeds", "1", "--out", str(out)]) == 0
    frame = pd.read_csv(out / "sgd_budget.csv")
    assert set(frame.method) == {"gradient flow", "SGD batch 1·n"}
    assert len(frame) == 4
    n_mem = pd.read_csv(out / "sgd_budget_n_mem.csv")
    assert len(n_mem) == 2


@pytest.mark.parametrize("argv, message", [
    (["schedules", "sgd-budget", "--schedule", "gap-threshold"], "must be a learning-rate"),
    (["schedules", "departures", "--lr-fractions", "1.5"], "--lr-fractions must lie in"),
    (["schedules", "departures", "--schedules", "warp"], "--schedules: unknown"),
    (["schedules", "compare", "--schedules", "warp"], "unknown schedule 'warp'"),
    (["schedules", "compare", "--schedules", "cosine:speed=2"], "no parameter speed"),
    (["schedules", "compare", "--budget", "0"], "--budget must be at least 1"),
    (["schedules", "compare", "--psi-n", "4,x"], "--psi-n must be comma-separated"),
    (["schedules", "compare", "--ridge", "-1"], "--ridge: must be ≥ 0"),
    (["schedules", "compare", "--calibration", "/nonexistent.json"], "not found"),
    (["calibrate", "--step-tau", "-2"], "--step-tau must be positive"),
])
def test_bad_options_exit_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err
