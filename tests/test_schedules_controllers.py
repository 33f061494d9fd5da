"""Controllers: crossings, patience, hysteresis, stops, and exact resumption from state_dict."""

import json

import numpy as np
import pytest

from genwindow.errors import ConfigError
from genwindow.io import write_json
from genwindow.schedules import make_schedule
from genwindow.schedules.controllers import (FixedBudget, PlateauController,
                                             SizeAwareController, ThresholdController)
from genwindow.schedules.shapes import numeric_cumulative


def _drive(schedule, signal, metric="gen_gap"):
    """Feed ``signal[k]`` at every step k; return the list of (factor, stop) actions."""
    actions = []
    for step, value in enumerate(signal):
        action = schedule.update(step, {metric: value})
        actions.append((action.lr_factor, action.stop))
        if action.stop:
            break
    return actions


def test_threshold_decays_after_patience():
    ctrl = ThresholdController(decay_level=1.0, decay=0.1, patience=3)
    factors = [f for f, _ in _drive(ctrl, [0.5, 1.5, 1.5, 0.5, 1.5, 1.5, 1.5, 0.2])]
    # The dip at step 3 resets the count; decay comes at the third value in a row above 1.
    assert factors == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1]


def test_threshold_hysteresis_releases_only_below_margin():
    ctrl = ThresholdController(decay_level=1.0, decay=0.5, patience=1, hysteresis=0.3)
    factors = [f for f, _ in _drive(ctrl, [1.2, 0.9, 0.75, 0.6, 1.1])]
    # 0.9 and 0.75 lie inside the band [0.7, 1.0], so both keep the decay.
    assert factors == [0.5, 0.5, 0.5, 1.0, 0.5]
    assert [event for _, event in ctrl.events] == ["decay", "release", "decay"]


def test_threshold_without_hysteresis_never_releases():
    ctrl = ThresholdController(decay_level=1.0, decay=0.5, patience=1)
    factors = [f for f, _ in _drive(ctrl, [2.0, 0.0, 0.0])]
    assert factors == [0.5, 0.5, 0.5]


def test_threshold_stops_at_second_level():
    ctrl = ThresholdController(decay_level=1.0, stop_level=2.0, decay=0.1, patience=2)
    actions = _drive(ctrl, [1.5, 1.5, 2.5, 2.5, 2.5])
    assert actions[-1] == (0.1, True)
    assert len(actions) == 4


def test_threshold_smoothing_delays_crossing():
    signal = [0.0] * 3 + [2.0] * 10
    raw = ThresholdController(decay_level=1.0, patience=1)
    smooth = ThresholdController(decay_level=1.0, patience=1, smoothing=0.8)
    first_raw = [f for f, _ in _drive(raw, signal)].index(0.1)
    first_smooth = [f for f, _ in _drive(smooth, signal)].index(0.1)
    # s_k = 2 (1 − 0.8^(k−2)) after the jump at k = 3 exceeds 1 first at k − 2 = 4.
    assert first_raw == 3
    assert first_smooth == 6


def test_threshold_ignores_steps_without_metrics():
    ctrl = ThresholdController(decay_level=1.0, patience=2)
    assert ctrl.update(0, {"gen_gap": 2.0}).lr_factor == 1.0
    assert ctrl.update(1, {}).lr_factor == 1.0
    assert ctrl.update(2, {"other": 5.0}).lr_factor == 1.0
    assert ctrl.update(3, {"gen_gap": 2.0}).lr_factor == 0.1
    assert ctrl.last_measured_step == 3


def test_gap_threshold_defaults():
    ctrl = make_schedule("gap-threshold")
    assert (ctrl.metric, ctrl.decay_level, ctrl.stop_level, ctrl.patience) == (
        "rel_gap", 0.02, 0.04, 2)


def test_gap_threshold_derives_relative_gap():
    ctrl = make_schedule("gap-threshold:decay_level=0.1,stop_level=0.5,patience=1")
    assert ctrl.update(0, {"train_loss": 0.95, "test_loss": 1.0}).lr_factor == 1.0
    assert ctrl.update(1, {"train_loss": 0.8, "test_loss": 1.0}).lr_factor == 0.1


def test_plateau_reduces_and_stops():
    ctrl = PlateauController(metric="test_loss", factor=0.5, patience=2, min_factor=0.2,
                             stop=True)
    signal = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    actions = _drive(ctrl, signal, metric="test_loss")
    factors = [f for f, _ in actions]
    assert factors[:7] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert actions[-1][1] is True


def test_plateau_mode_max_and_threshold():
    ctrl = PlateauController(metric="acc", mode="max", factor=0.5, patience=1, threshold=0.1)
    factors = [f for f, _ in _drive(ctrl, [1.0, 1.05, 1.2], metric="acc")]
    # 1.05 is not 10% better than 1.0, so it counts as a plateau step.
    assert factors == [1.0, 0.5, 0.5]


