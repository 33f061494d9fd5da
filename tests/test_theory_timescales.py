"""tau_gen and tau_mem: closed forms, limits, JAX gradients, exact spectrum, commands."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from genwindow.cli import main
from genwindow.theory.constants import ge_constants
from genwindow.theory.spectrum import spectrum_model
from genwindow.theory.spectrum_asymptotic import population_spectrum, rho1_edges
from genwindow.theory.timescales import (
    exact_timescales, lambda_min, tau_gen, tau_gen_rho2, tau_mem, timescale_table)

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402  (after enabling float64)

TWO_LEVELS = ((0.5, 1.5), (0.5, 0.5))


@pytest.mark.parametrize("levels,weights", [((1.0,), (1.0,)), TWO_LEVELS])
def test_tau_mem_uses_rho1_left_edge(levels, weights):
    model = spectrum_model(64.0, 8.0, 0.1, levels, weights)
    edge = rho1_edges(model)[0]
    delta = model.constants.Delta_t
    assert lambda_min(64.0, 8.0, 0.1, levels, weights) == pytest.approx(edge, rel=1e-13)
    assert tau_mem(64.0, 8.0, 0.1, levels, weights) == pytest.approx(64.0 / (delta * edge),
                                                                     rel=1e-13)


@pytest.mark.parametrize("levels,weights", [((1.0,), (1.0,)), TWO_LEVELS])
def test_tau_gen_averages_rho2_population(levels, weights):
    model = spectrum_model(64.0, 8.0, 0.1, levels, weights)
    atoms, atom_weights = population_spectrum(model)
    expected = 64.0 / model.constants.Delta_t * np.sum(atom_weights[1:] * 64.0 / atoms[1:])
    assert tau_gen(64.0, 8.0, 0.1, levels, weights) == pytest.approx(expected, rel=1e-12)


def test_tau_gen_identity_limit():
    c = ge_constants(0.1)
    values = tau_gen(np.array([1e2, 1e4, 1e6]), 8.0, 0.1) * c.Delta_t * c.mu1**2
    errors = np.abs(values - 1.0)
    assert np.all(np.diff(errors) < 0)
    assert errors[-1] < 1e-6
    # The correction is (s_t² + v_t²) / (ψ_p µ1²) to first order.
    assert errors[0] == pytest.approx((c.s_t2 + c.v_t2) / (1e2 * c.mu1**2), rel=0.02)


def test_tau_gen_does_not_depend_on_n():
    values = tau_gen(64.0, np.array([1.0, 4.0, 32.0]), 0.1)
    assert np.ptp(values) == 0.0


def test_tau_mem_linear_in_n():
    c = ge_constants(0.05)
    psi_n = np.array([4.0, 8.0, 16.0])
    values = tau_mem(1e9, psi_n, 0.05)
    # Relative correction 2 sqrt(ψ_n/ψ_p) ≤ 2.6e-4 here.
    np.testing.assert_allclose(values, psi_n / (c.Delta_t * c.v_t2), rtol=5e-4)


def test_timescales_broadcast_over_arrays():
    psi_n = np.array([2.0, 4.0, 8.0])[:, None]
    t = np.array([0.01, 0.1])
    assert tau_mem(64.0, psi_n, t).shape == (3, 2)
    assert tau_gen(64.0, psi_n, t).shape == (3, 2)
    np.testing.assert_allclose(tau_mem(64.0, psi_n, t)[1, 0], tau_mem(64.0, 4.0, 0.01),
                               rtol=1e-14)


@pytest.mark.parametrize("function", [tau_gen, tau_mem])
@pytest.mark.parametrize("levels,weights", [((1.0,), (1.0,)), TWO_LEVELS])
def test_jax_gradients_match_finite_differences(function, levels, weights):
    point = {"psi_p": 64.0, "psi_n": 8.0, "t": 0.1}

    def value(psi_p, psi_n, t, xp):
        return function(psi_p, psi_n, t, levels, weights, xp=xp)

    grads = jax.grad(lambda *a: value(*a, jnp), argnums=(0, 1, 2))(*point.values())
    for index, name in enumerate(point):
        step = 1e-5 * point[name]
        up, down = dict(point), dict(point)
        up[name] += step
        down[name] -= step
        numeric = (value(*up.values(), np) - value(*down.values(), np)) / (2 * step)
        assert float(grads[index]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9), name


def test_jax_values_match_numpy_under_jit():
    psi_n = jnp.array([2.0, 8.0, 32.0])
    jitted = jax.jit(lambda pn: tau_mem(64.0, pn, 0.1, xp=jnp))
    np.testing.assert_allclose(np.asarray(jitted(psi_n)), tau_mem(64.0, np.asarray(psi_n), 0.1),
                               rtol=1e-13)


def test_exact_timescales_approach_formulas_at_large_ratios():
    gaps = []
    for scale in (1, 16):
        psi_p, psi_n = 64.0 * scale, 8.0 * scale
        exact = exact_timescales(psi_p, psi_n, 0.1)
        gaps.append([abs(exact["tau_mem_exact"] / tau_mem(psi_p, psi_n, 0.1) - 1),
                     abs(exact["tau_gen_exact"] / tau_gen(psi_p, psi_n, 0.1) - 1)])
        # The group below the first bulk relaxes slower than tau_mem (reported apart).
        assert exact["lambda_small_exact"] < exact["lambda_min_exact"]
    assert np.all(np.array(gaps[1]) < np.array(gaps[0]))
    assert gaps[1][0] < 0.02


@pytest.mark.parametrize("psi_n", [8.0, 32.0])
def test_tau_gen_rho2_includes_data_spread(psi_n):
    exact = exact_timescales(64.0, psi_n, 0.01)
    value = tau_gen_rho2(64.0, psi_n, 0.01)
    assert value == pytest.approx(exact["tau_gen_exact"], rel=0.03)
    assert value / tau_gen(64.0, psi_n, 0.01) == pytest.approx(1 / (1 - 1 / psi_n), rel=0.03)


def test_timescale_table_rows_and_ratio():
    table = timescale_table(64.0, [2.0, 8.0], [0.01, 0.1])
    assert len(table) == 4
    np.testing.assert_allclose(table["ratio"], table["tau_mem"] / table["tau_gen"])
    row = table[(table.psi_n == 8.0) & (table.t == 0.1)].iloc[0]
    assert row["tau_mem"] == pytest.approx(float(tau_mem(64.0, 8.0, 0.1)))


def test_timescales_command_writes_table(tmp_path, capsys):
    code = main(["theory", "timescales", "--psi-p", "64", "--psi-n", "1,2,4,8,16,32",
                 "--t", "0.01,0.1", "--out", str(tmp_path)])
    assert code == 0
    table = pd.read_csv(tmp_path / "timescales.csv")
    assert len(table) == 12
    assert {"tau_gen", "tau_mem", "ratio"} <= set(table.columns)
    assert "tau_mem" in capsys.readouterr().out


def test_spectrum_command_writes_outputs(tmp_path):
    code = main(["theory", "spectrum", "--psi-p", "16", "--psi-n", "4", "--t", "0.1",
                 "--d", "20", "--points", "800", "--out", str(tmp_path)])
    assert code == 0
    frame = pd.read_csv(tmp_path / "spectrum.csv")
    assert list(frame.columns) == ["lambda", "density"]
    leading = pd.read_csv(tmp_path / "spectrum_theorem_3_2.csv")
    assert leading["density"].max() > 0
    assert np.all(frame["density"] >= 0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["delta_peak_weight"] == pytest.approx(1 - 5 / 16)
    masses = [b["mass"] for b in summary["bulks"]]
    assert summary["delta_peak_weight"] + sum(masses) == pytest.approx(1.0, abs=1e-9)
    assert summary["finite_size"]["delta_count"] == 320 - 80 - 20
    # At this size the group of d eigenvalues below ρ1 joins the first bulk: n and d.
    assert [b["count"] for b in summary["finite_size"]["bulks"]] == [80, 20]
    assert summary["theorem_3_2"]["rho2_supports"]
    assert (tmp_path / "spectrum.png").stat().st_size > 10_000


def test_spectrum_command_two_level_sigma(tmp_path):
    code = main(["theory", "spectrum", "--psi-p", "64", "--psi-n", "8", "--t", "0.01",
                 "--sigma-levels", "0.5,1.5", "--sigma-weights", "0.5,0.5",
                 "--points", "800", "--out", str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [b["label"] for b in summary["bulks"]].count("second") == 2


@pytest.mark.parametrize("argv,option", [
    (["--psi-p", "0", "--psi-n", "4", "--t", "0.1"], "--psi-p"),
    (["--psi-p", "16", "--psi-n", "4", "--t", "-1"], "--t"),
    (["--psi-p", "16", "--psi-n", "4", "--t", "0.1", "--sigma-weights", "0.5,0.5"],
     "--sigma-weights"),
    (["--psi-p", "16", "--psi-n", "4", "--t", "0.1", "--sigma-levels", "1,x"],
     "--sigma-levels"),
    (["--psi-p", "16", "--psi-n", "4", "--t", "0.1", "--d", "0"], "--d"),
])
def test_spectrum_command_rejects_bad_values(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as error:
        main(["theory", "spectrum", *argv, "--out", str(tmp_path)])
    assert error.value.code == 2
    assert option in capsys.readouterr().err


def test_timescales_command_rejects_bad_psi_n(capsys):
    with pytest.raises(SystemExit) as error:
        main(["theory", "timescales", "--psi-p", "64", "--psi-n", "1,-2", "--t", "0.1"])
    assert error.value.code == 2
    assert "--psi-n" in capsys.readouterr().err
