"""The ``genwindow`` command line: one sub-command per area, registered by its own module.

Each module listed in ``COMMAND_MODULES`` defines ``register(subparsers)``, which adds one
top-level command whose handlers take the parsed arguments. Heavy imports (JAX, PyTorch)
happen inside the handlers, so ``genwindow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from genwindow import __version__
from genwindow.errors import ConfigError

COMMAND_MODULES = (
    "genwindow.theory.commands",
    "genwindow.rfm.commands",
    "genwindow.schedules.commands",
    "genwindow.unet.commands",
    "genwindow.unet.gmm_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genwindow",
        description="Generalization and memorization timescales of diffusion models.",
    )
    parser.add_argument("--version", action="version", version=f"genwindow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except ConfigError as error:
        parser.exit(2, f"genwindow: error: {error}\n")
    except KeyboardInterrupt:
        print("genwindow: interrupted; finished results are on disk, rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