def test_size_aware_onset_and_continuity():
    ctrl = SizeAwareController(c=2.0, alpha=1.0, kappa=0.5, decay=0.1, n=10.5)
    assert ctrl.onset == pytest.approx(10.5)
    totals = numeric_cumulative(ctrl, 30)
    # Ten full steps, half a step, then 0.1 per step.
    assert totals[10] == pytest.approx(10.0)
    assert totals[11] == pytest.approx(10.5 + 0.05)
    assert totals[30] == pytest.approx(10.55 + 19 * 0.1)


def test_size_aware_stop_lands_on_onset():
    ctrl = SizeAwareController(c=1.0, alpha=2.0, kappa=1.0, mode="stop", variable="psi_n",
                               psi_n=3.0, unit="tau", tau_per_step=2.0)
    totals = []
    T = 0.0
    for step in range(10):
        action = ctrl.update(step, {})
        T += action.lr_factor
        totals.append(T)
        if action.stop:
            break
    # tau_mem = 9, 4.5 steps at base rate: four full steps and a half step, then stop.
    assert step == 4
    assert T == pytest.approx(4.5)


def test_size_aware_reads_calibration_file(tmp_path):
    path = write_json(tmp_path / "cal.json", {"schedule": "size-aware", "params": {
        "c": 3.0, "alpha": 0.5, "kappa": 0.25, "decay": 0.0, "mode": "stop",
        "variable": "psi_n", "unit": "steps"}})
    ctrl = make_schedule(f"size-aware:calibration={path}", psi_n=16.0, n=1600)
    assert ctrl.onset == pytest.approx(0.25 * 3.0 * 4.0)
    override = make_schedule(f"size-aware:calibration={path},kappa=0.5", psi_n=16.0)
    assert override.onset == pytest.approx(6.0)
    with pytest.raises(ConfigError, match="not found"):
        make_schedule(f"size-aware:calibration={tmp_path / 'missing.json'}", psi_n=1.0)
    (tmp_path / "bad.json").write_text(json.dumps({"schedule": "other"}))
    with pytest.raises(ConfigError, match="does not hold a size-aware"):
        make_schedule(f"size-aware:calibration={tmp_path / 'bad.json'}", psi_n=1.0)


def test_size_aware_needs_size():
    with pytest.raises(ConfigError, match="needs the run's n"):
        make_schedule("size-aware:c=1")


def test_fixed_budget_stops_on_last_step():
    ctrl = make_schedule("fixed-budget:base=cosine", total_steps=5)
    actions = _drive(ctrl, [0.0] * 10)
    assert len(actions) == 5
    assert actions[-1][1] is True
    assert actions[0][0] == 1.0


def _noisy_gap(steps, seed=0):
    rng = np.random.default_rng(seed)
    return np.linspace(0.0, 3.0, steps) + 0.3 * rng.standard_normal(steps)


@pytest.mark.parametrize("spec, context", [
    ("threshold:decay_level=1.0,stop_level=2.5,smoothing=0.5,patience=2,hysteresis=0.2",
     {}),
    ("gap-threshold:metric=gen_gap,decay_level=0.8,stop_level=2.8,patience=3,hysteresis=0.1,"
     "base=cosine",
     {"total_steps": 200}),
    ("plateau:metric=gen_gap,mode=max,factor=0.5,patience=2,stop=true,min_factor=0.1", {}),
    ("size-aware:c=2,alpha=1,kappa=0.6,decay=0.2", {"n": 50}),
    ("fixed-budget:base=cosine", {"total_steps": 150}),
])
def test_resume_from_state_dict_gives_same_actions(spec, context):
    signal = _noisy_gap(200)
    metric_every = 3

    def metrics(step):
        return {"gen_gap": float(signal[step])} if step % metric_every == 0 else {}

    reference = make_schedule(spec, **context)
    expected = [reference.update(k, metrics(k)) for k in range(200)]

    first = make_schedule(spec, **context)
    actions = [first.update(k, metrics(k)) for k in range(77)]
    saved = json.loads(json.dumps(first.state_dict()))   # through JSON, as on disk
    resumed = make_schedule(spec, **context)
    resumed.load_state_dict(saved)
    actions += [resumed.update(k, metrics(k)) for k in range(77, 200)]
    assert actions == expected


def test_load_state_dict_rejects_other_kind():
    plateau = PlateauController()
    with pytest.raises(ConfigError, match="kind 'threshold'"):
        plateau.load_state_dict(ThresholdController().state_dict())
    budget = FixedBudget(10)
    with pytest.raises(ConfigError, match="same budget"):
        budget.load_state_dict(FixedBudget(20).state_dict())


@pytest.mark.parametrize("spec, message", [
    ("threshold:decay_level=1,stop_level=0.5", "stop_level must be ≥ decay_level"),
    ("threshold:smoothing=1", "smoothing must be < 1"),
    ("plateau:mode=up", "mode must be 'min' or 'max'"),
    ("size-aware:c=1,n=4,mode=halt", "mode must be 'decay' or 'stop'"),
    ("size-aware:c=1,psi_n=4,variable=psi_n,unit=tau", "needs tau_per_step"),
    ("gap-threshold:patience=0", "patience must be finite and ≥ 1"),
    ("fixed-budget", "needs total_steps"),
    ("plateau:base=plateau", "must name a learning-rate shape"),
])
def test_controllers_reject_bad_parameters(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_schedule(spec)
