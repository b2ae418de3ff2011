"""File names as text: a name whose bytes are not UTF-8 cannot be stored in a table, so it is shown escaped."""
from __future__ import annotations

import os


def printable_name(path: str | os.PathLike) -> str:
    """``path`` as UTF-8-safe text: bytes that are not UTF-8 appear as ``\\xe9`` (``caf\\xe9.jpg``), the rest as is."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_name(path: str | os.PathLike) -> bool:
    """Whether ``path`` can be written into a table (and read back) as it is."""
    return printable_name(path) == os.fsdecode(path)
