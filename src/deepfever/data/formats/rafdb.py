"""RAF-DB basic emotions (Li et al. 2017), as its owners ship it.

Layout: ``ROOT/EmoLabel/list_patition_label.txt`` (the official spelling) with lines
``train_00001.jpg 5``; images ``ROOT/Image/aligned/train_00001_aligned.jpg`` or, with
``aligned=False``, ``ROOT/Image/original/train_00001.jpg``. Splits ``train`` and ``test`` come from the
file-name prefix.

Label mapping (RAF-DB code -> ours): 1 Surprise -> surprise, 2 Fear -> fear, 3 Disgust -> disgust,
4 Happiness -> happy, 5 Sadness -> sad, 6 Anger -> anger, 7 Neutral -> neutral. RAF-DB basic has no
contempt.

Errors: a line that is not ``name label`` raises ``DataFormatError`` naming file and line; unknown
codes, unknown prefixes (counted in a sample-less ``unassigned`` split) and missing images are skipped
and counted.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAFDB_TO_EMOTION = {
    1: EMOTION_INDEX["surprise"],
    2: EMOTION_INDEX["fear"],
    3: EMOTION_INDEX["disgust"],
    4: EMOTION_INDEX["happy"],
    5: EMOTION_INDEX["sad"],
    6: EMOTION_INDEX["anger"],
    7: EMOTION_INDEX["neutral"],
}
SPLIT_PREFIXES = ("train", "test")
UNASSIGNED = "unassigned"


def rafdb_image_name(name: str, aligned: bool) -> str:
    """``train_00001.jpg`` -> ``train_00001_aligned.jpg`` for the aligned crops, unchanged otherwise."""
    if not aligned:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}_aligned.{suffix}" if dot else f"{name}_aligned"


@register_format("rafdb")
def read_rafdb(root: str, aligned: bool = True) -> dict[str, DatasetSplit]:
    """Read RAF-DB basic into ``train`` and ``test`` splits.

    Example:
        >>> splits = read_dataset("rafdb", "data/RAF-DB/basic", aligned=True)  # doctest: +SKIP
    """
    base = Path(root)
    label_file = base / LABEL_FILE
    if not label_file.is_file():
        raise DataFormatError(f"read_rafdb: no {LABEL_FILE} under {root}; point root at RAF-DB's basic/ folder")
    images = base / "Image" / ("aligned" if aligned else "original")
    existing = frozenset(os.listdir(images)) if images.is_dir() else frozenset()
    splits = {name: DatasetSplit(name, []) for name in (*SPLIT_PREFIXES, UNASSIGNED)}
    with open(label_file) as handle:
        for line, text in enumerate(handle, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise DataFormatError(f"{label_file}, line {line}: expected 'image_name label', got {text.strip()!r}")
            name, code = fields[0], int(fields[1])
            prefix = name.split("_")[0]
            split = splits[prefix if prefix in SPLIT_PREFIXES else UNASSIGNED]
            image_name = rafdb_image_name(name, aligned)
            if split.name == UNASSIGNED:
                reason = f"file name prefix {prefix!r} is neither train_ nor test_"
            elif code not in RAFDB_TO_EMOTION:
                reason = f"label {code} not in 1..7"
            elif image_name not in existing:
                reason = "image file missing"
            else:
                split.samples.append(Sample(path=str(images / image_name), label=RAFDB_TO_EMOTION[code]))
                continue
            split.skipped[reason] += 1
            logger.debug("%s, line %d: skipped, %s", label_file, line, reason)
    return {name: split for name, split in splits.items() if split.samples or split.skipped}
