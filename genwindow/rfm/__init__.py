"""Finite-size random-features score model (Bonnaire, Urfin, Biroli, Mézard 2025).

``instance`` samples W, X and the Gaussian-equivalent Ω; ``matrices`` builds U, V, Ũ, Ṽ;
``closed_form`` gives gradient-flow learning curves from one eigendecomposition;
``training`` trains A for real with fresh noise each step; ``timescales`` and ``bands``
read tau_gen, tau_mem and the per-band train–test gap off the curves.
"""
