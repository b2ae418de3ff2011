"""MTCNN face detector (P-Net, R-Net, O-Net cascade) with five landmarks, in plain torch.

Our own implementation of Zhang et al. (2016), using the pretrained weights that ship with
facenet-pytorch (see ``_mtcnn_weights``); the layer names match those state dicts so they load as-is.

Coordinates: boxes are pixel edges (``image[y1:y2, x1:x2]`` is the face); landmarks are pixel
positions as OpenCV uses them (pixel ``(i, j)`` centre at ``x=j, y=i``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from deepfever.faces.boxes import batched_nms, nms
from deepfever.faces.detect import Detector, as_rgb_uint8, sort_faces
from deepfever.faces.types import Face

_PNET_CELL = 12
_PNET_STRIDE = 2
_BATCH = 512  # R/O-Net crops per forward pass: bounds memory on crowded images


class PNet(nn.Module):
    """Fully convolutional proposal net: face probability and box offsets per 12x12 window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refinement net on 24x24 crops: face probability and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The dense weights come from caffe, which flattened (W, H, C) of its transposed images.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: face probability, box offsets and 5 landmarks (x0..x4, y0..y4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (the nets see square crops)."""
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    size = torch.cat([boxes[:, 2:] - boxes[:, :2]] * 2, dim=1)
    return boxes + offsets * size


def _normalise(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB to the nets' (N, 3, H, W) float input in [-1, 1)."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float()
    return (tensor - 127.5) * 0.0078125


def _crops(images: Sequence[np.ndarray], groups: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut integer boxes (zero-padded outside the image) and resize each to ``size`` x ``size``."""
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for k, (group, (x1, y1, x2, y2)) in enumerate(zip(groups, boxes)):
        image = images[group]
        height, width = image.shape[:2]
        crop = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            crop[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[k] = _shrink(crop, (size, size))
    return out


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize to ``size`` (w, h), via an integer-factor step first when shrinking a lot.

    OpenCV's area resize is several times faster for integer factors, and the two steps average
    the same pixels up to rounding.
    """
    factor = min(image.shape[1] // size[0], image.shape[0] // size[1])
    if factor >= 2:
        image = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass
class _Candidates:
    """Boxes (N, 4) in detection-image pixels, their scores and the index of their image."""

    boxes: torch.Tensor
    scores: torch.Tensor
    groups: torch.Tensor

    def take(self, index: torch.Tensor) -> _Candidates:
        return _Candidates(self.boxes[index], self.scores[index], self.groups[index])


class MTCNN(Detector):
    """Multi-task cascaded CNN face detector with five landmarks.

    Args:
        min_face_size: smallest face side (pixels, after the ``max_side`` downscale) the pyramid looks for.
        thresholds: face-probability cut-offs of P-Net, R-Net and O-Net.
        factor: pyramid scale step.
        max_side: images whose longer side exceeds this are shrunk first (faster; results are mapped back).
        device: torch device for the nets, e.g. ``"cpu"`` or ``"cuda"``.

    Example:
        >>> detector = MTCNN()  # doctest: +SKIP
        >>> faces = detector.detect(load_image("photo.jpg"))  # doctest: +SKIP
    """

    name = "mtcnn"

    def __init__(self, min_face_size: float = 20.0, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, max_side: int | None = 1024, device: str | torch.device = "cpu") -> None:
        if len(thresholds) != 3:
            raise ValueError(f"MTCNN: thresholds needs 3 values (P-, R-, O-Net), got {tuple(thresholds)}")
        if not 0 < factor < 1:
            raise ValueError(f"MTCNN: factor must lie in (0, 1), got {factor}; the usual value is 0.709")
        if max_side is not None and max_side < _PNET_CELL:
            raise ValueError(f"MTCNN: max_side must be None or at least {_PNET_CELL}, got {max_side}")
        self.min_face_size = max(float(min_face_size), float(_PNET_CELL))
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor
        self.max_side = max_side
        self.device = torch.device(device)
        self._nets: tuple[PNet, RNet, ONet] | None = None

    def _load(self) -> tuple[PNet, RNet, ONet]:
        if self._nets is None:
            from deepfever.faces._mtcnn_weights import ensure_weights

            directory = ensure_weights()
            nets = (PNet(), RNet(), ONet())
            for net, name in zip(nets, ("pnet", "rnet", "onet")):
                state = torch.load(directory / f"{name}.pt", map_location="cpu", weights_only=True)
                net.load_state_dict(state)
                net.to(self.device).eval()
            self._nets = nets
        return self._nets

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces of one RGB image, left to right."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Return the faces of each image, sharing forward passes across images.

        P-Net runs once per pyramid level on all images of the same size (video frames, say); R-Net
        and O-Net run on the crops of all images at once. Detection runs on images shrunk to
        ``max_side``, but O-Net (boxes and landmarks) sees crops cut from the full-resolution images.
        """
        pnet, rnet, onet = self._load()
        full, small, scales = [], [], []
        for image in images:
            image = as_rgb_uint8(image, "MTCNN.detect")
            scale = 1.0
            longest = max(image.shape[:2])
            shrunk = image
            if self.max_side is not None and longest > self.max_side:
                scale = self.max_side / longest
                size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
                shrunk = _shrink(image, size)
            full.append(image)
            small.append(shrunk)
            scales.append(scale)
        with torch.inference_mode():
            candidates = self._propose(pnet, small)
            candidates = self._refine(rnet, small, candidates)
            # Detection-image boxes -> full-image boxes, so O-Net's crops keep every pixel of the face.
            stretch = torch.tensor([1.0 / scales[g] for g in candidates.groups.tolist()], device=self.device)
            candidates.boxes = candidates.boxes * stretch[:, None]
            boxes, scores, groups, landmarks = self._output(onet, full, candidates)
        faces: list[list[Face]] = [[] for _ in images]
        for box, score, group, points in zip(boxes, scores, groups, landmarks):
            faces[group].append(Face(box=box.astype(np.float32), landmarks=points.astype(np.float32), score=float(score)))
        return [sort_faces(found) for found in faces]

    def _pyramid(self, height: int, width: int) -> list[float]:
        scale = _PNET_CELL / self.min_face_size
        scales = []
        while min(height, width) * scale >= _PNET_CELL:
            scales.append(scale)
            scale *= self.factor
        return scales

    def _propose(self, pnet: PNet, images: Sequence[np.ndarray]) -> _Candidates:
        """P-Net over an image pyramid: windows above threshold, de-duplicated per scale and overall."""
        boxes, scores, groups, offsets = [], [], [], []
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for group, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(group)
        for (height, width, _), members in by_shape.items():
            resized = [images[group] for group in members]
            for scale in self._pyramid(height, width):
                size = (math.ceil(width * scale), math.ceil(height * scale))
                # Each level from the previous one: 3x cheaper than from the full image, same averaging.
                resized = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in resized]
                prob, offset = pnet(_normalise(np.stack(resized), self.device))
                stretch = torch.tensor([size[0] / width, size[1] / height] * 2, device=self.device)
                for row, group in enumerate(members):
                    ys, xs = torch.nonzero(prob[row] >= self.thresholds[0], as_tuple=True)
                    if ys.numel() == 0:
                        continue
                    # Window (i, j) covers [2j, 2j + 12) x [2i, 2i + 12) of the resized image.
                    corner = torch.stack([xs, ys, xs, ys], dim=1).float() * _PNET_STRIDE
                    windows = (corner + torch.tensor([0, 0, _PNET_CELL, _PNET_CELL], device=self.device)) / stretch
                    level_scores = prob[row, ys, xs]
                    keep = nms(windows, level_scores, 0.5)
                    boxes.append(windows[keep])
                    scores.append(level_scores[keep])
                    groups.append(torch.full_like(keep, group))
                    offsets.append(offset[row, :, ys, xs].T[keep])
        if not boxes:
            empty = torch.empty(0, 4, device=self.device)
            return _Candidates(empty, empty[:, 0], torch.empty(0, dtype=torch.long, device=self.device))
        candidates = _Candidates(torch.cat(boxes), torch.cat(scores), torch.cat(groups))
        keep = batched_nms(candidates.boxes, candidates.scores, candidates.groups, 0.7)
        candidates = candidates.take(keep)
        candidates.boxes = _square(_regress(candidates.boxes, torch.cat(offsets)[keep]))
        return candidates

    def _stage_input(self, images: Sequence[np.ndarray], candidates: _Candidates, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Round boxes to whole pixels (the crops the net sees) and return them with the crop batch."""
        boxes = torch.round(candidates.boxes)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        crops = _crops(images, candidates.groups.cpu().numpy(), boxes.cpu().numpy().astype(np.int64), size)
        return boxes, _normalise(crops, self.device)

    def _refine(self, rnet: RNet, images: Sequence[np.ndarray], candidates: _Candidates) -> _Candidates:
        if candidates.boxes.shape[0] == 0:
            return candidates
        boxes, batch = self._stage_input(images, candidates, 24)
        probs, offsets = (torch.cat(parts) for parts in zip(*(rnet(chunk) for chunk in batch.split(_BATCH))))
        passed = probs > self.thresholds[1]
        refined = _Candidates(boxes[passed], probs[passed], candidates.groups[passed])
        offsets = offsets[passed]
        keep = batched_nms(refined.boxes, refined.scores, refined.groups, 0.7)
        refined, offsets = refined.take(keep), offsets[keep]
        refined.boxes = _square(_regress(refined.boxes, offsets))
        return refined

    def _output(self, onet: ONet, images: Sequence[np.ndarray],
                candidates: _Candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if candidates.boxes.shape[0] == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 5, 2))
        boxes, batch = self._stage_input(images, candidates, 48)
        outputs = [onet(chunk) for chunk in batch.split(_BATCH)]
        probs, offsets, points = (torch.cat(parts) for parts in zip(*outputs))
        passed = probs > self.thresholds[2]
        boxes, probs, groups = boxes[passed], probs[passed], candidates.groups[passed]
        offsets, points = offsets[passed], points[passed]
        size = boxes[:, 2:] - boxes[:, :2]
        landmarks = torch.stack([points[:, :5], points[:, 5:]], dim=2) * size[:, None] + boxes[:, None, :2]
        boxes = _regress(boxes, offsets)
        keep = batched_nms(boxes, probs, groups, 0.7, mode="min")
        return (boxes[keep].cpu().numpy(), probs[keep].cpu().numpy(), groups[keep].cpu().numpy(),
                landmarks[keep].cpu().numpy())
