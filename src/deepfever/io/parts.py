"""A result table written in chunks, by one or many processes, that reads back as one table.

Layout of a parts folder (``OUT.parts/`` beside the output ``OUT.parquet``)::

    manifest.json         what the run is (model, options, inputs hash), its chunks, the output name
    inputs.jsonl          the ordered inputs, one ``[name, size, mtime_ns]`` a line: chunk ``i`` covers
                          lines ``[start, stop)``; size and mtime tell ``--resume`` which inputs changed
    chunk-000012.parquet  the rows of chunk 12
    chunk-000012.json     its record (failures, counts); written last, so its presence marks the chunk done

A chunk's rows are written once, under its index, so a chunk redone after an interruption replaces,
never duplicates, its rows, and a run never needs to know who wrote what. ``iter_parts`` streams the
chunks in chunk order, which is input order; ``read_parts`` joins them in memory. ``check_parts``
refuses, naming the chunk or file, a folder whose chunks hold rows of inputs that are not theirs (a
chunk's files copied over another's) or whose files are damaged, before anything is written from it.

Example:
    >>> table = read_parts("faces.parts")  # doctest: +SKIP
    >>> table.attrs["failures"][:2]  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from deepfever.errors import OVERWRITE, RESUME, DeepFeverError, OptionMessage
from deepfever.io.atomic import atomic_write
from deepfever.io.names import printable_name

logger = logging.getLogger(__name__)

PARTS_VERSION = 2
_CHUNK_RECORD = re.compile(r"^chunk-(\d+)\.json$")
_NULLABLE = ("frame", "track")
"""Nullable integer columns: image rows carry no frame or track, and joining must not make them floats."""
_INPUTS = "inputs.jsonl"


class PartsMismatchError(DeepFeverError, ValueError):
    """A parts folder holds another run (other model, options or inputs) than the one asked for."""


class IncompletePartsError(DeepFeverError, FileNotFoundError):
    """Some chunks of a parts folder are not written yet."""


class DamagedPartsError(DeepFeverError, ValueError):
    """A file of a parts folder cannot be read, or holds what its place says it cannot."""


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
        digest.update(os.fsencode(name) + b"\n")  # the name's bytes, even when they are not UTF-8
    manifest = {"version": PARTS_VERSION, **identity, "inputs": len(names), "inputs_sha256": digest.hexdigest()[:20],
                "chunk_size": chunk_size, "chunks": plan_chunks(len(names), chunk_size), "output": output_name}
    return json.loads(json.dumps(manifest))  # as it reads back from the file (tuples become lists)


def check_same_run(folder: str | Path, existing: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Raise ``PartsMismatchError`` naming what differs when ``existing`` was made by another run."""
    keys = sorted((set(manifest) | set(existing)) - {"output", "chunks"})
    differing = [key for key in keys if existing.get(key) != manifest.get(key)]
    if differing:
        details = "; ".join(f"{key}: then {existing.get(key)!r}, now {manifest.get(key)!r}" for key in differing)
        if "model_id" in differing:  # the format is deepfever.models.fingerprint's
            details += ("; a model_id is NAME@WEIGHTS-CONFIG hashes: the same weights hash means the model's sidecar changed, "
                        "or the parts were written before model_id covered the config")
        raise PartsMismatchError(
            OptionMessage(f"cannot resume {folder}: it was made with different {', '.join(differing)} ({details}); run again with "
            "the same model, options and inputs, or pass ", OVERWRITE, " (and not ", RESUME, ") to start again"))


def input_states(names: Sequence[str]) -> list[list]:
    """``[name, size, mtime_ns]`` of each input: what ``--resume`` compares to notice a changed file."""
    states = []
    for name in names:
        info = os.stat(name)
        states.append([name, info.st_size, info.st_mtime_ns])
    return states


