"""Write result tables as Parquet, CSV, JSON lines or NumPy archives, atomically, whole or in batches.

Every format round-trips every table ``extract`` makes (images and video rows together): array
columns become lists (Parquet, JSONL), ``e0..e127`` plus space-separated landmarks (CSV) or stacked
float arrays (NPZ, readable with ``np.load(allow_pickle=False)``). Nullable integer columns
(``frame``, ``track`` are empty on image rows) come back as pandas ``Int64``.

Run settings travel with the table: Parquet key-value metadata under ``deepfever``, or a sidecar
named after the whole output name for the other formats (``faces.csv.meta.json``, so ``faces.csv`` and
``faces.npz`` never share one); ``read_table`` puts them in ``attrs["metadata"]`` and still reads the
``faces.meta.json`` of tables written before. The sidecar is written before the table appears, so a
table on disk always has its settings beside it.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from deepfever.io.atomic import atomic_write, refuse_overwrite

TABLE_FORMATS = (".parquet", ".csv", ".jsonl", ".npz")
ARRAY_COLUMNS = ("embedding", "landmarks")
INTEGER_COLUMNS = ("face", "frame", "track", "crop_size")
"""Integer columns; ``frame`` and ``track`` are empty on image rows, so they are read back as nullable ``Int64``."""
_NULLABLE = ("frame", "track")
STRING_COLUMNS = ("path", "emotion", "emotion_smooth", "model_id", "template_id")
METADATA_KEY = "deepfever"


def check_table_path(path: str | Path, overwrite: bool) -> Path:
    """Validate an output path before any work: known format, not silently replacing a file."""
    target = Path(path)
    if target.suffix.lower() not in TABLE_FORMATS:
        raise ValueError(f"unknown output format {target.suffix or '(none)'!r} for {target}; use one of {', '.join(TABLE_FORMATS)}")
    refuse_overwrite(target, overwrite)
    return target


def metadata_path_for(path: str | Path) -> Path:
    """``OUT.<format>.meta.json`` beside ``OUT.<format>``: the run settings of a table that has no metadata of its own."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def _legacy_metadata_path(path: Path) -> Path:
    """``OUT.meta.json``: where tables written before issue 18 kept their settings (shared between formats)."""
    return path.with_name(path.name[: -len(path.suffix)] + ".meta.json")


