"""Closed forms of the random-features score model (Bonnaire, Urfin, Biroli, Mézard 2025).

Everything here is pure and float64: no I/O, no plots, no sampling.
"""

from genwindow.theory.constants import ACTIVATIONS, GEConstants, ge_constants
from genwindow.theory.time import steps_to_tau, tau_to_steps

__all__ = ["ACTIVATIONS", "GEConstants", "ge_constants", "steps_to_tau", "tau_to_steps"]
