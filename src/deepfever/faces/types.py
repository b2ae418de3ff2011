"""The record a detector returns for one face."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Order of the five landmarks; "left" is the image's left (the subject's right eye)."""


@dataclass(frozen=True)
class Face:
    """One detected face: box ``(x1, y1, x2, y2)`` in pixels, 5 landmarks ``(5, 2)`` as (x, y), score."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float
