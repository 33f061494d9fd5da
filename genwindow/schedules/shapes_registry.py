"""Registry entries for the learning-rate shapes; each also takes ``warmup=W``."""

from __future__ import annotations

from genwindow.schedules import shapes
from genwindow.schedules.registry import register


def _with_warmup(shape: shapes.Shape, warmup: int) -> shapes.Shape:
    return shapes.Warmup(shape, warmup) if warmup else shape


@register("constant", {"value": float, "warmup": int}, "η = value")
def _constant(value: float = 1.0, warmup: int = 0):
    return _with_warmup(shapes.Constant(value), warmup)


@register("step", {"step_size": int, "gamma": float, "warmup": int},
          "η = gamma^floor(step / step_size)")
def _step(step_size: int = 1000, gamma: float = 0.1, warmup: int = 0):
    return _with_warmup(shapes.StepDecay(step_size, gamma), warmup)


@register("exponential", {"gamma": float, "warmup": int}, "η = gamma^step")
def _exponential(gamma: float = 0.999, warmup: int = 0):
    return _with_warmup(shapes.Exponential(gamma), warmup)


@register("cosine", {"total_steps": int, "min_factor": float, "warmup": int},
          "half-cosine from 1 to min_factor over total_steps (default: the run's length)",
          context=("total_steps",))
def _cosine(total_steps: int = 1000, min_factor: float = 0.0, warmup: int = 0):
    # The cosine ends with the run: a warm-up shortens the cosine part by its own length.
    return _with_warmup(shapes.Cosine(max(total_steps - warmup, 1), min_factor), warmup)


@register("inverse-time", {"s0": float, "warmup": int}, "η = 1 / (1 + step / s0)")
def _inverse_time(s0: float = 1000.0, warmup: int = 0):
    return _with_warmup(shapes.InverseTime(s0), warmup)
