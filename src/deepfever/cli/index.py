"""``deepfever index build`` and ``deepfever search``: find faces with similar expressions in a collection."""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from deepfever.cli._common import add_extractor_arguments, build_extractor, status

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="build a similarity-search index of expression vectors")
    actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="index a table from 'deepfever extract', or extract images first")
    build.add_argument("inputs", nargs="+", help="one table (.parquet/.csv/.jsonl/.npz) or image files, folders, globs")
    build.add_argument("-o", "--output", required=True, help="index folder to write")
    build.add_argument("--kind", default="auto", choices=("auto", "exact", "ivf", "ivfpq"),
                       help="exact scan, approximate IVF, compressed IVF-PQ re-ranked from vectors on disk, or auto "
                            "(exact below 100,000 faces, IVF below 2,000,000, IVF-PQ above or beyond --memory-budget)")
    build.add_argument("--memory-budget", type=parse_bytes, metavar="SIZE",
                       help="memory the index may hold, e.g. 2GB or 512MB; auto picks IVF-PQ when the vectors exceed it")
    build.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    add_extractor_arguments(build)
    build.set_defaults(handler=run_build)

    search = subparsers.add_parser("search", help="the faces of an index whose expressions are closest to a query")
    search.add_argument("index", help="index folder from 'deepfever index build'")
    search.add_argument("query", nargs="?", help="query image (or use --query-row)")
    search.add_argument("--query-row", type=int, help="use the face in this row of the index as the query")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--face", type=int, default=0, help="which face of the query image (default 0)")
    search.add_argument("--min-score", type=float, help="ignore faces with a lower detection score")
    search.add_argument("--include-same-image", action="store_true", help="keep faces from the query's own image (and track)")
    search.add_argument("-o", "--output", help="write the results table (.csv/.parquet/.jsonl)")
    search.add_argument("--grid", help="write a PNG of the query and result faces")
    search.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_extractor_arguments(search)
    search.set_defaults(handler=run_search)


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """``2GB``, ``512MB``, ``1.5GiB`` or a plain byte count -> bytes (binary units: 1 GB = 2**30)."""
    match = _SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size such as 2GB, 512MB or 1000000, got {text!r}")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def run_build(args: argparse.Namespace) -> int:
    from deepfever.applications.search import build_index, save_index
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.io.tables import TABLE_FORMATS, read_table
    from deepfever.pipeline import ExtractionReport

    refuse_overwrite(args.output, args.overwrite)
    first = Path(args.inputs[0])
    model = detector = None
    if len(args.inputs) == 1 and first.is_file() and first.suffix.lower() in TABLE_FORMATS:
        table = read_table(first)
    else:
        extractor = build_extractor(args)
        table = extractor.extract(args.inputs)
        status(args, f"deepfever index: {ExtractionReport.of_table(table).summary()}", stderr=True)
        model_path = Path(str(extractor.model))
        model = str(model_path.resolve()) if model_path.is_file() else str(extractor.model)
        detector = extractor.stage_.detector
    index = build_index(table, kind=args.kind, model=model, memory_budget=args.memory_budget, detector=detector)
    save_index(index, args.output, args.overwrite)
    info = index.info
    detail = f", nlist {info['nlist']}, nprobe {info['nprobe']} (recall@10 {info['tuned_recall_at_10']:.3f})" if "nprobe" in info else ""
    status(args, f"wrote {args.output}: {info['count']} faces, {info['kind']} index{detail}, {info['memory_bytes'] / 2**20:.1f} MiB in memory")
    return 0


def run_search(args: argparse.Namespace) -> int:
    import pandas as pd

    from deepfever.applications.compare import embed_faces
    from deepfever.applications.maps import thumbnail_grid
    from deepfever.applications.search import load_index, result_columns
    from deepfever.faces.thumbnails import row_thumbnail
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.io.tables import check_table_path, write_table

    if (args.query is None) == (args.query_row is None):
        raise ValueError("search: give either a QUERY image or --query-row N (one of them)")
    if args.output:
        check_table_path(args.output, args.overwrite)
    if args.grid:
        refuse_overwrite(args.grid, args.overwrite)
    index = load_index(args.index)
    if args.query_row is not None:
        vector = index.vector(args.query_row)
        query_thumb = row_thumbnail(index.meta.iloc[args.query_row], 96, {})
    else:
        if args.model is None and index.info.get("model"):
            args.model = index.info["model"]  # default to the model the index was built with
        extractor = build_extractor(args).load()
        index.check_fingerprint(extractor.fingerprint_, extractor.stage_.detector)
        row = embed_faces(extractor, [args.query], [args.face])[0]
        vector = row["embedding"]
        query_thumb = row_thumbnail(pd.Series(row), 96, {})
    same_image = not args.include_same_image
    results = index.search(vector, args.k, exclude_path=args.query if same_image and args.query else None,
                           exclude_row=args.query_row if same_image else None, min_score=args.min_score)
    print(results[result_columns(results)].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.output:
        write_table(results, args.output)
        status(args, f"wrote {args.output}")
    if args.grid:
        thumbnail_grid(query_thumb, results, args.grid)
        status(args, f"wrote {args.grid}")
    return 0 if len(results) else 1
