"""Argument types shared by the sub-commands.

Each message names the option, the rule and the value, so it reads the same wherever it
is shown.
"""

from __future__ import annotations

import argparse
import math


def positive_float(option: str):
    """Return an argparse type that accepts a finite float > 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{option} must be a finite number, got {text}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{option} must be positive, got {text}")
        return value
    return parse


def nonnegative_float(option: str):
    """Return an argparse type that accepts a finite float ≥ 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}")
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{option} must be a finite number ≥ 0, got {text}")
        return value
    return parse


def fraction(option: str):
    """Return an argparse type that accepts a float in the open interval (0, 1)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}")
        if not (0 < value < 1):
            raise argparse.ArgumentTypeError(
                f"{option} must lie strictly between 0 and 1, got {text}")
        return value
    return parse


def positive_int(option: str, minimum: int = 1):
    """Return an argparse type that accepts an integer ≥ ``minimum`` (default 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be at least {minimum}, got {text}")
        return value
    return parse


def nonnegative_int(option: str):
    """Return an argparse type that accepts an integer ≥ 0 (seeds)."""
    return positive_int(option, minimum=0)


def float_list(option: str, positive: bool = True):
    """Return an argparse type for a comma-separated list of floats (e.g. ``4,8,16``)."""
    def parse(text: str) -> list[float]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{option} needs at least one value, got {text!r}")
        values = []
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{option} must be comma-separated numbers, got {part!r} in {text!r}")
            if not math.isfinite(value) or (positive and value <= 0):
                raise argparse.ArgumentTypeError(f"{option} values must be positive, got {part}")
            values.append(value)
        return values
    return parse


def int_list(option: str, minimum: int = 0):
    """Return an argparse type for a comma-separated list of integers ≥ ``minimum``."""
    def parse(text: str) -> list[int]:
        try:
            values = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be comma-separated integers, got {text!r}")
        if not values or min(values) < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be integers ≥ {minimum}, "
                                             f"got {text!r}")
        return values
    return parse
