"""``deepfever data``: look inside a dataset (``inspect``), download Google FEC faces (``fetch-fec``), and
detect and align a dataset once into a crop cache (``prepare``)."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from deepfever import defaults

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect datasets, fetch Google FEC, prepare aligned crop caches")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect", help="print per-split sample, class and skipped-row counts as JSON",
        description="Per split: samples, classes and skipped rows by reason. For fec also the triplets each CSV lists "
                    "(by type) and how many of their faces are fetched, so it works before fetch-fec. A CSV line that "
                    "does not have the format's fields (e.g. an AffectNet row with a missing column or a non-numeric "
                    "box) stops the read with an error naming the file and line; rows that parse but hold unusable "
                    "values (unknown label, box outside the image) are skipped and counted under 'skipped'.")
    inspect.add_argument(
        "--format", required=True, dest="dataset_format", help="dataset format (see deepfever.data.formats.list_formats)"
    )
    inspect.add_argument("--root", required=True, help="dataset folder (or file, for csv and fer2013)")
    inspect.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="reader option; VALUE is parsed as JSON when it can be (e.g. aligned=false, class_names='[\"a\",\"b\"]')",
    )
    inspect.set_defaults(handler=run_inspect)

    fetch = commands.add_parser("fetch-fec", help="download and crop the faces of a Google FEC CSV (resumable)")
    fetch.add_argument("--csv", required=True, help="faceexp-comparison-data-{train,test}-public.csv")
    fetch.add_argument("--out", required=True, help="dataset folder; faces go to OUT/images/")
    fetch.add_argument("--workers", type=int, default=16, help="concurrent downloads (default 16)")
    fetch.add_argument("--timeout", type=float, default=10.0, help="seconds to connect and per read (default 10)")
    fetch.add_argument("--total-timeout", type=float, default=60.0, help="seconds for one whole download (default 60)")
    fetch.add_argument("--retries", type=int, default=3, help="retries on timeouts, connection errors, 5xx (default 3)")
    fetch.add_argument("--max-bytes", default="20MB", help="largest download accepted (default 20MB)")
    fetch.add_argument("--image-format", choices=("jpg", "png"), default="jpg", help="format of the saved crops")
    fetch.add_argument("--limit", type=int, default=None, help="only the first N triplets (a trial run)")
    fetch.set_defaults(handler=run_fetch_fec)

    prepare = commands.add_parser("prepare", help="detect and align a dataset once into a crop cache (resumable, parallel)")
    prepare.add_argument("--format", required=True, dest="dataset_format", help="dataset format (see deepfever.data.formats.list_formats)")
    prepare.add_argument("--root", required=True, help="dataset folder (or file, for csv and fer2013)")
    prepare.add_argument("-o", "--output", required=True, help="cache directory (created; re-run the same command to resume)")
    prepare.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="reader option, as for `data inspect`")
    prepare.add_argument("--detector", default=defaults.DETECTOR, choices=("mtcnn", "yunet", "none", "box"),
                         help="mtcnn/yunet: largest detected face; none: images are crops already; box: the dataset's face box")
    prepare.add_argument("--box-detector", default=defaults.DETECTOR, choices=("mtcnn", "yunet"), help="landmark detector inside boxes (--detector box)")
    prepare.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                         help="detector keyword, e.g. model_path=face_detection_yunet_2023mar.onnx")
    prepare.add_argument("--size", type=int, default=48, help="crop side in pixels (default 48, the FER+ template's)")
    prepare.add_argument("--channels", choices=("grey", "rgb"), default="grey", help="crop colour mode (default grey, the bundled model's)")
    prepare.add_argument("--fallback", choices=("", "none"), default="",
                         help="'none': keep a face crop whose detector finds nothing as a template-framed resize (default: a failure)")
    prepare.add_argument("--workers", type=int, default=1, help="detector processes (default 1)")
    prepare.add_argument("--shard-size", type=int, default=2048, help="samples per resumable shard (default 2048)")
    prepare.add_argument("--limit", type=int, default=None, help="stop after N samples this run (resume later)")
    prepare.set_defaults(handler=run_prepare)


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["aligned=false", "images_dir=/x"]`` -> ``{"aligned": False, "images_dir": "/x"}``."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"deepfever data: --option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def inspect_dataset(dataset_format: str, root: str, options: dict[str, object]) -> dict:
    """Counts per split: samples, classes, labelled valence/arousal and skipped rows by reason."""
    from deepfever.data.formats import read_dataset
    from deepfever.labels import EMOTIONS

    splits = read_dataset(dataset_format, root, **options)
    class_names = options.get("class_names") or EMOTIONS
    report: dict = {"format": dataset_format, "root": root, "splits": {}}
    for name, split in splits.items():
        report["splits"][name] = {
            "samples": len(split.samples),
            "classes": split.class_counts(class_names),
            "with_valence_arousal": sum(not math.isnan(sample.valence) and not math.isnan(sample.arousal) for sample in split.samples),
            "skipped": dict(split.skipped.most_common()),
        }
    if dataset_format == "fec":  # its samples are fetched faces only: say what the CSVs list as well
        from deepfever.data.formats.fec import describe_fec

        for name, described in describe_fec(root).items():
            report["splits"].setdefault(name, {}).update(described)
    return report


def run_inspect(args: argparse.Namespace) -> int:
    report = inspect_dataset(args.dataset_format, args.root, parse_options(args.option))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def run_fetch_fec(args: argparse.Namespace) -> int:
    from deepfever.data.fec_fetch import FetchSettings, fetch_fec, parse_size

    settings = FetchSettings(
        workers=args.workers,
        timeout=args.timeout,
        total_timeout=args.total_timeout,
        retries=args.retries,
        max_bytes=parse_size(args.max_bytes),
        extension="." + args.image_format,
        limit=args.limit,
    )
    summary = fetch_fec(args.csv, args.out, settings)
    logger.info("fetch-fec: %s", json.dumps(summary.as_dict()))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from deepfever.data.prepare import PrepareSettings, prepare_dataset

    settings = PrepareSettings(
        detector=args.detector,
        size=args.size,
        workers=args.workers,
        shard_size=args.shard_size,
        limit=args.limit,
        detector_options=parse_options(args.detector_option),
        box_detector=args.box_detector,
        channels=args.channels,
        fallback=args.fallback,
    )
    summary = prepare_dataset(args.dataset_format, args.root, args.output, settings, parse_options(args.option))
    json.dump(summary.as_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    if not summary.complete:
        logger.info("prepare: %d samples left; run the same command again to continue", summary.pending)
    return 0