def write_table(frame: pd.DataFrame, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``frame`` in the format its suffix names; ``metadata`` (JSON-able) describes how it was made."""
    with table_writer(path, list(frame.columns), metadata) as write:
        write(frame)
    return Path(path)


@contextlib.contextmanager
def table_writer(path: str | Path, columns: list[str], metadata: dict[str, Any] | None = None) -> Iterator:
    """Yield ``write(batch)``; batches (DataFrames with ``columns``) are appended, so a table of any length
    is written in bounded memory (NPZ excepted: its arrays are stacked once, at the end). The file
    appears, complete, when the block ends without error; metadata goes in first (Parquet) or beside.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise ValueError(f"table_writer: unknown format {suffix!r} for {target}; use one of {', '.join(TABLE_FORMATS)}")
    with atomic_write(target) as tmp:  # the table appears last, after its metadata sidecar
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            writers: list = []  # opened at the first batch, whose values give the types of unknown columns

            def write(batch: pd.DataFrame) -> None:
                if not writers:
                    writers.append(pq.ParquetWriter(tmp, _arrow_schema(batch[columns], metadata)))
                writers[0].write_table(_to_arrow(batch, writers[0].schema))

            try:
                yield write
                if not writers:
                    write(pd.DataFrame({column: pd.Series(dtype=object) for column in columns}))
            finally:
                for writer in writers:
                    writer.close()
        elif suffix == ".npz":
            batches: list[pd.DataFrame] = []
            yield batches.append
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **_npz_arrays(columns, batches))
        else:
            with open(tmp, "w", newline="") as handle:
                state = {"header": True}

                def write(batch: pd.DataFrame) -> None:
                    if suffix == ".csv":
                        _flatten(batch[columns]).to_csv(handle, index=False, header=state["header"])
                        state["header"] = False
                    else:
                        for record in _listify(batch[columns]).to_dict(orient="records"):
                            handle.write(json.dumps({key: _json_value(value) for key, value in record.items()}) + "\n")

                yield write
                if suffix == ".csv" and state["header"]:  # no rows: still a table with its columns
                    _flatten(pd.DataFrame(columns=columns)).to_csv(handle, index=False)
        if suffix != ".parquet":
            with atomic_write(metadata_path_for(target)) as sidecar:
                sidecar.write_text(json.dumps(metadata or {}, indent=2, sort_keys=True) + "\n")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by ``write_table``; array columns come back as float32 NumPy arrays.

    ``attrs["metadata"]`` holds the settings it was written with (empty when none were recorded).
    """
    source = Path(path)
    suffix = ".parquet" if source.is_dir() else source.suffix.lower()  # a folder: a Parquet dataset (extract --engine ray)
    metadata: dict[str, Any] = {}
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        arrow = pq.read_table(source)
        stored = (arrow.schema.metadata or {}).get(METADATA_KEY.encode())
        metadata = json.loads(stored) if stored else {}
        frame = arrow.to_pandas()
    elif suffix == ".jsonl":
        frame = pd.read_json(source, lines=True) if source.stat().st_size else pd.DataFrame()
    elif suffix == ".csv":
        frame = pd.read_csv(source)
        embedding_columns = [c for c in frame.columns if c.startswith("e") and c[1:].isdigit()]
        if embedding_columns:
            embedding = pd.Series(list(frame[embedding_columns].to_numpy(np.float32)), index=frame.index, name="embedding")
            at = frame.columns.get_loc(embedding_columns[0])
            frame = frame.drop(columns=embedding_columns)
            frame.insert(at, "embedding", embedding)
        if "landmarks" in frame:
            frame["landmarks"] = [np.array(str(value).split(), dtype=np.float32) for value in frame["landmarks"]]
    elif suffix == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            frame = pd.DataFrame({key: list(archive[key]) if archive[key].ndim > 1 else archive[key] for key in archive.files})
        for column in STRING_COLUMNS:  # NPZ text has no null: "" stands for an empty cell
            if column in frame:
                frame[column] = frame[column].where(frame[column] != "")
    else:
        raise ValueError(f"read_table: unknown format {suffix!r}; use one of {', '.join(TABLE_FORMATS)}")
    if suffix != ".parquet":
        sidecar = next((path for path in (metadata_path_for(source), _legacy_metadata_path(source)) if path.is_file()), None)
        metadata = json.loads(sidecar.read_text()) if sidecar else {}
    for column in ARRAY_COLUMNS:
        if column in frame:
            frame[column] = [np.asarray(value, dtype=np.float32) for value in frame[column]]
    frame = frame.astype({column: "Int64" for column in _NULLABLE if column in frame})
    frame.attrs["metadata"] = metadata
    return frame


def _arrow_schema(batch: pd.DataFrame, metadata: dict[str, Any] | None):
    """Fixed types for the columns ``extract`` writes (so an all-empty first batch cannot set them), the
    first batch's types for any other column (tables of ``probe predict``, ``search``)."""
    import pyarrow as pa

    def kind(column: str):
        if column in ARRAY_COLUMNS:
            return pa.list_(pa.float32())
        if column in STRING_COLUMNS:
            return pa.string()
        if column in INTEGER_COLUMNS:
            return pa.int64()
        if pd.api.types.is_numeric_dtype(batch[column]):
            return pa.float64() if pd.api.types.is_float_dtype(batch[column]) else pa.int64()
        inferred = pa.array(batch[column].astype(object).where(batch[column].notna(), None).tolist()).type
        return pa.string() if pa.types.is_null(inferred) else inferred

    schema = pa.schema([(column, kind(column)) for column in batch.columns])
    return schema.with_metadata({METADATA_KEY: json.dumps(metadata or {}, sort_keys=True)})


def _to_arrow(batch: pd.DataFrame, schema):
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = batch[field.name]
        if field.name in ARRAY_COLUMNS:
            arrays.append(pa.array([np.asarray(value, np.float32).ravel() for value in values], type=field.type))
        else:
            arrays.append(pa.array(values.astype(object).where(values.notna(), None).tolist(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _npz_arrays(columns: list[str], batches: list[pd.DataFrame]) -> dict[str, np.ndarray]:
    """Plain (never object) arrays: stacked float32 for array columns, unicode for text, NaN for empty numbers."""
    frame = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=columns)
    arrays = {}
    for column in columns:
        values = frame[column]
        if column in ARRAY_COLUMNS:
            arrays[column] = np.stack([np.asarray(v, np.float32).ravel() for v in values]) if len(values) else np.zeros((0, 0), np.float32)
        elif column in _NULLABLE:
            arrays[column] = pd.to_numeric(values).astype("float64").to_numpy()  # NaN where empty; read back as Int64
        elif column in STRING_COLUMNS or not pd.api.types.is_numeric_dtype(values):
            arrays[column] = values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=np.str_)
        else:
            arrays[column] = values.to_numpy()
    return arrays


def _listify(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ARRAY_COLUMNS:
        if column in out:
            out[column] = [np.asarray(value, np.float32).ravel().tolist() for value in out[column]]
    return out


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Landmarks as space-separated shortest float32 reprs (exact round trip), embedding as ``e0..`` columns."""
    out = frame.copy()
    if "landmarks" in out:
        out["landmarks"] = [" ".join(np.format_float_positional(v, unique=True, trim="-") for v in np.asarray(value, np.float32).ravel())
                            for value in out["landmarks"]]
    if "embedding" in out and len(out):
        matrix = np.stack([np.asarray(v, np.float32) for v in out["embedding"]])
        embedding = pd.DataFrame(matrix, columns=[f"e{i}" for i in range(matrix.shape[1])], index=out.index)
        at = list(out.columns).index("embedding")
        out = pd.concat([out.iloc[:, :at], embedding, out.iloc[:, at + 1:]], axis=1)
    return out


def _json_value(value: Any) -> Any:
    """JSON for one cell: NumPy scalars as Python numbers, missing values (NaN, NA) as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
