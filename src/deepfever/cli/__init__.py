"""The ``deepfever`` command: one sub-command per module in this package.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. Modules import heavy libraries inside their handlers so that
``deepfever --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from deepfever._version import __version__
from deepfever.cli._common import add_verbosity_arguments, output_level
from deepfever.errors import DeepFeverError, HeadUnavailableError, WeightsUnavailableError, for_command_line

COMMAND_MODULES = ("demo", "extract", "train", "evaluate", "probe", "data", "compare", "index", "plot", "benchmark", "merge", "serve", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfever", description="Faces in, expression vectors out.")
    parser.add_argument("--version", action="version", version=f"deepfever {__version__}")
    add_verbosity_arguments(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"deepfever.cli.{name}").register(subparsers)
    for command in _commands(parser):
        add_verbosity_arguments(command, default=argparse.SUPPRESS)  # `deepfever -q extract` and `deepfever extract -q` alike
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` that runs something (``extract``, ``index build``...), however deeply nested."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += _commands(child) or [child]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (defaults to ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    with output_level(args):
        try:
            return int(args.handler(args) or 0)
        except (DeepFeverError, FileExistsError, FileNotFoundError, PermissionError, ValueError) as error:
            # Errors the package raises on purpose (and refused inputs): one line, the flag to change, exit 2.
            # Anything else is a bug and keeps its traceback.
            hint = _flag_hint(error)
            message = " ".join(for_command_line(error).split())  # one line, flags named, whatever the message's layout
            print(f"deepfever {args.command}: error: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr)
            return 2


def _flag_hint(error: BaseException) -> str:
    """The command-line option behind an error the library words for Python callers."""
    from deepfever.evaluation.classifier_io import ClassifierFileError, FingerprintMismatchError
    from deepfever.models.checkpoint import ModelFileError

    if isinstance(error, ModelFileError):
        return "pass --model NAME or --model FILE.safetensors with its .json beside it"
    if isinstance(error, (ClassifierFileError, FingerprintMismatchError)):
        return "pass the classifier written by `deepfever probe fit -o NAME`"
    if isinstance(error, WeightsUnavailableError):
        return "or pass --detector yunet (bundled, works offline), or --detector none for face crops"
    if isinstance(error, HeadUnavailableError):
        return "pass --model with a model trained with that head"
    return ""
