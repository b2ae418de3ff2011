"""A result table written in chunks, by one or many processes, that reads back as one table.

Layout of a parts folder (``OUT.parts/`` beside the output ``OUT.parquet``)::

    manifest.json         what the run is (model, options, inputs hash), its chunks, the output name
    inputs.txt            the ordered inputs, one a line: chunk ``i`` covers lines ``[start, stop)``
    chunk-000012.parquet  the rows of chunk 12
    chunk-000012.json     its record (failures, counts); written last, so its presence marks the chunk done

A chunk is written by exactly one call of ``write_chunk`` for its index, so a chunk redone after an
interruption replaces, never duplicates, its rows, and a run never needs to know who wrote what.
``read_parts`` joins the chunks in chunk order, which is input order.

Example:
    >>> table = read_parts("faces.parts")  # doctest: +SKIP
    >>> table.attrs["failures"][:2]  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from deepfever.errors import DeepFeverError
from deepfever.io.atomic import atomic_write
from deepfever.io.tables import read_table, write_table

PARTS_VERSION = 1
_CHUNK_RECORD = re.compile(r"^chunk-(\d+)\.json$")
_INTEGER_COLUMNS = ("frame", "track")
"""Nullable integer columns: image rows carry no frame or track, and joining must not make them floats."""


class PartsMismatchError(DeepFeverError, ValueError):
    """A parts folder holds another run (other model, options or inputs) than the one asked for."""


class IncompletePartsError(DeepFeverError, FileNotFoundError):
    """Some chunks of a parts folder are not written yet."""


def parts_dir_for(output: str | Path) -> Path:
    """``OUT.parts`` beside ``OUT.<format>``: one work folder per output, whatever its format."""
    return Path(output).with_suffix(".parts")


def plan_chunks(count: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``chunk_size`` consecutive inputs covering ``count`` inputs."""
    if chunk_size < 1:
        raise ValueError(f"plan_chunks: chunk_size must be at least 1, got {chunk_size}")
    return [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


def make_manifest(identity: dict[str, Any], names: Sequence[str], chunk_size: int, output_name: str) -> dict[str, Any]:
    """The manifest of a run: ``identity`` (JSON-able) is everything besides the inputs that changes the rows."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\n")
    manifest = {"version": PARTS_VERSION, **identity, "inputs": len(names), "inputs_sha256": digest.hexdigest()[:20],
                "chunk_size": chunk_size, "chunks": plan_chunks(len(names), chunk_size), "output": output_name}
    return json.loads(json.dumps(manifest))  # as it reads back from the file (tuples become lists)


def check_same_run(folder: str | Path, existing: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Raise ``PartsMismatchError`` naming what differs when ``existing`` was made by another run."""
    keys = sorted((set(manifest) | set(existing)) - {"output", "chunks"})
    differing = [key for key in keys if existing.get(key) != manifest.get(key)]
    if differing:
        details = "; ".join(f"{key}: then {existing.get(key)!r}, now {manifest.get(key)!r}" for key in differing)
        raise PartsMismatchError(
            f"cannot resume {folder}: it was made with different {', '.join(differing)} ({details}); run again with "
            "the same model, options and inputs, or pass --overwrite (without --resume) to start again"
        )


def open_parts(folder: str | Path, manifest: dict[str, Any], names: Sequence[str], resume: bool, overwrite: bool) -> dict[str, Any]:
    """Create ``folder`` for a new run, or check that it holds this run when resuming; returns its manifest.

    Without ``resume`` an existing folder is an error, unless ``overwrite`` allows starting again from
    nothing. Call it from one process only, before any chunk is written.
    """
    folder = Path(folder)
    if folder.exists():
        if not (folder / "manifest.json").is_file():
            raise FileExistsError(f"{folder} exists but is not a parts folder (no manifest.json); move it away")
        if resume:
            existing = read_manifest(folder)
            check_same_run(folder, existing, manifest)
            for leftover in folder.glob(".chunk-*.tmp"):  # from a process killed mid-write
                leftover.unlink()
            return existing
        if not overwrite:
            raise FileExistsError(f"{folder} holds an earlier run; pass --resume to continue it or --overwrite to start again")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with atomic_write(folder / "inputs.txt") as tmp:
        tmp.write_text("".join(f"{name}\n" for name in names))
    with atomic_write(folder / "manifest.json") as tmp:  # one key a line; the chunk list stays on one line
        tmp.write_text("{\n" + ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in manifest.items()) + "\n}\n")
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a parts folder (no manifest.json); make one with `deepfever extract --resume`")
    return json.loads(path.read_text())


def done_chunks(folder: str | Path) -> set[int]:
    """Indices of the chunks whose rows and record are both written."""
    return {int(match.group(1)) for path in Path(folder).glob("chunk-*.json") if (match := _CHUNK_RECORD.match(path.name))}


def write_chunk(folder: str | Path, index: int, frame: pd.DataFrame, record: dict[str, Any]) -> None:
    """Write chunk ``index``: its rows first, then its record, whose presence marks the chunk done."""
    folder = Path(folder)
    write_table(frame, folder / f"chunk-{index:06d}.parquet")
    with atomic_write(folder / f"chunk-{index:06d}.json") as tmp:
        tmp.write_text(json.dumps(record) + "\n")


def missing_chunks(folder: str | Path, manifest: dict[str, Any] | None = None) -> list[int]:
    manifest = manifest or read_manifest(folder)
    done = done_chunks(folder)
    return [index for index in range(len(manifest["chunks"])) if index not in done]


def read_parts(folder: str | Path) -> pd.DataFrame:
    """All chunks of ``folder`` as one table in input order.

    ``attrs["records"]`` holds each chunk's record and ``attrs["failures"]`` their ``failures`` lists joined.

    Raises ``IncompletePartsError`` naming the chunks (and their first inputs) that are not written yet.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = missing_chunks(folder, manifest)
    if missing:
        raise IncompletePartsError(_describe_missing(folder, manifest, missing))
    frames = [read_table(folder / f"chunk-{index:06d}.parquet") for index in range(len(manifest["chunks"]))]
    records = [json.loads((folder / f"chunk-{index:06d}.json").read_text()) for index in range(len(frames))]
    widest = max(frames, key=lambda frame: len(frame.columns)) if frames else pd.DataFrame()
    # A chunk of images only lacks the video columns; empty chunks are left out so they add no dtypes.
    filled = [frame for frame in frames if len(frame)]
    table = pd.concat(filled, ignore_index=True)[list(widest.columns)] if filled else widest
    table = table.astype({column: "Int64" for column in _INTEGER_COLUMNS if column in table})
    table.attrs = {"failures": [failure for record in records for failure in record.get("failures", [])], "records": records}
    return table


def _describe_missing(folder: Path, manifest: dict[str, Any], missing: list[int]) -> str:
    names = (folder / "inputs.txt").read_text().splitlines() if (folder / "inputs.txt").is_file() else []
    described = []
    for index in missing[:10]:
        start, stop = manifest["chunks"][index]
        first = f", from {names[start]}" if start < len(names) else ""
        described.append(f"chunk {index} (inputs {start}-{stop - 1}{first})")
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return (f"{folder} is missing {len(missing)} of {len(manifest['chunks'])} chunks: {'; '.join(described)}{more}; "
            "run the same `deepfever extract` command with --resume to finish them")
