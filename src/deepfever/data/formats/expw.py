"""ExpW, the Expression in-the-Wild dataset (Zhang et al. 2018), as its owners ship it.

Layout: ``ROOT/label/label.lst`` with lines ``image_name face_id_in_image face_box_top
face_box_left face_box_right face_box_bottom face_box_cofidence expression_label`` and the full
photos in ``ROOT/image/origin/``. One photo may hold several labelled faces, so every sample carries
its ``box`` = (left, top, right, bottom) in pixels. One ``all`` split.

Label mapping (ExpW code -> ours): 0 angry -> anger, 1 disgust -> disgust, 2 fear -> fear,
3 happy -> happy, 4 sad -> sad, 5 surprise -> surprise, 6 neutral -> neutral. ExpW has no contempt.

Errors: a line without 8 fields or with non-numeric box, confidence or label raises
``DataFormatError`` naming file and line; unknown codes, empty boxes and missing photos are skipped
and counted.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.data.formats.fer2013 import FER2013_TO_EMOTION
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

LABEL_FILE = Path("label") / "label.lst"
IMAGE_FOLDER = Path("image") / "origin"
EXPW_TO_EMOTION = FER2013_TO_EMOTION
"""ExpW codes its 7 expressions as FER2013 does (0 angry ... 6 neutral)."""


@register_format("expw")
def read_expw(root: str) -> dict[str, DatasetSplit]:
    """Read ExpW's labelled faces as one ``all`` split with boxes.

    Example:
        >>> read_dataset("expw", "data/ExpW")["all"].samples[0].box  # doctest: +SKIP
        (106.0, 28.0, 193.0, 115.0)
    """
    base = Path(root)
    label_file = base / LABEL_FILE
    if not label_file.is_file():
        raise DataFormatError(f"read_expw: no {LABEL_FILE} under {root}; point root at the folder holding label/ and image/")
    images = base / IMAGE_FOLDER
    existing = frozenset(os.listdir(images)) if images.is_dir() else frozenset()
    samples: list[Sample] = []
    skipped: Counter = Counter()
    with open(label_file) as handle:
        for line, text in enumerate(handle, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) != 8:
                raise DataFormatError(
                    f"{label_file}, line {line}: expected 8 fields (image_name face_id top left right bottom "
                    f"confidence label), got {len(fields)}"
                )
            name = fields[0]
            try:
                top, left, right, bottom, _confidence = (float(value) for value in fields[2:7])
                code = int(fields[7])
            except ValueError as error:
                raise DataFormatError(f"{label_file}, line {line}: box, confidence and label must be numbers ({error})") from error
            if code not in EXPW_TO_EMOTION:
                reason = f"label {code} not in 0..6"
            elif right <= left or bottom <= top:
                reason = "empty face box"
            elif name not in existing:
                reason = "image file missing"
            else:
                samples.append(Sample(path=str(images / name), label=EXPW_TO_EMOTION[code], box=(left, top, right, bottom)))
                continue
            skipped[reason] += 1
            logger.debug("%s, line %d: skipped, %s", label_file, line, reason)
    return {"all": DatasetSplit("all", samples, skipped)}
