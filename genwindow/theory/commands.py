"""``genwindow theory ...``: closed-form quantities that need no sampling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genwindow.cli_options import positive_float


def register(subparsers) -> None:
    theory = subparsers.add_parser("theory", help="closed-form theory of the random-features model")
    commands = theory.add_subparsers(dest="theory_command", metavar="SUBCOMMAND", required=True)

    constants = commands.add_parser(
        "constants", help="Gaussian-equivalence constants at one diffusion time",
        description="Print the Gaussian-equivalence constants (Gauss–Hermite quadrature) as JSON.")
    constants.add_argument("--t", type=positive_float("--t"), required=True,
                           help="diffusion time t (> 0, the forward process's own unit)")
    constants.add_argument("--activation", default="tanh",
                           help="odd activation σ: tanh, erf, sin or arctan (default tanh)")
    constants.add_argument("--sigma-x", type=positive_float("--sigma-x"), default=1.0,
                           help="data standard deviation σ_x, so Tr Σ / d = σ_x² (default 1)")
    constants.add_argument("--out", type=Path, default=None,
                           help="folder to also write constants.json into (default: print only)")
    constants.set_defaults(func=run_constants)


def run_constants(args: argparse.Namespace) -> int:
    from genwindow.io import write_json
    from genwindow.theory.constants import ge_constants

    values = ge_constants(args.t, args.sigma_x**2, args.activation).as_dict()
    values.pop("t")
    print(json.dumps(values, indent=2))
    if args.out is not None:
        write_json(args.out / "constants.json", {"t": args.t, "activation": args.activation,
                                                 "sigma_x": args.sigma_x, **values})
    return 0
