"""The record a detector returns for one face, mapped back from resized copies, and the padded box around it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Order of the five landmarks; "left" is the image's left (the subject's right eye)."""


@dataclass(frozen=True)
class Face:
    """One detected face: box ``(x1, y1, x2, y2)`` in pixels, 5 landmarks ``(5, 2)`` as (x, y), score."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float


def padded_box(box: Sequence[float], margin: float, image_shape: Sequence[int], per_axis: bool = False) -> tuple[int, int, int, int]:
    """Integer ``(left, top, right, bottom)`` of ``box`` grown by ``margin`` and clipped to the image.

    The margin is a fraction of the box's longer side on every edge (thumbnails keep a face's context
    even for thin boxes), or with ``per_axis`` of its width left/right and height top/bottom (a face
    box re-detected inside keeps its aspect). Outward rounding never cuts into the box. The result
    may be empty (right <= left) when the box lies outside the image.
    """
    x1, y1, x2, y2 = (float(value) for value in box)
    height, width = int(image_shape[0]), int(image_shape[1])
    pad_x = margin * ((x2 - x1) if per_axis else max(x2 - x1, y2 - y1))
    pad_y = margin * ((y2 - y1) if per_axis else max(x2 - x1, y2 - y1))
    return (max(0, math.floor(x1 - pad_x)), max(0, math.floor(y1 - pad_y)),
            min(width, math.ceil(x2 + pad_x)), min(height, math.ceil(y2 + pad_y)))


def face_in_original(face: Face, scale: float | Sequence[float], offset: Sequence[float] = (0.0, 0.0)) -> Face:
    """``face`` found in a copy of an image cut at ``offset`` (x, y) and resized by ``scale`` (one factor or x, y),
    in the original image's pixels.

    Box edges are continuous coordinates and scale as they are; landmarks are pixel centres, so they
    scale about the half-pixel (the convention of ``cv2.resize``).
    """
    factor = np.broadcast_to(np.asarray(scale, np.float32), (2,))
    shift = np.asarray(offset, np.float32)
    return Face(box=(face.box / np.tile(factor, 2) + np.tile(shift, 2)).astype(np.float32),
                landmarks=((face.landmarks + 0.5) / factor - 0.5 + shift).astype(np.float32), score=face.score)
