"""The default alignment template, measured on the FER+ training crops themselves.

Why measured: the expression model learns from FER+ 48x48 crops, framed by FER2013's own (unknown)
detector. At inference we must frame faces the same way, or the model sees inputs unlike its
training data. So ``scripts/derive_template.py`` runs our MTCNN on upscaled FER+ training crops and
stores the robust mean landmark position in ``ferplus_template.json``; aligning a new face onto it
reproduces the training framing.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import cv2
import numpy as np

from deepfever.faces.align import AlignmentTemplate
from deepfever.faces.detect import Detector
from deepfever.faces.types import Face, face_in_original

TEMPLATE_FILE = "ferplus_template.json"


def detect_upscaled(detector: Detector, crop: np.ndarray, factor: int = 4) -> list[Face]:
    """Detect faces in a small crop after a bicubic ``factor`` x upscale, in the crop's own pixels.

    Detectors need faces well above 48 px, so small crops are enlarged first; landmarks and boxes are
    mapped back so they can be compared with a template of the crop's size.
    """
    big = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return [face_in_original(face, factor) for face in detector.detect(big)]


def robust_mean(points: np.ndarray, keep: float = 0.9) -> np.ndarray:
    """Mean of (K, 5, 2) landmark sets after dropping the ``1 - keep`` share farthest from the median.

    Outliers are whole faces (a wrong detection, a profile view), so they are dropped by their total
    distance to the per-coordinate median rather than coordinate by coordinate.
    """
    if points.ndim != 3 or points.shape[1:] != (5, 2) or len(points) == 0:
        raise ValueError(f"robust_mean: expected a non-empty (K, 5, 2) array, got shape {points.shape}")
    median = np.median(points, axis=0)
    distance = np.linalg.norm(points - median, axis=2).mean(axis=1)
    kept = points[distance <= np.quantile(distance, keep)]
    return kept.mean(axis=0)


@functools.lru_cache(maxsize=1)
def _packaged() -> dict[str, Any]:
    return json.loads(resources.files("deepfever.faces").joinpath(TEMPLATE_FILE).read_text(encoding="utf-8"))


def load_default_template() -> AlignmentTemplate:
    """The FER+ training framing: five landmark positions in a 48 x 48 crop.

    Example:
        >>> load_default_template().size
        48
    """
    return AlignmentTemplate.from_dict(_packaged())
