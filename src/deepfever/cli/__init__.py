"""The ``deepfever`` command: one sub-command per module in this package.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. Modules import heavy libraries inside their handlers so that
``deepfever --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from deepfever._version import __version__

COMMAND_MODULES = ("demo", "extract", "train", "evaluate", "probe", "data", "compare", "index", "plot", "benchmark", "merge", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfever", description="Faces in, expression vectors out.")
    parser.add_argument("--version", action="version", version=f"deepfever {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"deepfever.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (defaults to ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"deepfever {args.command}: error: {error}", file=sys.stderr)
        return 2
