"""``deepfever benchmark``: score one or more models on every dataset of a suite YAML, into one report."""
from __future__ import annotations

import argparse

from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="run a benchmark suite (datasets x models) into a Markdown + JSON report")
    parser.add_argument("--suite", required=True, help="suite YAML, e.g. configs/benchmark_default.yaml")
    parser.add_argument("--model", action="append", default=[], metavar="MODEL",
                        help="packaged model name or .safetensors path; repeat for a cross-dataset matrix (default: bundled model)")
    parser.add_argument("-o", "--output-dir", required=True, help="report folder: report.md, report.json, plots/")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepfever.evaluation._suite_report import REPORT_FILES
    from deepfever.evaluation.suite import load_suite, run_suite
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.models import DEFAULT_MODEL

    for name in REPORT_FILES:
        refuse_overwrite(Path(args.output_dir) / name, args.overwrite)
    report = run_suite(load_suite(args.suite), args.model or [DEFAULT_MODEL], args.output_dir, args.device)
    for row in report["matrix"]["rows"]:
        cells = ", ".join(f"{column} {row['cells'][column]:.4f}" if row["cells"][column] is not None else f"{column} {row['metrics'][column]}"
                          for column in report["matrix"]["columns"])
        print(f"{row['model']}: {cells}")
    status(args, f"wrote {Path(args.output_dir) / 'report.md'} and report.json")
    failed = [entry for model in report["models"] for entry, result in model["results"].items() if result["status"] == "failed"]
    return 1 if failed else 0
