"""``deepfever extract``: every face in images, folders or globs -> a table of vectors and emotions.

The CLI parses and reports; the run itself (chunks, lock, resume, merge) is ``deepfever.extraction.ExtractionRun``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deepfever.extraction.run import DEFAULT_CHUNK_SIZE
from deepfever.faces.detect import DEFAULT_DETECTOR  # every command that reads photos detects faces with it unless told


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="expression vectors and emotions for every face in the inputs")
    parser.add_argument("inputs", nargs="+", help="image or video files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output", required=True, help="OUT.parquet, OUT.csv, OUT.jsonl or OUT.npz")
    add_extractor_arguments(parser)
    parser.add_argument("--annotate-dir", help="also write each image with boxes and emotions into this folder "
                                                   "(mirroring the inputs' relative paths)")
    parser.add_argument("--fps", type=float, default=None, help="videos: frames per second to process (default: every frame)")
    parser.add_argument("--smooth", type=float, default=0.0,
                        help="videos: moving-average weight in [0, 1) per track, written beside the raw values as p_*_smooth")
    parser.add_argument("--save-crops", metavar="DIR",
                        help="also write each image face's aligned crop (the input of Extractor.embed) as "
                             "DIR/<relative path>/<stem>.face<k>.png")
    parser.add_argument("--annotate-video-dir", help="videos: write an annotated copy (boxes, track id, emotion) into this folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its chunks in OUT.parts/ (inputs changed since are redone); "
                             "every run works in chunks there, and keeps them with --resume, --chunk-size or torchrun")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"inputs per saved chunk (default {DEFAULT_CHUNK_SIZE}); implies chunked work in OUT.parts/")
    parser.set_defaults(handler=run)


def add_extractor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="packaged model name or .safetensors path (default: bundled model); .onnx with --backend onnxruntime")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=("mtcnn", "yunet", "none"),
                        help=f"face detector (default {DEFAULT_DETECTOR}); none treats each image as one face crop")
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
    from deepfever.models.config import normalize_prior  # imports torch: only when --prior is given

    try:
        return normalize_prior(text, "the value")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_extractor(args: argparse.Namespace, device: str | None = None):
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


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepfever.extraction.run import ExtractionRun, failures_path_for

    output = Path(args.output)
    extraction = ExtractionRun(build_extractor(args), output, fps=args.fps, smoothing=args.smooth, chunk_size=args.chunk_size,
                               resume=args.resume, overwrite=args.overwrite, annotate_dir=args.annotate_dir,
                               annotate_video_dir=args.annotate_video_dir, save_crops=args.save_crops)
    files = extraction.plan(args.inputs)
    shared = int(os.environ.get("WORLD_SIZE", 1)) > 1  # under torchrun each process sees its own share only
    with tqdm(total=None if shared else len(files), unit="file", file=sys.stderr, disable=None) as bar:
        report = extraction.run(files, progress=bar.update)
    if int(os.environ.get("RANK", 0)) != 0:  # a torchrun rank whose share is done; rank 0 writes the output
        return 0
    print(f"deepfever extract: {report.summary()}", file=sys.stderr)
    print(f"wrote {output} and {failures_path_for(output)} ({len(report.failures)} failures)")
    return 0 if report.processed else 1


def write_outputs(frame, report, output: Path) -> None:
    """An in-memory table and its failures file (``probe predict``, ``demo``); large runs use ``ExtractionRun``."""
    from deepfever.extraction.run import write_failures
    from deepfever.io.tables import write_table

    write_table(frame, output)
    write_failures(report.failures, output)
