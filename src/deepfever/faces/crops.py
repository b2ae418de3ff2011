"""A sample of real aligned faces from image files, e.g. to calibrate an int8 export on.

It lives with the faces (detect, then align) so that whoever needs real crops (``deepfever export onnx
--int8``, a benchmark) makes them here and hands them on: the exporter never needs a detector.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from deepfever.defaults import DETECTOR
from deepfever.errors import ImageReadError
from deepfever.faces.align import AlignmentTemplate, align_faces
from deepfever.faces.detect import create_detector
from deepfever.io.images import IMAGE_SUFFIXES, load_image
from deepfever.io.inputs import expand_inputs


def sample_face_crops(inputs: Sequence[str | os.PathLike], template: AlignmentTemplate, detector: str = DETECTOR,
                      limit: int = 512) -> np.ndarray:
    """Aligned face crops from images (files, folders, globs): up to ``limit`` faces, one per image.

    Images are taken in sorted order, one face each (the first found); ``detector="none"`` reads
    images that are face crops already (e.g. FER+ folders). Unreadable files and images without a
    face are skipped.

    Example:
        >>> crops = sample_face_crops(["FERPlus/FER2013Train"], extractor.template_, "none")  # doctest: +SKIP
    """
    if limit < 1:
        raise ValueError(f"sample_face_crops: limit must be at least 1, got {limit}")
    finder = create_detector(detector, template=template) if detector == "none" else create_detector(detector)
    crops: list[np.ndarray] = []
    for path in expand_inputs(inputs, IMAGE_SUFFIXES):
        try:
            image = load_image(path)
        except ImageReadError:
            continue
        faces = finder.detect(image)[:1]
        crops.extend(align_faces(image, faces, template))
        if len(crops) >= limit:
            break
    if not crops:
        raise ValueError(f"sample_face_crops: no face found in {[str(item) for item in inputs]}; "
                         "pass photos of faces, or folders of face crops with detector 'none'")
    return np.stack(crops)
