"""``deepfever merge``: join the chunks of a resumable or torchrun ``extract`` into its output table."""
from __future__ import annotations

import argparse
from pathlib import Path

from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("merge", help="join the chunks in OUT.parts/ (extract --resume or torchrun) into one table")
    parser.add_argument("parts", help="the OUT.parts folder, or the output OUT.<format> it was made for")
    parser.add_argument("-o", "--output", help="OUT.parquet, OUT.csv, OUT.jsonl or OUT.npz (default: the extract run's output)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deepfever.extraction.run import merge_parts_locked
    from deepfever.io.failures import failures_path_for
    from deepfever.io.parts import parts_dir_for, read_manifest
    from deepfever.io.tables import check_table_path

    given = Path(args.parts)
    folder = given if given.is_dir() or given.suffix == ".parts" else parts_dir_for(given)
    manifest = read_manifest(folder)
    output = check_table_path(args.output or (_recorded_output(folder, manifest) if folder == given else given), args.overwrite)
    report = merge_parts_locked(folder, output, args.overwrite)
    status(args, f"deepfever merge: {report.summary()}", stderr=True)
    status(args, f"wrote {output} and {failures_path_for(output)} ({len(report.failures)} failures)")
    return 0 if report.processed else 1


def _recorded_output(folder: Path, manifest: dict) -> Path:
    """The output the run was made for, only when it is the folder's own ``OUT.<format>`` beside it:
    a manifest never sends a merge elsewhere."""
    from deepfever.io.parts import parts_dir_for

    name = str(manifest.get("output", ""))
    if not name or Path(name).name != name or parts_dir_for(folder.parent / name) != folder:
        raise ValueError(f"merge: {folder / 'manifest.json'} names the output {name!r}, not {folder.stem}.<format> beside "
                         f"{folder}; pass -o {folder.stem}.parquet (or .csv, .jsonl, .npz) to say where to write")
    return folder.parent / name
