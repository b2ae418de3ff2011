"""Your own data: a folder per class (``folder``), a CSV manifest (``csv``) or unlabelled faces (``images``).

``folder``: ``ROOT/<class>/<image>``. Class names are matched to ours case-insensitively, with common
synonyms (happiness -> happy, sadness -> sad, angry -> anger, ...); see ``CLASS_SYNONYMS``. Unknown
names raise an error that lists them, unless ``class_names`` is given: then the dataset keeps its own
classes and ``Sample.label`` indexes ``class_names`` (``folder_class_names(root)`` lists them).

``csv``: a manifest with columns ``path,label`` and optional ``valence``, ``arousal``, ``subject``
and ``split`` (default split ``all``). Relative paths are resolved against the CSV's folder; an
empty label means unlabelled, an empty valence/arousal means NaN. Labels are class names as above
or, without ``class_names``, integer indices into ``EMOTIONS``.

Errors: unknown class names, missing columns and non-numeric valence/arousal raise
``DataFormatError`` naming file and line; missing image files are skipped and counted.
"""
from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

from deepfever.data.formats.base import DatasetSplit, NO_LABEL, Sample, register_format
from deepfever.labels import EMOTION_INDEX, EMOTIONS
from deepfever.errors import DataFormatError
from deepfever.io.images import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

CLASS_SYNONYMS: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    "neutrality": "neutral", "calm": "neutral",
    "happiness": "happy", "joy": "happy", "smile": "happy",
    "sadness": "sad", "unhappy": "sad",
    "surprised": "surprise",
    "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgusted": "disgust",
    "angry": "anger", "mad": "anger",
    "contemptuous": "contempt",
}
MANIFEST_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("valence", "arousal", "subject", "split")


def folder_class_names(root: str) -> list[str]:
    """The class folders under ``root``, sorted: pass them (or a reordering) as ``class_names``."""
    base = Path(root)
    if not base.is_dir():
        raise DataFormatError(f"folder_class_names: {root} is not a folder; expected ROOT/<class>/<image>")
    return sorted(path.name for path in base.iterdir() if path.is_dir() and not path.name.startswith("."))


def class_index(names: Sequence[str], class_names: Sequence[str] | None, where: str) -> dict[str, int]:
    """Map each dataset class name to a label index, or raise listing every name that has no match."""
    if class_names is not None:
        own = {name: index for index, name in enumerate(class_names)}
        unknown = sorted(set(names) - set(own))
        valid = ", ".join(class_names)
    else:
        own = {name: EMOTION_INDEX[CLASS_SYNONYMS[name.lower()]] for name in names if name.lower() in CLASS_SYNONYMS}
        unknown = sorted(set(names) - set(own))
        valid = ", ".join(sorted(CLASS_SYNONYMS))
    if unknown:
        raise DataFormatError(
            f"{where}: unknown class names {unknown}; expected one of: {valid}. "
            "Rename them, or pass class_names=[...] to keep the dataset's own classes"
        )
    return own


@register_format("folder")
def read_folder(root: str, class_names: Sequence[str] | None = None) -> dict[str, DatasetSplit]:
    """Read ``ROOT/<class>/<image>`` as one ``all`` split.

    Example:
        >>> read_dataset("folder", "photos", class_names=folder_class_names("photos"))  # doctest: +SKIP
    """
    folders = folder_class_names(root)
    if not folders:
        raise DataFormatError(f"read_folder: no class folders under {root}; expected ROOT/<class>/<image>")
    index = class_index(folders, class_names, f"read_folder({root!r})")
    samples: list[Sample] = []
    skipped: Counter = Counter()
    for folder in folders:
        for path in sorted((Path(root) / folder).iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path=str(path), label=index[folder]))
            elif not path.name.startswith("."):
                skipped["not an image file"] += 1
                logger.debug("%s: skipped, not an image file", path)
    return {"all": DatasetSplit("all", samples, skipped)}


@register_format("images")
def read_images(root: str) -> dict[str, DatasetSplit]:
    """Every image under ``root`` (recursively, sorted) as one unlabelled ``all`` split.

    For faces without labels (self-distillation, consistency training) that should still go
    through ``data prepare`` and its detector and alignment like any labelled set.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataFormatError(f"read_images: {root} is not a folder of images")
    samples, skipped = [], Counter()
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            samples.append(Sample(path=str(path)))
        elif path.is_file() and not path.name.startswith("."):
            skipped["not an image file"] += 1
    if not samples:
        raise DataFormatError(f"read_images: no image files under {root}")
    return {"all": DatasetSplit("all", samples, skipped)}


def _float_or_nan(text: str, where: str, column: str) -> float:
    if not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError as error:
        raise DataFormatError(f"{where}: {column} must be a number or empty, got {text!r}") from error


def _manifest_label(text: str, class_names: Sequence[str] | None, where: str) -> int:
    text = text.strip()
    if not text:
        return NO_LABEL
    if class_names is None and text.isdigit():
        if int(text) >= len(EMOTIONS):
            raise DataFormatError(f"{where}: label index {text} is outside 0..{len(EMOTIONS) - 1} (EMOTIONS)")
        return int(text)
    return class_index([text], class_names, where)[text]


@register_format("csv")
def read_manifest(root: str, class_names: Sequence[str] | None = None) -> dict[str, DatasetSplit]:
    """Read a CSV manifest (``root`` is the CSV file) into splits from its ``split`` column.

    Example:
        >>> read_dataset("csv", "data/mine/manifest.csv")["all"].samples[0].path  # doctest: +SKIP
    """
    manifest = Path(root)
    if not manifest.is_file():
        raise DataFormatError(f"read_manifest: {root} is not a file; expected a CSV with columns path,label")
    splits: dict[str, DatasetSplit] = {}
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [column for column in MANIFEST_COLUMNS if column not in columns]
        if missing:
            raise DataFormatError(
                f"{manifest}, line 1: missing columns {missing}; expected path,label and optionally "
                f"{','.join(OPTIONAL_COLUMNS)}, got {columns}"
            )
        for line, row in enumerate(reader, start=2):
            where = f"{manifest}, line {line}"
            if None in row or any(value is None for value in row.values()):
                raise DataFormatError(f"{where}: expected {len(columns)} fields like the header")
            split_name = (row.get("split") or "all").strip()
            split = splits.setdefault(split_name, DatasetSplit(split_name, []))
            path = Path(row["path"])
            path = path if path.is_absolute() else manifest.parent / path
            label = _manifest_label(row["label"], class_names, where)
            if not path.is_file():
                split.skipped["image file missing"] += 1
                logger.debug("%s: skipped, image file missing: %s", where, path)
                continue
            split.samples.append(
                Sample(
                    path=str(path),
                    label=label,
                    valence=_float_or_nan(row.get("valence") or "", where, "valence"),
                    arousal=_float_or_nan(row.get("arousal") or "", where, "arousal"),
                    subject=(row.get("subject") or "").strip() or None,
                )
            )
    if not splits:
        raise DataFormatError(f"read_manifest: {root} has a header but no rows")
    return splits
