"""``deepfever extract``: every face in images, folders or globs -> a table of vectors and emotions."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="expression vectors and emotions for every face in the inputs")
    parser.add_argument("inputs", nargs="+", help="image or video files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output", required=True, help="OUT.parquet, OUT.csv, OUT.jsonl or OUT.npz")
    add_extractor_arguments(parser)
    parser.add_argument("--annotate-dir", help="also write each image with boxes and emotions into this folder")
    parser.add_argument("--fps", type=float, default=None, help="videos: frames per second to process (default: every frame)")
    parser.add_argument("--smooth", type=float, default=0.0, help="videos: moving-average weight in [0, 1) for probabilities per track")
    parser.add_argument("--annotate-video-dir", help="videos: write an annotated copy (boxes, track id, emotion) into this folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(handler=run)


def add_extractor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="packaged model name or .safetensors path (default: bundled model)")
    parser.add_argument("--detector", default="mtcnn", choices=("mtcnn", "yunet", "none"), help="face detector")
    parser.add_argument("--yunet-model", help="path to the YuNet .onnx file (with --detector yunet)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64, help="faces per model batch")


def build_extractor(args: argparse.Namespace):
    from deepfever.api import Extractor
    from deepfever.models import DEFAULT_MODEL

    options = {"model_path": args.yunet_model} if args.detector == "yunet" and args.yunet_model else None
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    return Extractor(model=args.model or DEFAULT_MODEL, device=args.device, detector=args.detector,
                     detector_options=options, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    from deepfever.io.tables import check_table_path
    from deepfever.io.inputs import expand_inputs

    output = check_table_path(args.output, args.overwrite)
    failures_path = failures_path_for(output)
    if failures_path.exists() and not args.overwrite:
        raise FileExistsError(f"{failures_path} already exists; pass --overwrite to replace it")
    from deepfever.io.images import IMAGE_SUFFIXES
    from deepfever.io.inputs import VIDEO_SUFFIXES

    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    if not 0.0 <= args.smooth < 1.0:
        raise ValueError(f"--smooth must be in [0, 1), got {args.smooth}")
    files = expand_inputs(args.inputs, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images or videos found in {', '.join(args.inputs)}")
    extractor = build_extractor(args)
    frame, report = extract_with_progress(extractor, files, args.annotate_dir, args.overwrite, args.fps, args.smooth)
    write_outputs(frame, report, output)
    if args.annotate_video_dir:
        write_annotated_videos(frame, Path(args.annotate_video_dir), args.fps, args.overwrite)
    print(f"deepfever extract: {report.summary()}", file=sys.stderr)
    print(f"wrote {output}" + (f" and {failures_path}" if report.failures else ""))
    return 0 if report.processed else 1


def failures_path_for(output: Path) -> Path:
    return output.with_name(output.name[: -len(output.suffix)] + ".failures.csv")


def extract_with_progress(extractor, files, annotate_dir: str | None, overwrite: bool, fps: float | None = None, smoothing: float = 0.0):
    """Run the extractor with a progress bar (one tick per file); optionally annotate the images."""
    from tqdm import tqdm

    with tqdm(total=len(files), unit="file", file=sys.stderr, disable=None) as bar:
        frame = extractor.extract(files, progress=bar.update, fps=fps, smoothing=smoothing)
    if annotate_dir:
        write_annotated(frame, Path(annotate_dir), overwrite)
    return frame, extractor.report_


def write_annotated(frame, folder: Path, overwrite: bool) -> list[Path]:
    from deepfever.io.annotate import annotate_image
    from deepfever.io.atomic import atomic_write, refuse_overwrite
    from deepfever.io.images import load_image

    written = []
    images = frame[frame["frame"].isna()] if "frame" in frame else frame
    for path, rows in images.groupby("path", sort=False):
        target = folder / f"{Path(path).stem}.annotated.jpg"
        refuse_overwrite(target, overwrite)
        with atomic_write(target) as tmp:
            annotate_image(load_image(path), rows).save(tmp, format="JPEG", quality=90)
        written.append(target)
    return written


def write_annotated_videos(frame, folder: Path, fps: float | None, overwrite: bool) -> list[Path]:
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.video import write_annotated_video

    written = []
    if "frame" not in frame:
        return written
    for path, rows in frame[frame["frame"].notna()].groupby("path", sort=False):
        target = folder / f"{Path(path).stem}.annotated.mp4"
        refuse_overwrite(target, overwrite)
        written.append(write_annotated_video(path, rows, target, fps=fps))
    return written


def write_outputs(frame, report, output: Path) -> None:
    import pandas as pd

    from deepfever.io.atomic import atomic_write
    from deepfever.io.tables import write_table

    write_table(frame, output)
    if report.failures:
        with atomic_write(failures_path_for(output)) as tmp:
            pd.DataFrame(report.failures, columns=["path", "reason"]).to_csv(tmp, index=False)
