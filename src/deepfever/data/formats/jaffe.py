"""JAFFE (Lyons et al. 1998): 213 posed images of 10 Japanese women, labels in the file names.

Layout: a flat folder of ``KA.AN1.39.tiff``-style files: subject ``KA``, expression ``AN`` with
repetition ``1``, image number ``39``. One ``all`` split; ``subject`` keeps people out of their own
test fold.

Label mapping (code -> ours): NE neutral, HA happy, SA sad, SU surprise, FE fear, DI disgust,
AN anger. JAFFE has no contempt.

Errors: a folder without JAFFE images raises ``DataFormatError``; image files whose name does not
follow the pattern or whose code is unknown are skipped and counted (the README is not an image).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError
from deepfever.io.images import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

JAFFE_TO_EMOTION = {
    "NE": EMOTION_INDEX["neutral"],
    "HA": EMOTION_INDEX["happy"],
    "SA": EMOTION_INDEX["sad"],
    "SU": EMOTION_INDEX["surprise"],
    "FE": EMOTION_INDEX["fear"],
    "DI": EMOTION_INDEX["disgust"],
    "AN": EMOTION_INDEX["anger"],
}
JAFFE_NAME = re.compile(r"^(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})\d+\.\d+$")


@register_format("jaffe")
def read_jaffe(root: str) -> dict[str, DatasetSplit]:
    """Read every JAFFE image under ``root`` as one ``all`` split with subjects.

    Example:
        >>> read_dataset("jaffe", "data/jaffe")["all"].samples[0].subject  # doctest: +SKIP
        'KA'
    """
    base = Path(root)
    if not base.is_dir():
        raise DataFormatError(f"read_jaffe: {root} is not a folder; expected the folder of KA.AN1.39.tiff files")
    samples: list[Sample] = []
    skipped: Counter = Counter()
    for path in sorted(base.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = JAFFE_NAME.match(path.stem)
        if match is None:
            reason = "file name is not SUBJECT.CODEn.NUMBER"
        elif match["code"] not in JAFFE_TO_EMOTION:
            reason = f"unknown expression code {match['code']}"
        else:
            samples.append(Sample(path=str(path), label=JAFFE_TO_EMOTION[match["code"]], subject=match["subject"]))
            continue
        skipped[reason] += 1
        logger.debug("%s: skipped, %s", path, reason)
    if not samples:
        raise DataFormatError(f"read_jaffe: no images named like KA.AN1.39.tiff under {root}")
    return {"all": DatasetSplit("all", samples, skipped)}
