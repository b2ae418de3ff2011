"""YuNet face detector: fast, small, five landmarks.

The model file (MIT, OpenCV model zoo; source and sha256 in MODEL_CARD.md) ships inside the package,
so the detector works offline from the first run; ``model_path`` chooses another YuNet file. On the
CPU it runs through OpenCV's ``FaceDetectorYN``; on a GPU through ONNX Runtime's CUDA provider (the
``onnxruntime-gpu`` build), decoding the network's outputs the way OpenCV does.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfever.faces.boxes import box_iou, nms
from deepfever.faces.detect import Detector, as_rgb_uint8, sort_faces
from deepfever.faces.types import Face, face_in_original
from deepfever.io.optional import import_optional

logger = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).with_name("face_detection_yunet_2026may.onnx")

# YuNet lists the subject's right eye, left eye, nose, right and left mouth corner; the subject's
# right is the image's left (checked on photos: its first eye has the smaller x), which is already our
# LANDMARK_NAMES order, so rows need no reordering.

# A face whose box side in the detection image is below this many pixels gets its landmarks measured
# again on a full-resolution crop: the aligned crop is 48 px, so below that the shrunken image's
# landmark error would be magnified in the crop.
REFINE_BELOW = 48
# The refinement crop spans this many face sizes around the face and is scaled so the face is
# REFINE_FACE pixels wide, a size YuNet's landmarks are precise at.
_REFINE_CONTEXT = 2.0
_REFINE_FACE = 96
_STRIDES = (8, 16, 32)  # YuNet's output grids; its input sides must be multiples of the largest
ENGINES = ("opencv", "onnxruntime")


class YuNet(Detector):
    """OpenCV YuNet detector.

    Args:
        model_path: path of a YuNet ``.onnx`` file; ``None`` uses the bundled one.
        score_threshold: minimum face score.
        nms_threshold: IoU above which overlapping detections are merged.
        top_k: candidates kept before NMS.
        max_side: images whose longer side exceeds this are shrunk before detection (detection cost
            grows with pixels, and YuNet misses faces that fill a very large image); faces found
            smaller than ``refine_below`` pixels there get their landmarks re-measured on the full image.
        refine_below: see ``max_side``; 0 turns refinement off.
        device: ``cpu`` or ``cuda[:k]``. OpenCV's wheel has no CUDA, so on a GPU the network runs in
            ONNX Runtime's CUDA provider; without ``onnxruntime-gpu`` it stays on the CPU (logged).
        engine: ``opencv`` or ``onnxruntime``; ``None`` picks by ``device``. ``onnxruntime`` on the CPU
            exists to check the GPU path against OpenCV's.

    Example:
        >>> detector = YuNet()  # doctest: +SKIP
        >>> faces = detector.detect(load_image("photo.jpg"))  # doctest: +SKIP
    """

    name = "yunet"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 top_k: int = 5000, max_side: int | None = 640, refine_below: int = REFINE_BELOW,
                 device: str | None = None, engine: str | None = None) -> None:
        path = BUNDLED_MODEL if model_path is None else Path(model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"YuNet: model_path {str(path)!r} is not a file; pass a face_detection_yunet_*.onnx from"
                " https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet or omit it for the bundled one"
            )
        if max_side is not None and max_side < 32:
            raise ValueError(f"YuNet: max_side must be None or at least 32, got {max_side}")
        self.model_path = path
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_side = max_side
        self.refine_below = refine_below
        self.device = device or "cpu"
        self.engine = engine or _default_engine(self.device)
        if self.engine not in ENGINES:
            raise ValueError(f"YuNet: engine must be one of {ENGINES} or None, got {engine!r}")
        if self.engine == "opencv":
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
        else:
            self._session = _onnx_session(path, self.device)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces of one RGB image, left to right."""
        image = as_rgb_uint8(image, "YuNet.detect")
        scale = 1.0
        longest = max(image.shape[:2])
        small = image
        if self.max_side is not None and longest > self.max_side:
            scale = self.max_side / longest
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        faces = [face_in_original(face, scale) for face in self._run(small)]
        if scale < 1 and self.refine_below > 0:
            faces = [self._refine(image, face) if (face.box[2] - face.box[0]) * scale < self.refine_below else face
                     for face in faces]
        return sort_faces(faces)

    def _run(self, image: np.ndarray) -> list[Face]:
        """Raw detections of an RGB image in its own pixel coordinates."""
        height, width = image.shape[:2]
        if self.engine == "opencv":
            self._net.setInputSize((width, height))
            _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        else:
            rows = self._run_onnx(image)
        return [Face(box=np.array([row[0], row[1], row[0] + row[2], row[1] + row[3]], np.float32),
                     landmarks=row[4:14].reshape(5, 2).astype(np.float32), score=float(row[14]))
                for row in ([] if rows is None else rows)]

    def _run_onnx(self, image: np.ndarray) -> np.ndarray:
        """OpenCV's FaceDetectorYN in ONNX Runtime: BGR input zero-padded to multiples of 32, per-stride
        decoding of the anchor-free outputs, score = sqrt(cls * obj), then NMS; rows as OpenCV gives them
        (x, y, w, h, 5 landmarks, score)."""
        import torch  # the GPU path only: the CPU path (OpenCV) starts without torch
        height, width = image.shape[:2]
        padded = np.zeros((1, 3, -(-height // _STRIDES[-1]) * _STRIDES[-1], -(-width // _STRIDES[-1]) * _STRIDES[-1]), np.float32)
        padded[0, :, :height, :width] = image[:, :, ::-1].transpose(2, 0, 1)
        names = [output.name for output in self._session.get_outputs()]
        outputs = dict(zip(names, self._session.run(None, {self._session.get_inputs()[0].name: padded})))
        rows = []
        for stride in _STRIDES:
            columns = padded.shape[3] // stride
            score = np.sqrt(np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1) * np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1))
            cells = np.nonzero(score >= self.score_threshold)[0]
            row, column = cells // columns, cells % columns
            box = outputs[f"bbox_{stride}"].reshape(-1, 4)[cells]
            points = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[cells]
            centre = (np.stack([column, row], 1) + box[:, :2]) * stride
            size = np.exp(box[:, 2:]) * stride
            landmarks = (points + np.stack([column, row], 1)[:, None]) * stride
            rows.append(np.column_stack([centre - size / 2, size, landmarks.reshape(-1, 10), score[cells]]))
        found = np.concatenate(rows).astype(np.float32)
        found = found[np.argsort(-found[:, 14], kind="stable")[:self.top_k]]
        corners = torch.from_numpy(np.column_stack([found[:, :2], found[:, :2] + found[:, 2:4]]))
        return found[nms(corners, torch.from_numpy(found[:, 14]), self.nms_threshold).numpy()]

    def _refine(self, image: np.ndarray, face: Face) -> Face:
        """Detect again in a full-resolution crop around ``face``; keep the original if that finds nothing there."""
        side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
        centre = (face.box[:2] + face.box[2:]) / 2
        half = side * _REFINE_CONTEXT / 2
        x1, y1 = (int(max(0, np.floor(v - half))) for v in centre)
        x2 = int(min(image.shape[1], np.ceil(centre[0] + half)))
        y2 = int(min(image.shape[0], np.ceil(centre[1] + half)))
        if x2 - x1 < 8 or y2 - y1 < 8:
            return face
        zoom = _REFINE_FACE / side
        crop = image[y1:y2, x1:x2]
        size = (max(1, round(crop.shape[1] * zoom)), max(1, round(crop.shape[0] * zoom)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        zoom_xy = (size[0] / (x2 - x1), size[1] / (y2 - y1))
        found = [face_in_original(f, zoom_xy, (x1, y1)) for f in self._run(crop)]
        if not found:
            return face
        overlaps = box_iou(np.stack([f.box for f in found]), face.box)[:, 0]
        best = int(np.argmax(overlaps))  # the first of equal overlaps, as max() picked
        if overlaps[best] < 0.5:
            return face
        return Face(box=face.box, landmarks=found[best].landmarks.astype(np.float32), score=face.score)


def _default_engine(device: str) -> str:
    """ONNX Runtime on a GPU when its CUDA provider is installed; OpenCV otherwise."""
    if not device.startswith("cuda"):
        return "opencv"
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return "onnxruntime"
    logger.warning("YuNet runs on the CPU: device %s needs onnxruntime-gpu for the GPU (pip install onnxruntime-gpu)", device)
    return "opencv"


def _onnx_session(path: Path, device: str) -> Any:
    (onnxruntime,) = import_optional("YuNet(engine='onnxruntime')", ("onnxruntime",), "onnx")
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    return onnxruntime.InferenceSession(str(path), providers=providers)
