"""The detector interface, a registry of detectors by name, and the ``none`` detector for ready crops.

Every detector returns the faces of an image in one stable order (left to right by box centre, then
top to bottom), so row ``i`` of any output refers to the same person across runs and detectors.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np

from deepfever.defaults import DETECTOR as DEFAULT_DETECTOR
from deepfever.faces.types import Face, face_in_original
from deepfever.io.images import as_rgb_uint8

if TYPE_CHECKING:
    from deepfever.faces.align import AlignmentTemplate

__all__ = ["DEFAULT_DETECTOR", "Detector", "PassThroughDetector", "create_detector", "detect_shrunk", "list_detectors",
           "sort_faces"]


def sort_faces(faces: list[Face]) -> list[Face]:
    """Order faces left to right by box centre x, then top to bottom by centre y."""
    return sorted(faces, key=lambda face: (float(face.box[0] + face.box[2]), float(face.box[1] + face.box[3])))


class Detector(abc.ABC):
    """Finds faces and five landmarks in RGB ``uint8`` images.

    Example:
        >>> detector = create_detector("none")
        >>> [face.score for face in detector.detect(np.zeros((48, 48, 3), np.uint8))]
        [1.0]
    """

    name: str = ""

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Return all faces of one image, sorted left to right (see ``sort_faces``)."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Return the faces of each image; subclasses may override to share work across images."""
        return [self.detect(image) for image in images]


class PassThroughDetector(Detector):
    """Treats the whole image as one face already framed like the alignment template.

    The landmarks are the template scaled to the image, so alignment reduces to a resize.
    """

    name = "none"

    def __init__(self, template: AlignmentTemplate | None = None) -> None:
        self.template = template

    def detect(self, image: np.ndarray) -> list[Face]:
        from deepfever.faces.align import template_landmarks
        from deepfever.faces.template import load_default_template

        height, width = as_rgb_uint8(image, "PassThroughDetector.detect").shape[:2]
        template = self.template if self.template is not None else load_default_template()
        box = np.array([0, 0, width, height], np.float32)
        return [Face(box=box, landmarks=template_landmarks((height, width), template), score=1.0)]


def _create_mtcnn(**kwargs: Any) -> Detector:
    from deepfever.faces.mtcnn import MTCNN

    return MTCNN(**kwargs)


def _create_yunet(**kwargs: Any) -> Detector:
    from deepfever.faces.yunet import YuNet

    return YuNet(**kwargs)


_REGISTRY: dict[str, Callable[..., Detector]] = {
    "mtcnn": _create_mtcnn,
    "yunet": _create_yunet,
    "none": PassThroughDetector,
}


def list_detectors() -> list[str]:
    """Names accepted by ``create_detector``, sorted."""
    return sorted(_REGISTRY)


# Detectors that can follow the embedder onto a GPU (MTCNN in torch, YuNet in ONNX Runtime).
_DEVICE_DETECTORS = frozenset({"mtcnn", "yunet"})


def create_detector(name: str = DEFAULT_DETECTOR, device: str | None = None, **kwargs: Any) -> Detector:
    """Build a detector by name; keyword arguments go to its constructor.

    ``device`` (e.g. the extractor's ``cuda:1``) moves the detectors that can run on a GPU there; the
    ``none`` detector ignores it, so callers can always pass their device.

    Example:
        >>> create_detector("none").name
        'none'
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"create_detector: unknown detector {name!r}; valid choices are {list_detectors()}")
    if device is not None and name in _DEVICE_DETECTORS:
        kwargs["device"] = device
    return factory(**kwargs)


def shrink(image: np.ndarray, side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """``image`` shrunk (area averaging) so its longer side is at most ``side``, and the (x, y) factors applied."""
    longest = max(image.shape[:2])
    if side is None or longest <= side:
        return image, (1.0, 1.0)
    scale = side / longest
    small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, (small.shape[1] / image.shape[1], small.shape[0] / image.shape[0])


def detect_shrunk(detector: Detector | Any, images: Sequence[np.ndarray], side: int | None) -> list[list[Face]]:
    """Faces of each image found on a copy shrunk to ``side`` (detection cost grows with pixels), in the
    original images' pixels; one ``detect_batch`` call, so detectors that share work across images do.

    Example:
        >>> [len(faces) for faces in detect_shrunk(create_detector("none"), [np.zeros((96, 64, 3), np.uint8)], 48)]
        [1]
    """
    shrunk = [shrink(image, side) for image in images]
    small = [image for image, _ in shrunk]
    # Any object with ``detect`` works (a user's detector need not subclass Detector); one image needs no batch.
    batch = getattr(detector, "detect_batch", None)
    found = batch(small) if batch is not None and len(small) > 1 else [detector.detect(image) for image in small]
    return [faces if factor == (1.0, 1.0) else [face_in_original(face, factor) for face in faces]
            for faces, (_, factor) in zip(found, shrunk)]
