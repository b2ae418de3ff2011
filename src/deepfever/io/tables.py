"""Write result tables as Parquet, CSV, JSON lines or NumPy archives, atomically."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from deepfever.io.atomic import atomic_write, refuse_overwrite

TABLE_FORMATS = (".parquet", ".csv", ".jsonl", ".npz")
ARRAY_COLUMNS = ("embedding", "landmarks")


def check_table_path(path: str | Path, overwrite: bool) -> Path:
    """Validate an output path before any work: known format, not silently replacing a file."""
    target = Path(path)
    if target.suffix.lower() not in TABLE_FORMATS:
        raise ValueError(f"unknown output format {target.suffix or '(none)'!r} for {target}; use one of {', '.join(TABLE_FORMATS)}")
    refuse_overwrite(target, overwrite)
    return target


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame``; array columns become lists (Parquet, JSONL), ``e0..`` columns (CSV) or stacked arrays (NPZ)."""
    target = Path(path)
    suffix = target.suffix.lower()
    with atomic_write(target) as tmp:
        if suffix == ".parquet":
            _listify(frame).to_parquet(tmp, index=False)
        elif suffix == ".csv":
            _flatten(frame).to_csv(tmp, index=False)
        elif suffix == ".jsonl":
            with open(tmp, "w") as handle:
                for record in _listify(frame).to_dict(orient="records"):
                    handle.write(json.dumps(record, default=_json_default) + "\n")
        elif suffix == ".npz":
            arrays = {}
            for column in frame.columns:
                values = frame[column].to_list()
                arrays[column] = np.stack(values) if column in ARRAY_COLUMNS and values else np.asarray(values)
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        else:
            raise ValueError(f"write_table: unknown format {suffix!r}; use one of {', '.join(TABLE_FORMATS)}")
    return target


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by ``write_table``; array columns come back as NumPy arrays."""
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(source)
    elif suffix == ".jsonl":
        frame = pd.read_json(source, lines=True)
    elif suffix == ".csv":
        frame = pd.read_csv(source)
        embedding_columns = [c for c in frame.columns if c.startswith("e") and c[1:].isdigit()]
        if embedding_columns:
            embedding = pd.Series(list(frame[embedding_columns].to_numpy(np.float32)), index=frame.index, name="embedding")
            frame = pd.concat([frame.drop(columns=embedding_columns), embedding], axis=1)
        if "landmarks" in frame:
            frame["landmarks"] = [_parse_number_list(value) for value in frame["landmarks"]]
    elif suffix == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            frame = pd.DataFrame({key: list(archive[key]) if archive[key].ndim > 1 else archive[key] for key in archive.files})
    else:
        raise ValueError(f"read_table: unknown format {suffix!r}; use one of {', '.join(TABLE_FORMATS)}")
    for column in ARRAY_COLUMNS:
        if column in frame:
            frame[column] = [np.asarray(value, dtype=np.float32) for value in frame[column]]
    return frame


def _listify(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ARRAY_COLUMNS:
        if column in out:
            out[column] = [np.asarray(value).ravel().tolist() for value in out[column]]
    return out


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "landmarks" in out:
        out["landmarks"] = [" ".join(f"{v:.2f}" for v in np.asarray(value).ravel()) for value in out["landmarks"]]
    if "embedding" in out and len(out):
        matrix = np.stack(out["embedding"].to_list())
        embedding = pd.DataFrame(matrix, columns=[f"e{i}" for i in range(matrix.shape[1])], index=out.index)
        out = pd.concat([out.drop(columns=["embedding"]), embedding], axis=1)
    return out


def _parse_number_list(value: object) -> np.ndarray:
    """CSV stores a landmark array as space-separated numbers; an empty cell (no face) becomes an empty array."""
    if isinstance(value, str):
        return np.array(value.split(), dtype=np.float32)
    return np.zeros(0, dtype=np.float32)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
