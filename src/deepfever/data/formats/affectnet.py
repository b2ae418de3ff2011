"""AffectNet (Mollahosseini et al. 2017), manually annotated part, as its owners ship it.

Layout: ``ROOT/training.csv`` (split ``train``) and ``ROOT/validation.csv`` (split ``valid``) with header
``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal``;
images under ``ROOT/Manually_Annotated_Images/<subDirectory_filePath>`` (or ``images_dir``).

Label mapping: expression codes 0..7 are ours unchanged (our label space is AffectNet's order).
Codes 8 None, 9 Uncertain and 10 Non-Face are skipped and counted. Valence and arousal outside
[-1, 1] (AffectNet writes -2 for "not rated") become NaN, i.e. masked. ``facial_landmarks`` is 136
';'-separated numbers (68 x;y pairs) -> ``landmarks`` (68, 2); the box becomes (x, y, x + w, y + h).

Errors: a wrong header, a row with the wrong number of fields or non-numeric box, code, valence or
arousal raise ``DataFormatError`` naming file and line. Rows with unusable landmarks, unknown codes
or a missing image file are skipped and counted.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path

import numpy as np

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

AFFECTNET_HEADER = [
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
    "facial_landmarks", "expression", "valence", "arousal",
]
AFFECTNET_FILES = {"train": "training.csv", "valid": "validation.csv"}
SKIPPED_CODES = {8: "None", 9: "Uncertain", 10: "Non-Face"}
NUM_LANDMARKS = 68


def _dimension(text: str) -> float:
    """Valence/arousal in [-1, 1], NaN (masked) for AffectNet's -2 "not rated" or anything else outside."""
    value = float(text)
    return value if -1.0 <= value <= 1.0 else math.nan


def _landmarks(text: str) -> np.ndarray | None:
    try:
        values = np.array([float(value) for value in text.split(";") if value.strip()], dtype=np.float32)
    except ValueError:
        return None
    if values.size != 2 * NUM_LANDMARKS:
        return None
    return values.reshape(NUM_LANDMARKS, 2)


class _FileIndex:
    """Answer "does this image exist?" with one directory listing per subfolder instead of one stat per image."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listings: dict[str, frozenset[str]] = {}

    def exists(self, relative: str) -> bool:
        folder, _, name = relative.rpartition("/")
        if folder not in self.listings:
            directory = self.root / folder
            self.listings[folder] = frozenset(os.listdir(directory)) if directory.is_dir() else frozenset()
        return name in self.listings[folder]


def read_affectnet_csv(path: Path, images: Path, split: str) -> DatasetSplit:
    """Read one AffectNet annotation CSV into a split whose sample paths point under ``images``."""
    result = DatasetSplit(split, [])
    index = _FileIndex(images)
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != AFFECTNET_HEADER:
            raise DataFormatError(f"{path}, line 1: expected header {','.join(AFFECTNET_HEADER)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(AFFECTNET_HEADER):
                raise DataFormatError(f"{path}, line {line}: expected {len(AFFECTNET_HEADER)} fields, got {len(row)}")
            relative, x, y, width, height, landmark_text, expression, valence, arousal = row
            try:
                x0, y0, w, h = float(x), float(y), float(width), float(height)
                code = int(expression)
                valence_value, arousal_value = _dimension(valence), _dimension(arousal)
            except ValueError as error:
                raise DataFormatError(
                    f"{path}, line {line}: face box, expression, valence and arousal must be numbers ({error})"
                ) from error
            reason = None
            if code in SKIPPED_CODES:
                reason = f"expression {code} ({SKIPPED_CODES[code]})"
            elif not 0 <= code <= 7:
                reason = f"expression code {code} not in 0..10"
            landmarks = _landmarks(landmark_text)
            if reason is None and landmarks is None:
                reason = f"facial_landmarks is not {2 * NUM_LANDMARKS} ';'-separated numbers"
            if reason is None and not index.exists(relative.replace("\\", "/")):
                reason = "image file missing"
            if reason is not None:
                result.skipped[reason] += 1
                logger.debug("%s, line %d: skipped, %s", path, line, reason)
                continue
            result.samples.append(
                Sample(
                    path=str(images / relative),
                    label=code,
                    valence=valence_value,
                    arousal=arousal_value,
                    box=(x0, y0, x0 + w, y0 + h),
                    landmarks=landmarks,
                )
            )
    return result


@register_format("affectnet")
def read_affectnet(root: str, images_dir: str | None = None) -> dict[str, DatasetSplit]:
    """Read the ``train`` and ``valid`` splits that are present under ``root``.

    Example:
        >>> splits = read_dataset("affectnet", "data/AffectNet")  # doctest: +SKIP
        >>> splits["valid"].samples[0].landmarks.shape
        (68, 2)
    """
    base = Path(root)
    images = Path(images_dir) if images_dir else base / "Manually_Annotated_Images"
    result = {
        split: read_affectnet_csv(base / name, images, split)
        for split, name in AFFECTNET_FILES.items()
        if (base / name).is_file()
    }
    if not result:
        raise DataFormatError(f"read_affectnet: neither training.csv nor validation.csv under {root}")
    return result
