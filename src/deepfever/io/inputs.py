"""Expand what a user names (files, folders, globs) into a sorted list of media files, each file once.

Links are followed once, by real path: a linked folder is searched like any other unless its real
folder was searched already (so a loop ends at its first repeat), and a file reached under two names
(a link, a second linked folder) gives one entry, under the first name found, real names before links.
"""
from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path
from typing import Iterable

from deepfever.io.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


def expand_inputs(inputs: Iterable[str | os.PathLike], suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files are kept as given (even with an unknown suffix, so they get a failure row, not silence);
    folders are searched recursively for ``suffixes``; globs are expanded (``**`` through linked folders too).

    Raises FileNotFoundError naming every input that matches nothing, before any work is done.
    """
    found: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in _files_below(path) if p.suffix.lower() in suffixes))
        elif glob.has_magic(text):
            files = sorted(_glob_files(text))
            if not files:
                missing.append(text)
            found.extend(files)
        else:
            missing.append(text)
    if missing:
        raise FileNotFoundError(f"no such file, folder or matching glob: {', '.join(missing)}")
    return _one_name_per_file(found)


def _files_below(root: Path) -> list[Path]:
    """Every file (and dangling link, which then gets its failure row) below ``root``, real folders
    first, then linked folders whose real folder was not searched yet."""
    searched: set[str] = set()
    files: list[Path] = []
    pending = [root]
    while pending:
        top = pending.pop(0)
        for folder, folders, names in os.walk(top):
            real = os.path.realpath(folder)
            if real in searched:
                folders.clear()
                continue
            searched.add(real)
            folders.sort()
            pending += [Path(folder, name) for name in folders if os.path.islink(os.path.join(folder, name))]
            files += [Path(folder, name) for name in sorted(names) if _file_or_dangling_link(os.path.join(folder, name))]
    return _one_name_per_file(files)


def _glob_files(pattern: str) -> list[Path]:
    """Files matching ``pattern``; a ``**`` pattern is matched against ``_files_below`` its fixed part,
    so a loop of links cannot make it run for ever."""
    parts = Path(pattern).parts
    if "**" not in parts:
        return [Path(name) for name in glob.glob(pattern) if _file_or_dangling_link(name)]
    fixed = next(position for position, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    if not root.is_dir():
        return []
    return [path for path in _files_below(root) if _matches(path.relative_to(root).parts, parts[fixed:])]


def _file_or_dangling_link(path: str) -> bool:
    """A file to list: a regular file (or a link to one), or a link to nothing, which then gets a failure row."""
    return os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path))


def _matches(names: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """``glob``'s rules, component by component: ``**`` spans any number of folders; wildcards skip hidden names."""
    if not pattern:
        return not names
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(names[skip:], rest) for skip in range(len(names) + 1)
                   if not any(name.startswith(".") for name in names[:skip]))
    if not names or (names[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(names[0], head) and _matches(names[1:], rest)


def _one_name_per_file(paths: Iterable[Path]) -> list[Path]:
    """``paths`` in order without a second name for a file already listed (same real path)."""
    chosen: dict[str, Path] = {}
    for path in paths:
        key = os.path.realpath(path)
        if key not in chosen or (chosen[key].is_symlink() and not path.is_symlink()):
            chosen[key] = path
    return list(chosen.values())
