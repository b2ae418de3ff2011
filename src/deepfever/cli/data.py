"""``deepfever data``: look inside a dataset (``inspect``) and download Google FEC faces (``fetch-fec``)."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect datasets, fetch Google FEC")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    inspect = commands.add_parser("inspect", help="print per-split sample, class and skipped-row counts as JSON")
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


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["aligned=false", "images_dir=/x"]`` -> ``{"aligned": False, "images_dir": "/x"}``."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"deepfever data inspect: --option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def inspect_dataset(dataset_format: str, root: str, options: dict[str, object]) -> dict:
    """Counts per split: samples, classes, labelled valence/arousal and skipped rows by reason."""
    from deepfever.data.formats import read_dataset
    from deepfever.data.labels import EMOTIONS

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
