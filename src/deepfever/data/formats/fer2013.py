"""FER2013 (the ICML 2013 challenge release): one CSV with the 48x48 grey pixels inline.

Layout: ``ROOT/fer2013.csv`` (``ROOT`` may also be the CSV itself) with header
``emotion,pixels,Usage``; ``pixels`` is 2304 space-separated integers in 0..255, row-major.

Label mapping (FER2013 code -> ours): 0 Angry -> anger, 1 Disgust -> disgust, 2 Fear -> fear,
3 Happy -> happy, 4 Sad -> sad, 5 Surprise -> surprise, 6 Neutral -> neutral. FER2013 has no contempt.
Splits: ``Usage`` Training -> ``train``, PublicTest -> ``valid``, PrivateTest -> ``test``.

Rows with an unknown Usage are counted in a sample-less ``unassigned`` split.
Errors: a wrong header, a row with the wrong number of fields or pixels that are not 2304 integers in
0..255 raise ``DataFormatError`` naming file and line; an unknown emotion code or Usage is skipped
and counted.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

FER2013_HEADER = ["emotion", "pixels", "Usage"]
FER2013_SIZE = 48
FER2013_TO_EMOTION = {
    0: EMOTION_INDEX["anger"],
    1: EMOTION_INDEX["disgust"],
    2: EMOTION_INDEX["fear"],
    3: EMOTION_INDEX["happy"],
    4: EMOTION_INDEX["sad"],
    5: EMOTION_INDEX["surprise"],
    6: EMOTION_INDEX["neutral"],
}
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "valid", "PrivateTest": "test"}
UNASSIGNED = "unassigned"
"""Pseudo-split that only accounts for rows whose split is unknown; it never holds samples."""


def parse_pixels(text: str, where: str) -> np.ndarray:
    """Parse one ``pixels`` field into a (48, 48) uint8 image; ``where`` is "file, line N" for errors."""
    try:
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError as error:
        raise DataFormatError(f"{where}: pixels must be space-separated integers ({error})") from error
    if values.size != FER2013_SIZE * FER2013_SIZE:
        raise DataFormatError(f"{where}: expected {FER2013_SIZE * FER2013_SIZE} pixel values, got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise DataFormatError(f"{where}: pixel values must lie in 0..255, got {values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(FER2013_SIZE, FER2013_SIZE)


def find_fer2013_csv(root: str | Path) -> Path:
    """Accept the CSV itself, a folder holding it, or the release's ``fer2013/`` subfolder."""
    base = Path(root)
    for candidate in (base, base / "fer2013.csv", base / "fer2013" / "fer2013.csv"):
        if candidate.is_file():
            return candidate
    raise DataFormatError(f"find_fer2013_csv: no fer2013.csv at {base} (looked in {base} and {base / 'fer2013'})")


def read_fer2013_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """Return ``(line, emotion, pixels, Usage)`` for every data row after checking the header."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != FER2013_HEADER:
            raise DataFormatError(f"{path}, line 1: expected header {','.join(FER2013_HEADER)}, got {header}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row) != 3:
                raise DataFormatError(f"{path}, line {line}: expected 3 fields (emotion, pixels, Usage), got {len(row)}")
            rows.append((line, row[0], row[1], row[2]))
    return rows


@register_format("fer2013")
def read_fer2013(root: str) -> dict[str, DatasetSplit]:
    """Read ``fer2013.csv`` into ``train``/``valid``/``test`` splits with pixels inline.

    Example:
        >>> splits = read_dataset("fer2013", "data/fer2013")  # doctest: +SKIP
        >>> splits["train"].samples[0].pixels.shape
        (48, 48)
    """
    path = find_fer2013_csv(root)
    splits = {name: DatasetSplit(name, []) for name in (*USAGE_TO_SPLIT.values(), UNASSIGNED)}
    for line, emotion, pixels, usage in read_fer2013_rows(path):
        where = f"{path}, line {line}"
        split = USAGE_TO_SPLIT.get(usage)
        if split is None:
            splits[UNASSIGNED].skipped[f"unknown Usage {usage!r}"] += 1
            logger.debug("%s: skipped, unknown Usage %r", where, usage)
            continue
        code = int(emotion) if emotion.strip().isdigit() else None
        if code not in FER2013_TO_EMOTION:
            splits[split].skipped[f"emotion code {emotion!r} not in 0..6"] += 1
            logger.debug("%s: skipped, emotion code %r", where, emotion)
            continue
        splits[split].samples.append(Sample(path=None, label=FER2013_TO_EMOTION[code], pixels=parse_pixels(pixels, where)))
    return {name: split for name, split in splits.items() if split.samples or split.skipped}
