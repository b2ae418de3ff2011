"""Atomic file output: a reader never sees half a file, and nothing is overwritten silently."""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

from deepfever.errors import OVERWRITE, OptionMessage


def _umask() -> int:
    """The process's umask (read once: setting it back at once is the only portable way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
"""Mode of the files written here: what ``open`` would give, not ``mkstemp``'s private 0600."""


def refuse_overwrite(path: str | os.PathLike, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``path`` exists and the caller did not ask to overwrite it."""
    if Path(path).exists() and not overwrite:
        raise FileExistsError(OptionMessage(f"{path} already exists; pass ", OVERWRITE, " to replace it."))


def remove_leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that ``atomic_write(path)`` leaves when its process is killed (``kill -9``).

    Call it only while holding the lock of whatever writes ``path``: a live writer's file looks the same.
    Returns what was deleted.
    """
    final = Path(path)
    # mkstemp's random part is 8 characters: another output's temporaries (``.NAME.x.parquet.*.tmp``) never match.
    leftovers = sorted(final.parent.glob(f".{glob.escape(final.name)}.????????.tmp")) if final.parent.is_dir() else []
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place with ``os.replace``.

    Example:
        >>> with atomic_write("table.csv") as tmp:  # doctest: +SKIP
        ...     frame.to_csv(tmp)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
