"""YuNet face detector through OpenCV's ``FaceDetectorYN``: fast, small, five landmarks.

The model file is not bundled (download it from the OpenCV model zoo); pass its path.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfever.faces.detect import Detector, as_rgb_uint8, sort_faces
from deepfever.faces.types import Face

# YuNet lists the subject's right eye, left eye, nose, right and left mouth corner; the subject's
# right is the image's left (checked on photos: its first eye has the smaller x), which is already our
# LANDMARK_NAMES order, so rows need no reordering.


class YuNet(Detector):
    """OpenCV YuNet detector.

    Args:
        model_path: path of the YuNet ``.onnx`` file.
        score_threshold: minimum face score.
        nms_threshold: IoU above which overlapping detections are merged.
        top_k: candidates kept before NMS.
        max_side: images whose longer side exceeds this are shrunk first (YuNet misses faces that
            fill a very large image); results are mapped back.

    Example:
        >>> detector = YuNet("face_detection_yunet_2023mar.onnx")  # doctest: +SKIP
    """

    name = "yunet"

    def __init__(self, model_path: str | Path, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 top_k: int = 5000, max_side: int | None = 1024) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"YuNet: model_path {str(path)!r} is not a file; download face_detection_yunet_*.onnx from"
                " https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet"
            )
        self.model_path = path
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces of one RGB image, left to right."""
        image = as_rgb_uint8(image, "YuNet.detect")
        scale = 1.0
        longest = max(image.shape[:2])
        if self.max_side is not None and longest > self.max_side:
            scale = self.max_side / longest
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        faces = []
        for row in [] if rows is None else rows:
            x, y, w, h = row[:4]
            box = np.array([x, y, x + w, y + h], np.float32) / scale
            landmarks = (row[4:14].reshape(5, 2) + 0.5) / scale - 0.5
            faces.append(Face(box=box, landmarks=landmarks.astype(np.float32), score=float(row[14])))
        return sort_faces(faces)
