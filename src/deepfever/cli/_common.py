"""What several commands share, so command modules never import each other.

Only light imports at the top: every command module imports this when ``deepfever --help`` builds
its parser, and that must not load numpy, pandas or torch.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from deepfever import defaults
from deepfever.defaults import DETECTOR

if TYPE_CHECKING:
    from deepfever.api import Extractor


def add_extractor_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that turns photos into vectors (model, detector, device, batch, backend, prior)."""
    parser.add_argument("--model", default=None,
                        help="packaged model name or .safetensors path (default: bundled model), or an exported .onnx file")
    parser.add_argument("--detector", default=DETECTOR, choices=("mtcnn", "yunet", "none"),
                        help=f"face detector (default {DETECTOR}); none treats each image as one face crop")
    parser.add_argument("--yunet-model", help="another YuNet .onnx file (default: the bundled one)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64, help="faces per model batch")
    parser.add_argument("--backend", default=defaults.BACKEND, choices=defaults.BACKENDS,
                        help="auto: ONNX Runtime on the CPU (fast start, same outputs), torch on a GPU; "
                             "--model FILE.int8.onnx is the fastest CPU path")
    parser.add_argument("--prior", type=prior_argument, default=None, metavar="{train,uniform,0..1}",
                        help="class prior of the probabilities: train (the training data's, for FER+-like data), uniform "
                             "(balanced classes) or a strength between them, e.g. 0.5 (default: the model's recorded one)")


def prior_argument(text: str) -> str | float:
    """``--prior`` as the one canonical prior value; a bad value is an argparse error naming the flag."""
    from deepfever.models.config import normalize_prior  # only when --prior is given

    try:
        return normalize_prior(text, "the value")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_extractor(args: argparse.Namespace, device: str | None = None) -> Extractor:
    """The extractor the arguments describe; ``device`` overrides ``--device`` (a process's own GPU under torchrun)."""
    from deepfever.api import Extractor
    from deepfever.models import DEFAULT_MODEL

    if args.detector == "yunet" and args.yunet_model and not Path(args.yunet_model).expanduser().is_file():
        raise FileNotFoundError(f"--yunet-model {args.yunet_model}: no such file; pass the path of OpenCV's "
                                "face_detection_yunet_*.onnx (from the opencv_zoo repository)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    options = {"model_path": args.yunet_model} if args.detector == "yunet" and args.yunet_model else None
    return Extractor(model=args.model or DEFAULT_MODEL, device=device or args.device, detector=args.detector,
                     detector_options=options, batch_size=args.batch_size, prior=args.prior, backend=args.backend)


def write_outputs(frame: Any, report: Any, output: Path) -> None:
    """An in-memory table and its failures file (``probe predict``); large runs use ``ExtractionRun``."""
    from deepfever.io.failures import failures_path_for, write_failures
    from deepfever.io.tables import write_table

    write_table(frame, output)
    write_failures(report.failures, failures_path_for(output))


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def add_verbosity_arguments(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-q/--quiet`` and ``-v/--verbose``; ``default=argparse.SUPPRESS`` on commands keeps a choice made before them."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="print only errors and the command's results: no logs, progress bars or 'wrote' lines")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also print debug logs, and the messages of the libraries underneath (OpenCV, FAISS...)")


@contextlib.contextmanager
def output_level(args: argparse.Namespace) -> Iterator[None]:
    """Run a command at the verbosity its flags ask for, and put everything back after (``main`` may run in-process).

    By default deepfever logs its own INFO messages; other libraries speak only when something is
    wrong (WARNING and up): FAISS's INFO lines about CPU features it probes, OpenCV's notices and
    warnings that a user cannot act on stay hidden. ``--verbose`` shows everything, ``--quiet`` only errors.
    """
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    ours = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    others = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    root, package = logging.getLogger(), logging.getLogger("deepfever")
    saved = root.level, package.level, os.environ.get("OPENCV_LOG_LEVEL")
    logging.basicConfig(format=LOG_FORMAT)  # a no-op where logging is set up already (an embedding program, pytest)
    root.setLevel(others)
    package.setLevel(ours)
    if not verbose and saved[2] is None:
        os.environ["OPENCV_LOG_LEVEL"] = "ERROR"  # read when OpenCV first logs; its DNN notices are not the user's to fix
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(saved[0])
        package.setLevel(saved[1])
        if saved[2] is None:
            os.environ.pop("OPENCV_LOG_LEVEL", None)


def progress_disabled(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable``: off with ``--quiet``, else shown only on a terminal (None)."""
    return True if getattr(args, "quiet", False) else None


def status(args: argparse.Namespace, message: str, stderr: bool = False) -> None:
    """A line about what a command did (what it wrote, a run's summary); ``--quiet`` drops it.

    A command's results (search hits, scores) are printed with ``print``: they are what was asked for.
    """
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr if stderr else sys.stdout)
