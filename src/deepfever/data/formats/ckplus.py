"""CK+ (Extended Cohn-Kanade), as the widely shared CK+48 folder layout.

``ROOT/<class>/Sxxx_yyy_zzzzzzzz.png``: 48x48 grey peak-expression frames; ``Sxxx`` is the subject,
which probes use to keep a person out of their own test fold.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.data.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError

CKPLUS48_FOLDERS = {
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
}


@register_format("ckplus48")
def read_ckplus48(root: str) -> dict[str, DatasetSplit]:
    """Read the CK+48 layout as one ``all`` split with subjects (folds are the probe's business)."""
    base = Path(root)
    samples: list[Sample] = []
    skipped: Counter = Counter()
    for folder, emotion in CKPLUS48_FOLDERS.items():
        for path in sorted((base / folder).glob("*.png")):
            subject = path.name.split("_")[0]
            if not subject.startswith("S"):
                skipped[f"file name without subject prefix: {path.name}"] += 1
                continue
            samples.append(Sample(path=str(path), label=EMOTION_INDEX[emotion], subject=subject))
    if not samples:
        raise DataFormatError(f"read_ckplus48: no <class>/S*.png files under {root}; expected folders {sorted(CKPLUS48_FOLDERS)}")
    return {"all": DatasetSplit("all", samples, skipped)}
