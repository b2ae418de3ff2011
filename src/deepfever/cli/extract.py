"""``deepfever extract``: every face in images, folders or globs -> a table of vectors and emotions."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 256
"""Inputs per saved chunk: small enough to lose little to an interruption, large enough to keep batches full."""


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
    parser.add_argument("--resume", action="store_true",
                        help="save work in chunks in OUT.parts/ beside the output and continue an interrupted run from them "
                             "(chunked work is automatic under torchrun)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"inputs per saved chunk (default {DEFAULT_CHUNK_SIZE}); implies chunked work in OUT.parts/")
    parser.set_defaults(handler=run)


def add_extractor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="packaged model name or .safetensors path (default: bundled model)")
    parser.add_argument("--detector", default="mtcnn", choices=("mtcnn", "yunet", "none"), help="face detector")
    parser.add_argument("--yunet-model", help="path to the YuNet .onnx file (with --detector yunet)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64, help="faces per model batch")


def build_extractor(args: argparse.Namespace, device: str | None = None):
    """The extractor the arguments describe; ``device`` overrides ``--device`` (a process's own GPU under torchrun)."""
    from deepfever.api import Extractor
    from deepfever.models import DEFAULT_MODEL

    options = {"model_path": args.yunet_model} if args.detector == "yunet" and args.yunet_model else None
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    return Extractor(model=args.model or DEFAULT_MODEL, device=device or args.device, detector=args.detector,
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
    if args.resume or args.chunk_size is not None or int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return run_in_parts(args, files, output)
    extractor = build_extractor(args)
    frame, report = extract_with_progress(extractor, files, args.annotate_dir, args.overwrite, args.fps, args.smooth)
    write_outputs(frame, report, output)
    if args.annotate_video_dir:
        write_annotated_videos(frame, Path(args.annotate_video_dir), args.fps, args.overwrite)
    print(f"deepfever extract: {report.summary()}", file=sys.stderr)
    print(f"wrote {output}" + (f" and {failures_path}" if report.failures else ""))
    return 0 if report.processed else 1


def run_in_parts(args: argparse.Namespace, files: list[Path], output: Path) -> int:
    """Extract chunk by chunk into ``OUT.parts/``; under torchrun, rank r of W takes chunks r, r + W, ...

    Each chunk is saved as soon as it is done, so ``--resume`` redoes at most the chunks that were
    running. Ranks need no communication after start-up: whichever finds every chunk written when it
    finishes its own joins them into the output (``deepfever merge`` does the same on demand).
    """
    from tqdm import tqdm

    from deepfever.io import parts as store
    from deepfever.io.inputs import VIDEO_SUFFIXES

    if args.annotate_dir or args.annotate_video_dir:
        raise ValueError("--annotate-dir and --annotate-video-dir work only in a single run without --resume, --chunk-size or torchrun")
    chunk_size = DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {chunk_size}")
    # Images before videos, as Extractor.extract orders its rows, so joined chunks equal one single run.
    ordered = [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES]
    ordered += [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
    names = [str(path) for path in ordered]
    folder = store.parts_dir_for(output)
    rank, world_size, extractor, manifest = _start_parts(args, folder, names, chunk_size, output.name)
    done = store.done_chunks(folder)
    mine = [index for index in range(rank, len(manifest["chunks"]), world_size) if index not in done]
    logger.info("rank %d of %d: %d of %d chunks to do in %s", rank, world_size, len(mine), len(manifest["chunks"]), folder)
    with tqdm(total=sum(stop - start for start, stop in (manifest["chunks"][i] for i in mine)), unit="file",
              file=sys.stderr, disable=None, position=rank) as bar:
        for index in mine:
            start, stop = manifest["chunks"][index]
            frame = extractor.extract(ordered[start:stop], progress=bar.update, fps=args.fps, smoothing=args.smooth)
            store.write_chunk(folder, index, frame, dataclasses.asdict(extractor.report_))
    missing = store.missing_chunks(folder, manifest)
    if missing:
        logger.info("rank %d is done; %d chunks are still with other processes: the last to finish writes %s "
                    "(or run `deepfever merge %s` once they are all written)", rank, len(missing), output, folder)
        return 0
    return finish_parts(folder, output)


def _start_parts(args: argparse.Namespace, folder: Path, names: list[str], chunk_size: int, output_name: str):
    """Rank 0 creates or checks the parts folder while the others wait, then every rank checks it holds its run."""
    from deepfever.io import parts as store

    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    context = None
    if world_size > 1:
        from deepfever.training.distributed import init_distributed

        context = init_distributed(args.device)
    try:
        extractor = build_extractor(args, str(context.device) if context else None).load()
        identity = {**extractor.fingerprint_, "detector": args.detector, "detector_options": extractor.detector_options,
                    "flip_tta": extractor.flip_tta, "fps": args.fps, "smooth": args.smooth}
        manifest = store.make_manifest(identity, names, chunk_size, output_name)
        error = None
        if rank == 0:
            try:
                manifest = store.open_parts(folder, manifest, names, args.resume, args.overwrite)
            except (FileExistsError, ValueError) as caught:
                error = caught
        if context:
            error = context.broadcast(error)
        if error:
            raise error
        if rank != 0:
            store.check_same_run(folder, store.read_manifest(folder), manifest)
    finally:
        if context:
            context.close()  # start-up is the only collective step: ranks then finish at their own pace
    return rank, world_size, extractor, manifest


def finish_parts(folder: Path, output: Path, command: str = "extract") -> int:
    """Join every chunk of ``folder`` into ``output`` and its failures file; exit status 1 if no input gave a face."""
    from deepfever.api import ExtractionReport
    from deepfever.io.parts import read_parts

    table = read_parts(folder)
    records = table.attrs.pop("records")
    report = ExtractionReport(**{field.name: _combine([record[field.name] for record in records])
                                 for field in dataclasses.fields(ExtractionReport)})
    write_outputs(table, report, output)
    print(f"deepfever {command}: {report.summary()}", file=sys.stderr)
    print(f"wrote {output}" + (f" and {failures_path_for(output)}" if report.failures else ""))
    return 0 if report.processed else 1


def _combine(values: list):
    """Counts and seconds add up; lists (videos, failures) follow one another in chunk order."""
    return [item for value in values for item in value] if values and isinstance(values[0], list) else sum(values)


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
