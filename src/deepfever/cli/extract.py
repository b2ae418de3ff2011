"""``deepfever extract``: every face in images, folders or globs -> a table of vectors and emotions.

The CLI parses and reports; the run itself (chunks, lock, resume, merge) is ``deepfever.extraction.ExtractionRun``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deepfever.cli._common import add_extractor_arguments, build_extractor, progress_disabled, status
from deepfever.cli._extract_ray import add_ray_arguments, run_ray
from deepfever.defaults import CHUNK_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="expression vectors and emotions for every face in the inputs")
    parser.add_argument("inputs", nargs="+", help="image or video files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output", required=True, help="OUT.parquet, OUT.csv, OUT.jsonl or OUT.npz (--engine ray: a dataset folder)")
    add_extractor_arguments(parser)
    parser.add_argument("--annotate-dir", help="also write each image with boxes and emotions into this folder "
                                                   "(mirroring the inputs' relative paths)")
    parser.add_argument("--fps", type=float, default=None, help="videos: frames per second to process (default: every frame)")
    parser.add_argument("--smooth", type=float, default=0.0,
                        help="videos: exponential smoothing weight S in [0, 1) per track, p_smooth = S * previous + (1 - S) * p at "
                             "each processed frame, so its lag depends on --fps (a change shows half-way after "
                             "ceil(ln 2 / ln(1/S)) frames: 2 for S = 0.6); written beside the raw values as p_*_smooth (default 0: off)")
    parser.add_argument("--save-crops", metavar="DIR",
                        help="also write each image face's aligned crop (the input of Extractor.embed) as "
                             "DIR/<relative path>/<stem>.face<k>.png")
    parser.add_argument("--annotate-video-dir", help="videos: write an annotated copy (boxes, track id, emotion) into this folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its chunks in OUT.parts/ (inputs changed since are redone); "
                             "every run works in chunks there, and keeps them with --resume, --chunk-size or torchrun")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"inputs per saved chunk (default {CHUNK_SIZE}); implies chunked work in OUT.parts/")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepfever.extraction.run import ExtractionRun
    from deepfever.io.failures import failures_path_for

    if args.engine == "ray":
        return run_ray(args)
    output = Path(args.output)
    extraction = ExtractionRun(build_extractor(args), output, fps=args.fps, smoothing=args.smooth, chunk_size=args.chunk_size,
                               resume=args.resume, overwrite=args.overwrite, annotate_dir=args.annotate_dir,
                               annotate_video_dir=args.annotate_video_dir, save_crops=args.save_crops)
    files = extraction.plan(args.inputs)
    shared = int(os.environ.get("WORLD_SIZE", 1)) > 1  # under torchrun each process sees its own share only
    with tqdm(total=None if shared else len(files), unit="file", file=sys.stderr, disable=progress_disabled(args)) as bar:
        report = extraction.run(files, progress=bar.update)
    if int(os.environ.get("RANK", 0)) != 0:  # a torchrun rank whose share is done; rank 0 writes the output
        return 0
    status(args, f"deepfever extract: {report.summary()}", stderr=True)
    status(args, f"wrote {output} and {failures_path_for(output)} ({len(report.failures)} failures)")
    return 0 if report.processed else 1