def open_parts(folder: str | Path, manifest: dict[str, Any], states: Sequence[Sequence], resume: bool, overwrite: bool) -> dict[str, Any]:
    """Create ``folder`` for a new run, or check that it holds this run when resuming; returns its manifest.

    ``states`` are ``input_states`` of the inputs in order. When resuming, a done chunk holding an input
    whose size or modification time changed since it was recorded is marked to be redone (and logged,
    naming the inputs). Without ``resume`` an existing folder is an error, unless ``overwrite`` allows
    starting again from nothing. Call it from one process only, before any chunk is written.
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
            _redo_changed(folder, existing, states)
            return existing
        if not overwrite:
            raise FileExistsError(OptionMessage(f"{folder} holds an earlier run; pass ", RESUME, " to continue it or ", OVERWRITE,
                                                " to start again"))
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _write_states(folder, states)
    with atomic_write(folder / "manifest.json") as tmp:  # one key a line; the chunk list stays on one line
        tmp.write_text("{\n" + ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in manifest.items()) + "\n}\n")
    return manifest


def _write_states(folder: Path, states: Sequence[Sequence]) -> None:
    with atomic_write(folder / _INPUTS) as tmp:
        tmp.write_text("".join(json.dumps(list(state)) + "\n" for state in states))


def read_inputs(folder: str | Path) -> list[str]:
    """The run's inputs in order, as the manifest's chunks count them."""
    return [state[0] for state in _read_states(Path(folder))]


def _read_states(folder: Path) -> list[list]:
    path = folder / _INPUTS
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except (ValueError, OSError) as error:
        raise DamagedPartsError(f"{path} is damaged ({error}); run `deepfever extract` again with --overwrite to start again") from error


def _redo_changed(folder: Path, manifest: dict[str, Any], states: Sequence[Sequence]) -> None:
    """Unmark the done chunks whose inputs changed since they were recorded, logging their names."""
    recorded = _read_states(folder)
    changed = [position for position, (then, now) in enumerate(zip(recorded, states)) if list(then) != list(now)]
    done = done_chunks(folder)
    for index, (start, stop) in enumerate(manifest["chunks"]):
        redo = [states[position][0] for position in changed if start <= position < stop]
        if redo and index in done:
            logger.warning("redoing chunk %d: %s changed (size or modification time) since it was extracted",
                           index, ", ".join(redo))
            (folder / f"chunk-{index:06d}.json").unlink()
    if changed:
        _write_states(folder, states)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a parts folder (no manifest.json); make one with `deepfever extract --resume`")
    manifest = _read_json(path, "run `deepfever extract` again with --overwrite to start again")
    chunks = manifest.get("chunks") if isinstance(manifest, dict) else None
    if not (isinstance(chunks, list) and all(isinstance(chunk, list) and len(chunk) == 2 and all(type(end) is int for end in chunk)
                                             for chunk in chunks)):
        raise DamagedPartsError(f"{path} is damaged (expected an object whose 'chunks' lists [start, stop] pairs); "
                                "run `deepfever extract` again with --overwrite to start again")
    return manifest


def _read_json(path: Path, fix: str) -> Any:
    """The JSON document at ``path``, or ``DamagedPartsError`` naming the file and how to recover."""
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise DamagedPartsError(f"{path} is damaged ({error}); {fix}") from error


def done_chunks(folder: str | Path) -> set[int]:
    """Indices of the chunks whose rows and record are both written."""
    return {int(match.group(1)) for path in Path(folder).glob("chunk-*.json") if (match := _CHUNK_RECORD.match(path.name))}


def chunk_table_path(folder: str | Path, index: int) -> Path:
    """Where chunk ``index`` keeps its rows (write them with ``deepfever.io.tables.table_writer``)."""
    return Path(folder) / f"chunk-{index:06d}.parquet"


def mark_chunk_done(folder: str | Path, index: int, record: dict[str, Any]) -> None:
    """Write chunk ``index``'s record once its rows are written; its presence marks the chunk done."""
    with atomic_write(Path(folder) / f"chunk-{index:06d}.json") as tmp:
        tmp.write_text(json.dumps(record) + "\n")


def missing_chunks(folder: str | Path, manifest: dict[str, Any] | None = None) -> list[int]:
    manifest = manifest or read_manifest(folder)
    done = done_chunks(folder)
    return [index for index in range(len(manifest["chunks"])) if index not in done]


