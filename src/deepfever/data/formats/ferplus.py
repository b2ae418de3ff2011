"""FER+ (Microsoft's relabelling of FER2013 by 10 raters) in the FERPlus folder layout.

Layout: ``ROOT/FER2013{Train,Valid,Test}/label.csv`` with rows
``name,"(x, y, w, h)",neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``
(vote counts) beside the 48x48 PNGs. Labels follow FERPlus's own ``majority`` rule: votes of a
single rater are dropped as outliers, the top emotion must hold more than half of what remains,
and images whose top vote is ``unknown`` or ``NF`` (not a face) are skipped. ``soft_label`` is the
distribution of the remaining votes over the 8 emotions (the cross-entropy target).

Format ``ferplus_csv`` reads the other published form: ``fer2013new.csv``
(``Usage,Image name,neutral,...,unknown,NF``) joined row by row with FER2013's ``fer2013.csv``, the
way FERPlus's ``generate_training_data.py`` does; rows whose ``Image name`` is empty (images FER+
dropped) are skipped, and the two files must agree on ``Usage`` row by row.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from deepfever.data.formats.base import DatasetSplit, NO_LABEL, Sample, register_format
from deepfever.data.formats.fer2013 import USAGE_TO_SPLIT, find_fer2013_csv, parse_pixels, read_fer2013_rows
from deepfever.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError

FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# FER+ column -> our (AffectNet) index.
FERPLUS_TO_EMOTION = {
    "neutral": EMOTION_INDEX["neutral"],
    "happiness": EMOTION_INDEX["happy"],
    "surprise": EMOTION_INDEX["surprise"],
    "sadness": EMOTION_INDEX["sad"],
    "anger": EMOTION_INDEX["anger"],
    "disgust": EMOTION_INDEX["disgust"],
    "fear": EMOTION_INDEX["fear"],
    "contempt": EMOTION_INDEX["contempt"],
}
FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_CSV_HEADER = ["Usage", "Image name", *FERPLUS_COLUMNS]


def votes_to_targets(votes: np.ndarray) -> tuple[int, np.ndarray | None, str | None]:
    """Map 10 vote counts (FER+ column order) to (majority label, soft 8-vector, skip reason).

    Implements FERPlus's majority rule; the soft target keeps every emotion vote after outlier removal.
    """
    cleaned = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = cleaned.sum()
    if total <= 0:
        return NO_LABEL, None, "no emotion has more than one vote"
    top = int(np.argmax(cleaned))
    if top >= 8:
        return NO_LABEL, None, f"majority vote is {FERPLUS_COLUMNS[top]}"
    emotion_votes = np.zeros(8, dtype=np.float32)
    for column, index in FERPLUS_TO_EMOTION.items():
        emotion_votes[index] = cleaned[FERPLUS_COLUMNS.index(column)]
    soft = emotion_votes / emotion_votes.sum()
    if cleaned[top] <= 0.5 * total:
        return NO_LABEL, soft, "no majority (top emotion holds at most half of the votes)"
    return FERPLUS_TO_EMOTION[FERPLUS_COLUMNS[top]], soft, None


def read_label_csv(label_csv: Path, image_dir: Path, split: str, keep_ambiguous: bool = False) -> DatasetSplit:
    """Read one FERPlus ``label.csv``. ``keep_ambiguous`` keeps no-majority images (soft label only)."""
    samples: list[Sample] = []
    skipped: Counter = Counter()
    with open(label_csv, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if len(row) != 12:
                raise DataFormatError(
                    f"{label_csv}, line {line_number}: expected 12 fields (name, box, 10 vote counts), got {len(row)}"
                )
            try:
                votes = np.array([float(value) for value in row[2:]], dtype=np.float64)
            except ValueError as error:
                raise DataFormatError(f"{label_csv}, line {line_number}: vote counts must be numbers ({error})") from error
            label, soft, reason = votes_to_targets(votes)
            if soft is None or (reason is not None and not keep_ambiguous):
                skipped[reason] += 1
                continue
            samples.append(Sample(path=str(image_dir / row[0]), label=label, soft_label=soft))
    return DatasetSplit(split, samples, skipped)


@register_format("ferplus")
def read_ferplus(root: str, splits: tuple[str, ...] = ("train", "valid", "test"), keep_ambiguous: bool = False) -> dict[str, DatasetSplit]:
    """Read every FERPlus split present under ``root`` (the test split is often withheld)."""
    base = Path(root)
    result: dict[str, DatasetSplit] = {}
    for split in splits:
        folder = base / FOLDERS[split]
        if (folder / "label.csv").is_file():
            result[split] = read_label_csv(folder / "label.csv", folder, split, keep_ambiguous)
    if not result:
        raise DataFormatError(
            f"read_ferplus: no FER2013Train/FER2013Valid/FER2013Test folder with label.csv under {root}"
        )
    return result


@register_format("ferplus_csv")
def read_ferplus_csv(root: str, fer2013_csv: str | None = None, keep_ambiguous: bool = False) -> dict[str, DatasetSplit]:
    """Read ``ROOT/fer2013new.csv`` with pixels from ``fer2013.csv`` (under ``ROOT`` unless given).

    Example:
        >>> splits = read_dataset("ferplus_csv", "data/ferplus", fer2013_csv="data/fer2013.csv")  # doctest: +SKIP
    """
    votes_path = Path(root) / "fer2013new.csv"
    if not votes_path.is_file():
        raise DataFormatError(f"read_ferplus_csv: no fer2013new.csv under {root}; it ships with github.com/microsoft/FERPlus")
    pixels_path = find_fer2013_csv(fer2013_csv or root)
    pixel_rows = read_fer2013_rows(pixels_path)
    splits = {name: DatasetSplit(name, []) for name in USAGE_TO_SPLIT.values()}
    with open(votes_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != FERPLUS_CSV_HEADER:
            raise DataFormatError(f"{votes_path}, line 1: expected header {','.join(FERPLUS_CSV_HEADER)}, got {header}")
        for index, row in enumerate(reader):
            line = index + 2
            if len(row) != len(FERPLUS_CSV_HEADER):
                raise DataFormatError(f"{votes_path}, line {line}: expected {len(FERPLUS_CSV_HEADER)} fields, got {len(row)}")
            if index >= len(pixel_rows):
                raise DataFormatError(
                    f"{votes_path}, line {line}: {pixels_path} has only {len(pixel_rows)} rows; "
                    "the two files must come from the same FER2013 release"
                )
            pixel_line, _, pixels, pixel_usage = pixel_rows[index]
            if row[0] != pixel_usage or row[0] not in USAGE_TO_SPLIT:
                raise DataFormatError(
                    f"{votes_path}, line {line}: Usage {row[0]!r} but {pixels_path}, line {pixel_line} says "
                    f"{pixel_usage!r}; expected matching Usage in {sorted(USAGE_TO_SPLIT)} (rows out of order?)"
                )
            split = splits[USAGE_TO_SPLIT[row[0]]]
            if not row[1].strip():
                split.skipped["no image name (dropped by FER+)"] += 1
                continue
            try:
                votes = np.array([float(value) for value in row[2:]], dtype=np.float64)
            except ValueError as error:
                raise DataFormatError(f"{votes_path}, line {line}: vote counts must be numbers ({error})") from error
            label, soft, reason = votes_to_targets(votes)
            if soft is None or (reason is not None and not keep_ambiguous):
                split.skipped[reason] += 1
                continue
            image = parse_pixels(pixels, f"{pixels_path}, line {pixel_line}")
            split.samples.append(Sample(path=None, label=label, soft_label=soft, pixels=image))
    return {name: split for name, split in splits.items() if split.samples or split.skipped}
