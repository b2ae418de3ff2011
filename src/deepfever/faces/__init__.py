"""Detect faces and align them to the template the model was trained with.

Importing this package is cheap: detectors (torch, OpenCV) load on first attribute access.

Example:
    >>> from deepfever.faces import create_detector, load_default_template, align_faces  # doctest: +SKIP
    >>> faces = create_detector("mtcnn").detect(image)  # doctest: +SKIP
    >>> crops = align_faces(image, faces, load_default_template())  # doctest: +SKIP
"""
from __future__ import annotations

from deepfever._lazy import lazy_attributes
from deepfever.faces.types import LANDMARK_NAMES, Face

_LAZY = {
    "Detector": "deepfever.faces.detect",
    "PassThroughDetector": "deepfever.faces.detect",
    "create_detector": "deepfever.faces.detect",
    "list_detectors": "deepfever.faces.detect",
    "MTCNN": "deepfever.faces.mtcnn",
    "YuNet": "deepfever.faces.yunet",
    "AlignmentTemplate": "deepfever.faces.align",
    "align_face": "deepfever.faces.align",
    "align_faces": "deepfever.faces.align",
    "ready_crop": "deepfever.faces.align",
    "estimate_similarity": "deepfever.faces.align",
    "transform_points": "deepfever.faces.align",
    "load_default_template": "deepfever.faces.template",
}

__all__ = sorted(["Face", "LANDMARK_NAMES", *_LAZY])

__getattr__ = lazy_attributes(__name__, _LAZY)
