"""Every rfm and theory command runs on small sizes; bad options exit with their name."""

import json

import pandas as pd
import pytest

from genwindow.cli import main


def run_cli(*args):
    return main([str(a) for a in args])


def test_theory_constants_prints_json(capsys, tmp_path):
    assert run_cli("theory", "constants", "--t", "0.1", "--out", tmp_path) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"Delta_t", "Gamma_t2", "mu1", "a_t", "b_t", "v_t2", "s_t2",
                            "sigma_norm2"}
    assert json.loads((tmp_path / "constants.json").read_text())["mu1"] == printed["mu1"]


def test_rfm_curves_writes_tables_and_figure(tmp_path):
    out = tmp_path / "curves"
    assert run_cli("rfm", "curves", "--psi-p", 8, "--psi-n", 2, "--t", 0.1, "--d", 20,
                   "--seed", 1, "--out", out) == 0
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == ["tau", "train_loss", "test_loss", "score_error", "gen_gap"]
    summary = json.loads((out / "timescales.json").read_text())
    for key in ("tau_gen", "tau_mem", "tau_gen_formula", "tau_mem_formula",
                "score_error_min", "train_loss_inf", "test_loss_inf", "band_shares"):
        assert key in summary, key
    assert summary["tau_gen"] < summary["tau_mem"]
    assert (out / "curves.png").stat().st_size > 10_000


def test_rfm_curves_true_features(tmp_path):
    out = tmp_path / "true"
    assert run_cli("rfm", "curves", "--psi-p", 4, "--psi-n", 2, "--d", 10, "--features",
                   "true", "--noise-samples", 64, "--out", out) == 0
    assert json.loads((out / "timescales.json").read_text())["config"]["features"] == "true"


def test_rfm_train_writes_both_curves(tmp_path):
    out = tmp_path / "train"
    assert run_cli("rfm", "train", "--d", 10, "--psi-p", 4, "--psi-n", 2, "--steps", 60,
                   "--record", 10, "--noise-samples", 32, "--schedule", "cosine",
                   "--out", out) == 0
    training = pd.read_csv(out / "training.csv")
    closed = pd.read_csv(out / "curves.csv")
    assert training["step"].iloc[-1] == 60
    assert len(training) == len(closed)
    assert training["lr_factor"].iloc[-1] < 0.1  # the cosine shape has decayed
    assert "max_test_loss_deviation" in json.loads((out / "timescales.json").read_text())


def test_rfm_scaling_fits_and_resumes(tmp_path, capsys):
    out = tmp_path / "scaling"
    args = ["rfm", "scaling", "--psi-p", 32, "--psi-n", "2,4,8", "--t", 0.1, "--d", 20,
            "--seeds", 2, "--points", 150, "--out", out]
    assert run_cli(*args) == 0
    table = pd.read_csv(out / "scaling.csv")
    assert len(table) == 6
    fits = json.loads((out / "scaling.json").read_text())
    assert fits["tau_mem_exponent"]["exponent"] > 0.3
    assert fits["score_error_min_exponent"]["exponent"] < 0
    assert fits["tau_gen_spread"]["max_over_min"] < 2.0
    # A rerun reuses every saved point and reproduces the table.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "points").iterdir()}
    assert run_cli(*args) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "points").iterdir()} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "scaling.csv"), table)


@pytest.mark.parametrize("args,option", [
    (["rfm", "curves", "--psi-n", "0"], "--psi-n"),
    (["rfm", "curves", "--psi-n", "-2"], "--psi-n"),
    (["rfm", "curves", "--t", "0"], "--t"),
    (["rfm", "curves", "--t", "-0.1"], "--t"),
    (["rfm", "curves", "--activation", "relu", "--d", "10", "--psi-p", "2"], "--activation"),
    (["rfm", "curves", "--d", "3", "--psi-n", "0.1"], "--d"),
    (["rfm", "scaling", "--psi-n", "4,x"], "--psi-n"),
    (["rfm", "train", "--batch-size", "0"], "--batch-size"),
    (["rfm", "curves", "--sigma-levels", "0.5,1.5", "--sigma-weights", "0.3,0.3"],
     "--sigma-weights"),
    (["theory", "constants", "--t", "nan"], "--t"),
    (["rfm", "curves", "--d", "20", "--sigma-levels", "1,2,3", "--sigma-weights",
      "0.98,0.01,0.01"], "--d"),
    (["rfm", "curves", "--points", "1"], "--points"),
    (["rfm", "curves", "--d", "20", "--psi-p", "0.07"], "--d"),
    (["rfm", "scaling", "--d", "20", "--psi-n", "2,2.01"], "--psi-n"),
    (["rfm", "train", "--lr-fraction", "5"], "--lr-fraction"),
    (["rfm", "train", "--device", "no-such-device"], "--device"),
    (["rfm", "curves", "--seed", "-1"], "--seed"),
    (["rfm", "curves", "--ridge", "-1"], "--ridge"),
    (["rfm", "curves", "--d", "100000"], "--d"),
])
def test_bad_option_exits_with_its_name(args, option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*args, "--out", tmp_path)
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_output_path_that_is_a_file_is_rejected(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("")
    with pytest.raises(SystemExit):
        run_cli("rfm", "curves", "--d", 10, "--psi-p", 2, "--out", target)
    assert "--out" in capsys.readouterr().err


def test_rfm_train_divergence_names_stable_rate(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli("rfm", "train", "--d", 10, "--psi-p", 4, "--psi-n", 2, "--steps", 40,
                "--lr", 1e5, "--noise-samples", 8, "--out", tmp_path)
    err = capsys.readouterr().err
    assert "diverged" in err
    assert "stable below" in err


def test_scaling_recomputes_corrupt_points(tmp_path):
    out = tmp_path / "scaling"
    args = ["rfm", "scaling", "--psi-p", 8, "--psi-n", "2,4,8", "--d", 10, "--seeds", 1,
            "--points", 60, "--out", out]
    assert run_cli(*args) == 0
    table = pd.read_csv(out / "scaling.csv")
    (out / "points" / "psi_n=2_seed=0.json").write_text("[]")
    (out / "points" / "psi_n=4_seed=0.csv").write_text("tau,train_loss\n0,1\n")
    broken = json.loads((out / "points" / "psi_n=8_seed=0.json").read_text())
    broken["summary"]["tau_mem"] = "abc"
    (out / "points" / "psi_n=8_seed=0.json").write_text(json.dumps(broken))
    assert run_cli(*args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "scaling.csv"), table)
    assert len(pd.read_csv(out / "points" / "psi_n=4_seed=0.csv")) == 61


def test_result_files_follow_umask(tmp_path):
    import os

    out = tmp_path / "perm"
    old = os.umask(0o022)
    try:
        assert run_cli("theory", "constants", "--t", 0.1, "--out", out) == 0
    finally:
        os.umask(old)
    assert (out / "constants.json").stat().st_mode & 0o777 == 0o644