def read_records(folder: str | Path, manifest: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every chunk's record (failures, counts) in chunk order; raises ``IncompletePartsError`` naming missing chunks."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    missing = missing_chunks(folder, manifest)
    if missing:
        raise IncompletePartsError(_describe_missing(folder, manifest, missing))
    records = []
    for index in range(len(manifest["chunks"])):
        record = _read_json(folder / f"chunk-{index:06d}.json", _redo(folder, index))
        if not isinstance(record, dict):
            raise DamagedPartsError(f"{folder / f'chunk-{index:06d}.json'} is damaged (expected a JSON object); {_redo(folder, index)}")
        records.append(record)
    return records


def check_parts(folder: str | Path, manifest: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every chunk's record, once every chunk is known to hold rows and failures of its own inputs only.

    Reads the ``path`` column of each chunk (not the vectors). Raises ``IncompletePartsError`` for
    missing chunks, ``DamagedPartsError`` naming the chunk and a stranger input (a chunk's files copied
    over another's) or the file that cannot be read.
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    records = read_records(folder, manifest)
    names = read_inputs(folder)
    if len(names) != manifest.get("inputs"):
        raise DamagedPartsError(f"{folder / _INPUTS} lists {len(names)} inputs where {folder / 'manifest.json'} counts "
                                f"{manifest.get('inputs')}; run `deepfever extract` again with --overwrite to start again")
    for index, ((start, stop), record) in enumerate(zip(manifest["chunks"], records)):
        own = {printable_name(name) for name in names[start:stop]}
        table = chunk_table_path(folder, index)
        try:
            paths = pq.read_table(table, columns=["path"]).column("path").to_pylist()
        except (OSError, ValueError, KeyError) as error:
            raise DamagedPartsError(f"{table} is damaged or missing ({error}); {_redo(folder, index)}") from error
        failures = record.get("failures", [])
        stranger = next((path for path in [*paths, *(failure.get("path") for failure in failures if isinstance(failure, dict))]
                         if path not in own), None)
        if stranger is not None:
            raise DamagedPartsError(
                f"chunk {index} of {folder} holds rows or failures of {stranger}, which is not among its inputs "
                f"({names[start] if start < len(names) else '?'} to {names[stop - 1] if 0 < stop <= len(names) else '?'}); "
                f"its files were copied or damaged: {_redo(folder, index)}")
    return records


def _redo(folder: Path, index: int) -> str:
    """How to recover one chunk: unmark it, then resume."""
    return (f"delete {folder / f'chunk-{index:06d}.json'} and run the same `deepfever extract` command with --resume "
            "to redo that chunk")


def parts_columns(folder: str | Path, manifest: dict[str, Any] | None = None) -> list[str]:
    """The joined table's columns: the widest chunk's (a chunk of images only lacks the video columns)."""
    import pyarrow.parquet as pq

    manifest = manifest or read_manifest(folder)
    schemas = []
    for index in range(len(manifest["chunks"])):
        try:
            schemas.append(pq.read_schema(chunk_table_path(folder, index)).names)
        except (OSError, ValueError) as error:
            raise DamagedPartsError(f"{chunk_table_path(folder, index)} is damaged or missing ({error}); "
                                    f"{_redo(Path(folder), index)}") from error
    return max(schemas, key=len) if schemas else []


def iter_parts(folder: str | Path, columns: Sequence[str] | None = None, batch_rows: int = 4096) -> Iterator[pd.DataFrame]:
    """Stream the rows of every chunk in input order, ``batch_rows`` at a time, in bounded memory.

    ``columns`` selects columns (default ``parts_columns``); a chunk without one gets it empty.
    Raises ``IncompletePartsError`` naming the chunks (and their first inputs) that are not written yet.
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = read_manifest(folder)
    read_records(folder, manifest)  # refuses an incomplete folder before the first row
    columns = list(columns or parts_columns(folder, manifest))
    for index in range(len(manifest["chunks"])):
        source = pq.ParquetFile(chunk_table_path(folder, index))
        present = [column for column in columns if column in source.schema_arrow.names]
        for batch in source.iter_batches(batch_size=batch_rows, columns=present):
            frame = batch.to_pandas().reindex(columns=columns)
            for column in ("embedding", "landmarks"):
                if column in frame:
                    frame[column] = [np.asarray(value, np.float32) for value in frame[column]]
            yield frame.astype({column: "Int64" for column in _NULLABLE if column in frame})


def read_parts(folder: str | Path) -> pd.DataFrame:
    """All chunks of ``folder`` as one table in input order (in memory; ``iter_parts`` streams them).

    ``attrs["records"]`` holds each chunk's record and ``attrs["failures"]`` their ``failures`` lists joined.

    Raises ``IncompletePartsError`` naming the chunks (and their first inputs) that are not written yet,
    ``DamagedPartsError`` as ``check_parts`` does.
    """
    records = check_parts(folder)
    columns = parts_columns(folder)
    batches = [batch for batch in iter_parts(folder, columns) if len(batch)]
    table = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=columns)
    table = table.astype({column: "Int64" for column in _NULLABLE if column in table})
    table.attrs = {"failures": [failure for record in records for failure in record.get("failures", [])], "records": records}
    return table


def _describe_missing(folder: Path, manifest: dict[str, Any], missing: list[int]) -> str:
    names = read_inputs(folder)
    described = []
    for index in missing[:10]:
        start, stop = manifest["chunks"][index]
        first = f", from {names[start]}" if start < len(names) else ""
        described.append(f"chunk {index} (inputs {start}-{stop - 1}{first})")
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return (f"{folder} is missing {len(missing)} of {len(manifest['chunks'])} chunks: {'; '.join(described)}{more}; "
            "run the same `deepfever extract` command with --resume to finish them")
