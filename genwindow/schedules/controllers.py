"""Controllers: schedules that read monitor values and decay the learning rate or stop the run.

Each controller multiplies a base learning-rate shape (constant by default) by its own factor.
Monitor values arrive as a mapping from metric name to value, measured at the step passed to
``update``. Patience counts monitor evaluations, not steps, because a trainer measures only
every so many steps. ``state_dict`` stores everything that later actions depend on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

from genwindow.errors import ConfigError, require
from genwindow.schedules.base import Action, check_state, read_metric, require_finite
from genwindow.schedules.registry import make_schedule, register
from genwindow.schedules.shapes import Constant, Shape


def _base_shape(base: str | Shape | None, total_steps: int | None) -> Shape:
    if base is None:
        return Constant()
    if isinstance(base, Shape):
        return base
    shape = make_schedule(base, total_steps=total_steps)
    if not isinstance(shape, Shape):
        raise ConfigError(f"base={base!r} must name a learning-rate shape (constant, step, "
                          f"exponential, cosine, inverse-time), not a controller")
    return shape


class PlateauController:
    """Multiply the rate by ``factor`` when ``metric`` stops improving; optionally stop.

    An evaluation improves on the best value when it is better by more than ``threshold``
    times |best|. After ``patience`` evaluations in a row without improvement the factor is
    reduced, then ``cooldown`` evaluations are ignored. A reduction that would take the factor
    below ``min_factor`` stops the run when ``stop`` is true, and is skipped otherwise.
    """

    kind = "plateau"
    reads_metrics = True

    def __init__(self, metric: str = "test_loss", mode: str = "min", factor: float = 0.5,
                 patience: int = 3, threshold: float = 1e-4, cooldown: int = 0,
                 min_factor: float = 1e-3, stop: bool = False,
                 base: str | Shape | None = None, total_steps: int | None = None):
        require(mode in ("min", "max"), f"plateau mode must be 'min' or 'max', got {mode!r}")
        self.metric, self.mode = metric, mode
        self.factor = require_finite("factor", factor, 0.0, 1.0, low_open=True)
        self.patience = int(require_finite("patience", patience, 1))
        self.threshold = require_finite("threshold", threshold, 0.0)
        self.cooldown = int(require_finite("cooldown", cooldown, 0))
        self.min_factor = require_finite("min_factor", min_factor, 0.0, 1.0)
        self.stop = bool(stop)
        self.base = _base_shape(base, total_steps)
        self.best: float | None = None
        self.bad_evaluations = 0
        self.cooldown_left = 0
        self.lr_factor = 1.0
        self.stopped = False
        self.last_measured_step: int | None = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        margin = self.threshold * abs(self.best)
        return value < self.best - margin if self.mode == "min" else value > self.best + margin

    def update(self, step: int, metrics: Mapping[str, float]) -> Action:
        value = read_metric(metrics, self.metric)
        if value is not None and not self.stopped:
            self.last_measured_step = int(step)
            if self._improves(value):
                self.best, self.bad_evaluations = value, 0
            elif self.cooldown_left > 0:
                self.cooldown_left -= 1
            else:
                self.bad_evaluations += 1
            if self.bad_evaluations >= self.patience:
                self.bad_evaluations = 0
                self.cooldown_left = self.cooldown
                if self.lr_factor * self.factor >= self.min_factor:
                    self.lr_factor *= self.factor
                elif self.stop:
                    self.stopped = True
        return Action(self.base.factor(step) * self.lr_factor, stop=self.stopped)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "best": self.best, "bad_evaluations": self.bad_evaluations,
                "cooldown_left": self.cooldown_left, "lr_factor": self.lr_factor,
                "stopped": self.stopped, "last_measured_step": self.last_measured_step}

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.kind, ("best", "bad_evaluations", "cooldown_left",
                                       "lr_factor", "stopped"))
        self.best = state["best"]
        self.bad_evaluations = int(state["bad_evaluations"])
        self.cooldown_left = int(state["cooldown_left"])
        self.lr_factor = float(state["lr_factor"])
        self.stopped = bool(state["stopped"])
        self.last_measured_step = state.get("last_measured_step")


class ThresholdController:
    """Decay the rate when a memorization signal crosses ``decay_level``; stop at ``stop_level``.

    The signal is smoothed by an exponential moving average, s ← β s + (1 − β) x with
    β = ``smoothing`` (0: no smoothing). The rate drops to ``decay`` times its base once s
    has been above ``decay_level`` for ``patience`` evaluations in a row, and returns to the
    base rate once s has been below ``decay_level − hysteresis`` for ``patience`` evaluations
    (hysteresis = inf: never). The run stops once s has been above ``stop_level`` for
    ``patience`` evaluations.
    """

    kind = "threshold"
    reads_metrics = True

    def __init__(self, metric: str = "gen_gap", decay_level: float = 0.01,
                 stop_level: float = math.inf, decay: float = 0.1, smoothing: float = 0.0,
                 patience: int = 1, hysteresis: float = math.inf,
                 base: str | Shape | None = None, total_steps: int | None = None):
        self.metric = metric
        self.decay_level = require_finite("decay_level", decay_level)
        self.stop_level = float(stop_level)
        require(not math.isnan(self.stop_level) and self.stop_level >= self.decay_level,
                f"stop_level must be ≥ decay_level ({self.decay_level:g}) or inf, "
                f"got {stop_level!r}")
        self.decay = require_finite("decay", decay, 0.0, 1.0)
        self.smoothing = require_finite("smoothing", smoothing, 0.0, 1.0)
        require(self.smoothing < 1.0, "smoothing must be < 1 (1 would ignore every value)")
        self.patience = int(require_finite("patience", patience, 1))
        self.hysteresis = float(hysteresis)
        require(self.hysteresis >= 0, f"hysteresis must be ≥ 0 or inf, got {hysteresis!r}")
        self.base = _base_shape(base, total_steps)
        self.smoothed: float | None = None
        self.decayed = False
        self.stopped = False
        self.above_decay = 0     # evaluations in a row with s > decay_level
        self.below_release = 0   # evaluations in a row with s < decay_level − hysteresis
        self.above_stop = 0      # evaluations in a row with s > stop_level
        self.last_measured_step: int | None = None
        self.events: list[tuple[int, str]] = []

    def update(self, step: int, metrics: Mapping[str, float]) -> Action:
        value = read_metric(metrics, self.metric)
        if value is not None and not self.stopped:
            self._observe(int(step), value)
        factor = self.decay if self.decayed else 1.0
        return Action(self.base.factor(step) * factor, stop=self.stopped)

    def _observe(self, step: int, value: float) -> None:
        self.last_measured_step = step
        if self.smoothed is None:
            self.smoothed = value
        else:
            self.smoothed = self.smoothing * self.smoothed + (1.0 - self.smoothing) * value
        s = self.smoothed

        self.above_decay = self.above_decay + 1 if s > self.decay_level else 0
        self.below_release = self.below_release + 1 if s < self.decay_level - self.hysteresis \
            else 0
        self.above_stop = self.above_stop + 1 if s > self.stop_level else 0

        if not self.decayed and self.above_decay >= self.patience:
            self.decayed = True
            self.events.append((step, "decay"))
        elif self.decayed and self.below_release >= self.patience:
            self.decayed = False
            self.events.append((step, "release"))
        if self.above_stop >= self.patience:
            self.stopped = True
            self.events.append((step, "stop"))

    def state_dict(self) -> dict:
        return {"kind": self.kind, "smoothed": self.smoothed, "decayed": self.decayed,
                "stopped": self.stopped, "above_decay": self.above_decay,
                "below_release": self.below_release, "above_stop": self.above_stop,
                "last_measured_step": self.last_measured_step,
                "events": [list(event) for event in self.events]}

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.kind, ("smoothed", "decayed", "stopped", "above_decay",
                                       "below_release", "above_stop"))
        self.smoothed = state["smoothed"]
        self.decayed = bool(state["decayed"])
        self.stopped = bool(state["stopped"])
        self.above_decay = int(state["above_decay"])
        self.below_release = int(state["below_release"])
        self.above_stop = int(state["above_stop"])
        self.last_measured_step = state.get("last_measured_step")
        self.events = [(int(s), str(e)) for s, e in state.get("events", [])]


class SizeAwareController:
    """Decay the rate, or stop, once training time reaches κ · tau_mem(n).

    tau_mem(n) = c · n^α comes from a calibration; n is the training-set size (``variable``
    = "n") or ψ_n = n / d (``variable`` = "psi_n"). Training time is the controller's own
    cumulative factor T (in steps at the base rate) when ``unit`` is "steps", or T times
    ``tau_per_step`` when ``unit`` is "tau" (the RF model's τ per step at the base rate).
    After the onset the factor is ``decay`` (mode "decay") or the run stops (mode "stop").
    The step that crosses the onset is split: the part before the onset runs at the full
    rate, so T at the end of the run is a continuous function of κ.
    """

    kind = "size-aware"
    reads_metrics = False   # acts on its own elapsed training time only

    def __init__(self, c: float, alpha: float = 1.0, kappa: float = 0.5, decay: float = 0.1,
                 mode: str = "decay", variable: str = "n", unit: str = "steps",
                 n: float | None = None, psi_n: float | None = None,
                 tau_per_step: float | None = None,
                 base: str | Shape | None = None, total_steps: int | None = None):
        require(mode in ("decay", "stop"), f"size-aware mode must be 'decay' or 'stop', "
                                           f"got {mode!r}")
        require(variable in ("n", "psi_n"), f"size-aware variable must be 'n' or 'psi_n', "
                                            f"got {variable!r}")
        require(unit in ("steps", "tau"), f"size-aware unit must be 'steps' or 'tau', "
                                          f"got {unit!r}")
        self.c = require_finite("c", c, 0.0, low_open=True)
        self.alpha = require_finite("alpha", alpha)
        self.kappa = require_finite("kappa", kappa, 0.0)
        self.decay = require_finite("decay", decay, 0.0, 1.0)
        self.mode, self.variable, self.unit = mode, variable, unit
        size = n if variable == "n" else psi_n
        require(size is not None, f"size-aware with variable={variable} needs the run's "
                                  f"{variable}; pass {variable}=VALUE or give it in the context")
        self.size = require_finite(variable, size, 0.0, low_open=True)
        if unit == "tau":
            require(tau_per_step is not None, "size-aware with unit=tau needs tau_per_step "
                                              "(τ per step at the base learning rate)")
            self.time_per_step = require_finite("tau_per_step", tau_per_step, 0.0,
                                                low_open=True)
        else:
            self.time_per_step = 1.0
        self.base = _base_shape(base, total_steps)
        self.elapsed = 0.0   # T: cumulative factor so far, in steps at the base rate
        self.stopped = False

    @property
    def tau_mem(self) -> float:
        """tau_mem(n) = c n^α, in the calibration's unit."""
        return self.c * self.size**self.alpha

    @property
    def onset(self) -> float:
        """The onset κ · tau_mem(n) in steps at the base rate."""
        return self.kappa * self.tau_mem / self.time_per_step

    def update(self, step: int, metrics: Mapping[str, float]) -> Action:
        if self.stopped:
            return Action(0.0, stop=True)
        base = self.base.factor(step)
        before = min(max(self.onset - self.elapsed, 0.0), base)   # part of this step pre-onset
        if self.mode == "stop":
            factor = before
            self.stopped = self.elapsed + base >= self.onset
        else:
            factor = before + self.decay * (base - before)
        self.elapsed += factor
        return Action(factor, stop=self.stopped)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "elapsed": self.elapsed, "stopped": self.stopped,
                "onset": self.onset}

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.kind, ("elapsed", "stopped"))
        if "onset" in state and not math.isclose(state["onset"], self.onset, rel_tol=1e-12):
            raise ConfigError(f"size-aware state_dict has onset {state['onset']:g} but this "
                              f"controller's onset is {self.onset:g}; resume with the same "
                              f"calibration and n")
        self.elapsed = float(state["elapsed"])
        self.stopped = bool(state["stopped"])


