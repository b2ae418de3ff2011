"""The failures file written beside an output: one row per input that gave no (or partial) rows, and why."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Mapping, Sequence

from deepfever.io.atomic import atomic_write

FAILURE_COLUMNS = ("path", "reason")


def failures_path_for(output: str | os.PathLike) -> Path:
    """``OUT.<suffix>.failures.csv`` beside ``OUT.<suffix>`` (``faces.parquet`` -> ``faces.parquet.failures.csv``),
    named after the whole output name so that ``faces.csv`` and ``faces.npz`` never share one."""
    output = Path(output)
    return output.with_name(output.name + ".failures.csv")


def write_failures(failures: Sequence[Mapping[str, object]], path: str | os.PathLike,
                   columns: Sequence[str] = FAILURE_COLUMNS) -> Path:
    """Write ``failures`` (dicts with ``columns`` as keys; others ignored) to the CSV ``path``, atomically.

    Written even when empty, header only, so the file always belongs to the output beside it.

    Example:
        >>> write_failures([{"path": "a.jpg", "reason": "no face detected"}], failures_path_for("faces.parquet"))  # doctest: +SKIP
    """
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(failures)
    return Path(path)
