"""``deepfever extract --engine ray``: the flags of extraction on Ray Data and the handler that runs it.

Kept apart from ``extract.py`` so that command's own flags and this engine's change independently;
the run itself is ``deepfever.extraction.ray_engine.RayExtraction``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from deepfever.cli._common import build_extractor, status

UNSUPPORTED = {"annotate_dir": "--annotate-dir", "annotate_video_dir": "--annotate-video-dir", "save_crops": "--save-crops",
               "chunk_size": "--chunk-size"}
"""Flags of the local engine that ``--engine ray`` refuses (Ray's tasks replace chunks; drawing stays local)."""


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local: this machine (and torchrun ranks), writes -o OUT.<format>; ray: Ray Data on a local "
                             "or remote cluster, writes -o OUT_DIR, a Parquet dataset folder, and skips the inputs already "
                             "in it (needs the ray extra: pip install 'deepfever[ray]')")
    parser.add_argument("--ray-address", default=None,
                        help="--engine ray: the cluster to join (e.g. ray://head:10001 or auto; default: a running local "
                             "Ray, else one started for the run)")
    parser.add_argument("--workers", type=int, default=None,
                        help="--engine ray: workers, each with its own model (default: one per CPU, or per --gpus-per-worker GPUs)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="--engine ray: GPUs each worker reserves (default 0: CPU); above 0 the model runs on CUDA")


def run_ray(args: argparse.Namespace) -> int:
    from deepfever.extraction.ray_engine import RayExtraction
    from deepfever.io.failures import failures_path_for

    refused = [flag for name, flag in UNSUPPORTED.items() if getattr(args, name, None) is not None]
    if refused:
        raise ValueError(f"--engine ray does not take {', '.join(refused)}; drop them, or use --engine local")
    output = Path(args.output)
    extraction = RayExtraction(build_extractor(args), output, fps=args.fps, smoothing=args.smooth, workers=args.workers,
                               gpus_per_worker=args.gpus_per_worker, address=args.ray_address, overwrite=args.overwrite)
    report = extraction.run(args.inputs)  # Ray Data shows its own progress
    status(args, f"deepfever extract: {report.summary()}", stderr=True)
    status(args, f"wrote {output}/ (a Parquet dataset) and {failures_path_for(output)}")
    return 0 if report.processed or not (report.images or report.videos) else 1