class FixedBudget:
    """The baseline: a learning-rate shape that stops the run after ``total_steps`` steps."""

    kind = "fixed-budget"
    reads_metrics = False

    def __init__(self, total_steps: int, base: str | Shape | None = None):
        self.total_steps = int(require_finite("total_steps", total_steps, 1))
        self.base = _base_shape(base, self.total_steps)

    def update(self, step: int, metrics: Mapping[str, float]) -> Action:
        return Action(self.base.factor(step), stop=step >= self.total_steps - 1)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.kind, ("total_steps",))
        require(int(state["total_steps"]) == self.total_steps,
                f"fixed-budget state_dict has total_steps={state['total_steps']} but this "
                f"schedule has {self.total_steps}; resume with the same budget")


def load_calibration(path: str | Path) -> dict:
    """Read a calibration file written by ``genwindow calibrate`` and return its parameters."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"calibration file {str(path)!r} not found; write one with "
                          f"'genwindow calibrate' or pass c=...,alpha=... instead")
    except json.JSONDecodeError as error:
        raise ConfigError(f"calibration file {str(path)!r} is not valid JSON: {error}")
    params = record.get("params") if isinstance(record, dict) else None
    if record.get("schedule") != "size-aware" or not isinstance(params, dict):
        raise ConfigError(f"calibration file {str(path)!r} does not hold a size-aware "
                          f"calibration (expected keys 'schedule': 'size-aware' and 'params')")
    return params


# Registry entries. ``base`` names a learning-rate shape with its default parameters.

_THRESHOLD_PARAMS = {"metric": str, "decay_level": float, "stop_level": float, "decay": float,
                     "smoothing": float, "patience": int, "hysteresis": float, "base": str,
                     "total_steps": int}


@register("plateau", {"metric": str, "mode": str, "factor": float, "patience": int,
                      "threshold": float, "cooldown": int, "min_factor": float, "stop": bool,
                      "base": str, "total_steps": int},
          "decay by factor when metric stops improving", context=("total_steps",))
def _plateau(**kwargs):
    return PlateauController(**kwargs)


@register("threshold", _THRESHOLD_PARAMS,
          "decay at decay_level and stop at stop_level of any metric", context=("total_steps",))
def _threshold(**kwargs):
    return ThresholdController(**kwargs)


@register("gap-threshold", _THRESHOLD_PARAMS,
          "threshold on rel_gap = (test_loss − train_loss) / test_loss (decay at 0.02, "
          "stop at 0.04)",
          context=("total_steps",))
def _gap_threshold(metric: str = "rel_gap", decay_level: float = 0.02,
                   stop_level: float = 0.04, patience: int = 2, **kwargs):
    # Defaults for rel_gap, a fraction of the held-out loss: decay at 2%, stop at 4%.
    return ThresholdController(metric=metric, decay_level=decay_level, stop_level=stop_level,
                               patience=patience, **kwargs)


@register("fmem-threshold", _THRESHOLD_PARAMS, "threshold on f_mem",
          context=("total_steps",))
def _fmem_threshold(metric: str = "f_mem", decay_level: float = 0.01,
                    stop_level: float = 0.05, **kwargs):
    return ThresholdController(metric=metric, decay_level=decay_level, stop_level=stop_level,
                               **kwargs)


@register("size-aware", {"calibration": str, "c": float, "alpha": float, "kappa": float,
                         "decay": float, "mode": str, "variable": str, "unit": str,
                         "n": float, "psi_n": float, "tau_per_step": float, "base": str,
                         "total_steps": int},
          "decay or stop at kappa · c · n^alpha (calibration=PATH reads c, alpha, …)",
          context=("n", "psi_n", "tau_per_step", "total_steps"))
def _size_aware(calibration: str | None = None, **kwargs):
    params = load_calibration(calibration) if calibration else {}
    # Parameters in the spec override the calibration file; the run context fills the rest.
    merged = {**params, **kwargs}
    if "c" not in merged:
        raise ConfigError("size-aware needs c (tau_mem = c · n^alpha): pass "
                          "calibration=PATH or c=VALUE")
    return SizeAwareController(**merged)


@register("fixed-budget", {"total_steps": int, "base": str},
          "a shape that stops after total_steps", context=("total_steps",))
def _fixed_budget(total_steps: int | None = None, base: str | None = None):
    if total_steps is None:
        raise ConfigError("fixed-budget needs total_steps (or a run with a known length)")
    return FixedBudget(total_steps, base)
