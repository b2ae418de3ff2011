"""``deepfever plot map`` and ``plot timeline``: pictures of a table of expression vectors."""
from __future__ import annotations

import argparse

from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser("plot", help="draw a table of faces: a 2-D map, or emotions over time in a video")
    kinds = plot.add_subparsers(dest="kind", metavar="KIND", required=True)
    chart = kinds.add_parser("map", help="2-D map of the expression vectors with face thumbnails")
    chart.add_argument("table", help="table from 'deepfever extract'")
    chart.add_argument("-o", "--output", required=True, help="PNG to write")
    chart.add_argument("--html", help="also write a standalone interactive HTML map")
    chart.add_argument("--color-by", default="emotion", help="column that colours the points (default: predicted emotion)")
    chart.add_argument("--method", default="auto", choices=("auto", "umap", "tsne", "pca"),
                       help="projection; auto = UMAP if installed, else t-SNE up to 5,000 faces, else PCA")
    chart.add_argument("--max-thumbnails", type=int, default=300, help="faces drawn as thumbnails (0 for points only)")
    chart.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    chart.set_defaults(handler=run_map)

    timeline = kinds.add_parser("timeline", help="emotion probabilities over time from a video table")
    timeline.add_argument("table", help="table from video extraction (with frame/time columns)")
    timeline.add_argument("-o", "--output", required=True, help="PNG to write")
    timeline.add_argument("--track", type=int, help="plot only this face track (track ids count from 0 in each video)")
    timeline.add_argument("--video", help="plot only this video of the table (its path, or its file name)")
    timeline.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    timeline.set_defaults(handler=run_timeline)


def run_map(args: argparse.Namespace) -> int:
    from deepfever.applications.maps import plot_map
    from deepfever.io.tables import read_table

    summary = plot_map(read_table(args.table), args.output, args.color_by, args.html, args.method,
                       args.max_thumbnails, args.overwrite)
    status(args, f"wrote {args.output}" + (f" and {args.html}" if args.html else "")
          + f": {summary['points']} faces by {summary['method']}, {summary['thumbnails']} thumbnails"
          + (f", {summary['missing_sources']} source images missing" if summary["missing_sources"] else ""))
    return 0


def run_timeline(args: argparse.Namespace) -> int:
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.io.tables import read_table
    from deepfever.video.timeline import is_smoothed, plot_timeline

    refuse_overwrite(args.output, args.overwrite)
    table = read_table(args.table)
    plot_timeline(table, args.output, track=args.track, video=args.video)
    status(args, f"wrote {args.output}: " + ("smoothed curves (p_*_smooth, thick) over the raw values (thin)" if is_smoothed(table)
                                      else "raw values (the table has no smoothed columns; extract with --smooth to add them)"))
    return 0
