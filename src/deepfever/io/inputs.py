"""Expand what a user names (files, folders, globs) into a sorted list of media files."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from deepfever.io.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


def expand_inputs(inputs: Iterable[str | os.PathLike], suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files are kept as given (even with an unknown suffix, so they get a failure row, not silence);
    folders are searched recursively for ``suffixes``; globs are expanded.

    Raises FileNotFoundError naming every input that matches nothing, before any work is done.
    """
    found: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                missing.append(text)
            found.extend(files)
        else:
            missing.append(text)
    if missing:
        raise FileNotFoundError(f"no such file, folder or matching glob: {', '.join(missing)}")
    unique: dict[Path, None] = dict.fromkeys(found)
    return list(unique)
