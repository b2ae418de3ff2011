"""Face thumbnails cut from source images by a table row's box: the one rule for maps, grids and the server.

Rule: the box grows by ``THUMBNAIL_MARGIN`` of its longer side on every edge (clipped to the image),
and the crop is scaled, keeping its aspect, so that its longer side is ``size`` pixels. Rows of
video frames have no image file to cut from (``load_image`` cannot open a video); every other row
with a box has a thumbnail while its source image can be read, whatever other rows the table holds.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from deepfever.errors import ImageReadError
from deepfever.faces.types import padded_box
from deepfever.io.images import load_image

logger = logging.getLogger(__name__)

THUMBNAIL_MARGIN = 0.15
BOX_COLUMNS = ("box_x1", "box_y1", "box_x2", "box_y2")


def face_thumbnail(image: np.ndarray, box: Sequence[float], size: int, margin: float = THUMBNAIL_MARGIN) -> np.ndarray | None:
    """RGB crop around ``box`` in ``image`` whose longer side is ``size`` pixels; None if the box is off the image.

    Example:
        >>> face_thumbnail(np.zeros((100, 200, 3), np.uint8), (50, 20, 90, 80), 64).shape
        (64, 46, 3)
    """
    left, top, right, bottom = padded_box(box, margin, image.shape)
    if right <= left or bottom <= top:
        return None
    width, height = right - left, bottom - top
    scale = size / max(width, height)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right])).resize(shape, Image.BILINEAR))


def has_image_face(row: Mapping[str, Any]) -> bool:
    """Whether a table row can have a thumbnail: it has a box and is not a video frame (``frame`` missing or NA)."""
    keys = set(row.keys())
    if not set(BOX_COLUMNS) <= keys:
        return False
    return "frame" not in keys or bool(pd.isna(row["frame"]))


def row_thumbnail(row: Mapping[str, Any], size: int, images: dict[str, np.ndarray | None] | None = None) -> np.ndarray | None:
    """The thumbnail of a table row (``path`` and ``box_*``), or None if it has no image face or the image is unreadable.

    ``images`` caches decoded sources across calls (many faces share one photo); an unreadable
    source is cached as None and logged once.
    """
    if not has_image_face(row):
        return None
    images = {} if images is None else images
    path = str(row["path"])
    if path not in images:
        try:
            images[path] = load_image(path)
        except ImageReadError as error:
            logger.debug("no thumbnail for %s: %s", path, error)
            images[path] = None
    image = images[path]
    return None if image is None else face_thumbnail(image, [float(row[name]) for name in BOX_COLUMNS], size)
