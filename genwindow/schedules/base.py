"""The contract shared by every learning-rate shape and controller.

A schedule is called once per optimizer step, before the step, with the monitor values
measured at that step (an empty mapping on steps without fresh values). It returns an
``Action``: the factor that multiplies the base learning rate for this step, and whether the
run should stop after it. Every schedule keeps its state in a JSON-serialisable dict, so a
resumed run continues with exactly the actions it would have taken.

Training time under a schedule is the cumulative factor T(step) = Σ_{k < step} lr_factor(k),
in units of steps at the base learning rate; T(0) = 0.

A schedule may set the class attribute ``reads_metrics = False`` when its actions never
depend on the monitor values, so that a caller can skip repeating it over noise draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

from genwindow.errors import ConfigError

METRIC_NAMES = ("train_loss", "test_loss", "gen_gap", "score_error", "f_mem")
"""Metric names used across the project; ``rel_gap`` is derived, see ``read_metric``."""


@dataclass(frozen=True)
class Action:
    """The request a schedule makes of the trainer for one optimizer step."""

    lr_factor: float = 1.0  # multiplies the base learning rate at this step
    stop: bool = False      # True: the run should stop after this step


@runtime_checkable
class Schedule(Protocol):
    """A learning-rate shape or a monitor-driven controller."""

    def update(self, step: int, metrics: Mapping[str, float]) -> Action: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def read_metric(metrics: Mapping[str, float], name: str) -> float | None:
    """Return metric ``name`` from ``metrics``, or None when it was not measured.

    Two names are derived when absent: ``gen_gap`` = test_loss − train_loss, and
    ``rel_gap`` = gen_gap / test_loss (the gap as a fraction of the held-out loss, which
    does not depend on the scale of the loss).
    """
    if name in metrics:
        return float(metrics[name])
    if name == "gen_gap" and "test_loss" in metrics and "train_loss" in metrics:
        return float(metrics["test_loss"]) - float(metrics["train_loss"])
    if name == "rel_gap":
        gap = read_metric(metrics, "gen_gap")
        test = metrics.get("test_loss")
        if gap is not None and test is not None and float(test) != 0.0:
            return gap / float(test)
    return None


def check_state(state: dict, kind: str, keys: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``state`` was saved by a schedule of ``kind`` with ``keys``."""
    if state.get("kind") != kind:
        raise ConfigError(f"cannot load a state_dict of kind {state.get('kind')!r} into a "
                          f"{kind!r} schedule; resume with the schedule that saved it")
    missing = [key for key in keys if key not in state]
    if missing:
        raise ConfigError(f"state_dict for {kind!r} lacks {', '.join(missing)}; it was "
                          f"saved by another version of the schedule")


def require_finite(name: str, value: float, low: float = -math.inf,
                   high: float = math.inf, low_open: bool = False) -> float:
    """Return ``value`` as float, or raise ConfigError naming parameter ``name``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"schedule parameter {name} must be a number, got {value!r}")
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        bound = f"{'>' if low_open else '≥'} {low:g}" if math.isfinite(low) else ""
        upper = f"≤ {high:g}" if math.isfinite(high) else ""
        limits = " and ".join(b for b in (bound, upper) if b)
        raise ConfigError(f"schedule parameter {name} must be finite{' and ' if limits else ''}"
                          f"{limits}, got {value!r}")
    return value
