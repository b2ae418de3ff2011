"""The face half of the engine: detectors, "shrink, detect, map back", alignment and ready crops.

Dataset preparation needs faces and crops without a model; ``FaceEngine`` adds the model and rows on
top. Both crop through here, so a dataset cache and an extraction give the same crop for the same face.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from deepfever.errors import ImageReadError
from deepfever.faces import detect as detection
from deepfever.faces.align import align_faces, ready_crop
from deepfever.faces.detect import Detector, PassThroughDetector, detect_shrunk
from deepfever.faces.types import Face
from deepfever.io.images import IMAGE_SUFFIXES, load_image
from deepfever.io.inputs import expand_inputs
from deepfever.models.preprocess import to_grey
from deepfever.pipeline.stage import FaceStage


class FacePath:
    """Photo -> faces -> aligned crops, as a ``FaceStage`` says.

    Args:
        stage: detector (the default one), template, channels of the crops.
        device: where detectors that can run on a GPU run.
        detector_options: keyword arguments of the stage's detector (e.g. YuNet's ``model_path``).

    Example:
        >>> from deepfever.faces import load_default_template
        >>> path = FacePath(FaceStage("none", "mtcnn", load_default_template(), "grey"))
        >>> path.model_crops(path.ready_crop(np.zeros((96, 96, 3), np.uint8))[None]).shape
        (1, 48, 48)
    """

    def __init__(self, stage: FaceStage, *, device: str = "cpu", detector_options: dict[str, Any] | None = None) -> None:
        self.stage = stage
        self.device = device
        self.detector_options = dict(detector_options or {})
        self._detectors: dict[str, Detector] = {}

    # -- faces and crops --------------------------------------------------------------------
    def detector(self, name: str | Detector | None = None) -> Detector:
        """The (cached) detector called ``name`` (default: the stage's); a detector object is returned as it is.

        ``detector_options`` go to the stage's own detector only; ``none`` frames whole images with the
        stage's template.
        """
        if name is not None and not isinstance(name, str):
            return name
        name = name or self.stage.detector
        if name not in self._detectors:
            if name == "none":
                self._detectors[name] = PassThroughDetector(self.stage.template)
            else:
                options = self.detector_options if name == self.stage.detector else {}
                self._detectors[name] = detection.create_detector(name, device=self.device, **options)
        return self._detectors[name]

    def find_faces(self, images: Sequence[np.ndarray], detector: str | Detector | None = None,
                   max_side: int | None = None) -> list[list[Face]]:
        """The faces of each image (one ``detect_batch``), found on copies shrunk to ``max_side`` when given."""
        return detect_shrunk(self.detector(detector), images, max_side)

    def align(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N, S, S, 3) uint8 crops of ``faces`` on the stage's template (N may be 0)."""
        return align_faces(image, faces, self.stage.template)

    def locate(self, image: np.ndarray, detector: str | Detector | None = None,
               max_side: int | None = None) -> tuple[list[Face], np.ndarray]:
        """Faces of one decoded RGB image and their aligned crops: everything before the model."""
        (faces,) = self.find_faces([image], detector, max_side)
        return faces, self.align(image, faces)

    def ready_crop(self, image: np.ndarray) -> np.ndarray:
        """The RGB crop of an image that is already a face framed like the template (the ``none`` path)."""
        return ready_crop(image, self.stage.template)

    def model_crops(self, crops: np.ndarray) -> np.ndarray:
        """RGB crops (N, S, S, 3) in the stage's channels: grey (N, S, S) by ``to_grey``, or unchanged."""
        return to_grey(crops) if self.stage.channels == "grey" else np.asarray(crops)

    def sample_crops(self, inputs: Sequence[str | os.PathLike], detector: str | Detector | None = None,
                     limit: int = 512) -> np.ndarray:
        """Aligned RGB crops of real faces from images (files, folders, globs), one per image, up to ``limit``.

        What an int8 export calibrates on: images in sorted order, the first face of each; ``detector="none"``
        reads images that are face crops already (e.g. FER+ folders). Unreadable files and images without a
        face are skipped.

        Example:
            >>> crops = Extractor().ensure_loaded().engine_.sample_crops(["FERPlus/FER2013Train"], "none")  # doctest: +SKIP
        """
        if limit < 1:
            raise ValueError(f"sample_crops: limit must be at least 1, got {limit}")
        crops: list[np.ndarray] = []
        for path in expand_inputs(inputs, IMAGE_SUFFIXES):
            try:
                image = load_image(path)
            except ImageReadError:
                continue
            faces, aligned = self.locate(image, detector)
            crops.extend(aligned[:1])
            if len(crops) >= limit:
                break
        if not crops:
            raise ValueError(f"sample_crops: no face found in {[str(item) for item in inputs]}; "
                             "pass photos of faces, or folders of face crops with detector 'none'")
        return np.stack(crops)
