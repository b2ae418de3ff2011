"""The detector interface, a registry of detectors by name, and the ``none`` detector for ready crops.

Every detector returns the faces of an image in one stable order (left to right by box centre, then
top to bottom), so row ``i`` of any output refers to the same person across runs and detectors.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from deepfever.defaults import DETECTOR as DEFAULT_DETECTOR
from deepfever.faces.types import Face
from deepfever.io.images import as_rgb_uint8

if TYPE_CHECKING:
    from deepfever.faces.align import AlignmentTemplate

__all__ = ["DEFAULT_DETECTOR", "Detector", "PassThroughDetector", "create_detector", "list_detectors", "sort_faces"]


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
        from deepfever.faces.template import load_default_template

        height, width = as_rgb_uint8(image, "PassThroughDetector.detect").shape[:2]
        template = self.template if self.template is not None else load_default_template()
        scale = np.array([width, height], np.float32) / np.float32(template.size)
        landmarks = (np.asarray(template.landmarks, np.float32) + 0.5) * scale - 0.5
        box = np.array([0, 0, width, height], np.float32)
        return [Face(box=box, landmarks=landmarks.astype(np.float32), score=1.0)]


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
