"""What several commands share, so command modules never import each other.

Only light imports at the top: every command module imports this when ``deepfever --help`` builds
its parser, and that must not load numpy, pandas or torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfever.defaults import DETECTOR

if TYPE_CHECKING:
    from deepfever.api import Extractor


def add_extractor_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that turns photos into vectors (model, detector, device, batch, backend, prior)."""
    parser.add_argument("--model", default=None,
                        help="packaged model name or .safetensors path (default: bundled model); .onnx with --backend onnxruntime")
    parser.add_argument("--detector", default=DETECTOR, choices=("mtcnn", "yunet", "none"),
                        help=f"face detector (default {DETECTOR}); none treats each image as one face crop")
    parser.add_argument("--yunet-model", help="another YuNet .onnx file (default: the bundled one)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64, help="faces per model batch")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                        help="run the model in torch or ONNX Runtime (the onnx extra; --model FILE.int8.onnx is the fast CPU path)")
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
    """An in-memory table and its failures file (``probe predict``, ``demo``); large runs use ``ExtractionRun``."""
    from deepfever.io.failures import failures_path_for, write_failures
    from deepfever.io.tables import write_table

    write_table(frame, output)
    write_failures(report.failures, failures_path_for(output))
