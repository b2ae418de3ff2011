"""Warp faces onto an alignment template with a similarity transform (rotation, uniform scale, shift).

A similarity keeps the face's proportions, so expression cues are not distorted; only pose in the
image plane and size are normalised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from deepfever.faces.types import Face


@dataclass(frozen=True)
class AlignmentTemplate:
    """Where the five landmarks sit in a square ``size`` x ``size`` crop (pixel positions, OpenCV style).

    Example:
        >>> template = AlignmentTemplate(((16, 20), (32, 20), (24, 28), (18, 36), (30, 36)), 48)
        >>> template.scaled(96).landmarks[0]
        (32.5, 40.5)
    """

    landmarks: tuple[tuple[float, float], ...]
    size: int

    def __post_init__(self) -> None:
        points = np.asarray(self.landmarks, dtype=np.float64)
        if points.shape != (5, 2) or not np.isfinite(points).all():
            raise ValueError(f"AlignmentTemplate: landmarks must be 5 finite (x, y) pairs, got shape {points.shape}")
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"AlignmentTemplate: size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "landmarks", tuple((float(x), float(y)) for x, y in points))
        object.__setattr__(self, "size", int(self.size))

    @property
    def array(self) -> np.ndarray:
        """The landmarks as a (5, 2) float32 array."""
        return np.asarray(self.landmarks, dtype=np.float32)

    def scaled(self, size: int) -> AlignmentTemplate:
        """The same framing in a ``size`` x ``size`` crop (pixel centres scale about the crop's corner)."""
        factor = size / self.size
        return AlignmentTemplate(tuple(((x + 0.5) * factor - 0.5, (y + 0.5) * factor - 0.5) for x, y in self.landmarks), size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in model configs and checkpoints."""
        return {"size": self.size, "landmarks": [list(point) for point in self.landmarks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlignmentTemplate:
        """Inverse of ``to_dict``; extra keys (provenance) are ignored."""
        missing = {"size", "landmarks"} - set(data)
        if missing:
            raise ValueError(f"AlignmentTemplate.from_dict: missing keys {sorted(missing)}; got keys {sorted(data)}")
        return cls(tuple(tuple(point) for point in data["landmarks"]), data["size"])


def estimate_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991, no reflection) mapping ``src`` points onto ``dst``.

    ``weights`` (N,) non-negative, optional: each point's share of the squared error, so points that
    move with the expression (mouth corners) can count less than stable ones (eyes, nose); equal
    weights give the plain fit. Returns a (2, 3) float64 matrix ``M`` with
    ``dst ≈ M[:, :2] @ src + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"estimate_similarity: expected two (N, 2) arrays with N >= 2, got {src.shape} and {dst.shape}")
    if weights is None:  # the plain fit, in the arithmetic it always had, so existing crops stay bit-identical
        src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
        src_c, dst_c = src - src_mean, dst - dst_mean
        src_var = (src_c**2).sum() / len(src)
        covariance = dst_c.T @ src_c / len(src)
    else:
        share = np.asarray(weights, dtype=np.float64)
        if share.shape != (len(src),) or not np.isfinite(share).all() or (share < 0).any() or share.sum() <= 0:
            raise ValueError(f"estimate_similarity: weights must be {len(src)} finite non-negative numbers with a positive sum,"
                             f" got {np.asarray(weights).tolist()}")
        share = share / share.sum()
        src_mean, dst_mean = share @ src, share @ dst
        src_c, dst_c = src - src_mean, dst - dst_mean
        src_var = share @ (src_c**2).sum(axis=1)
        covariance = (dst_c * share[:, None]).T @ src_c
    if src_var <= 0:
        raise ValueError("estimate_similarity: all (positively weighted) source points coincide; cannot estimate a transform")
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0  # a reflection would fit better; forbid it
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def _shrink_first(image: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pre-shrink the face region with area averaging when the warp would shrink it more than 2x.

    Bilinear warping samples only 4 pixels per output pixel, so a big face shrunk to 48 px would alias;
    area resizing averages all of them. Returns the smaller image and the matrix adjusted to it.
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 0.5:
        return image, matrix
    inverse = cv2.invertAffineTransform(matrix)
    corners = transform_points(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    margin = 2.0 / scale
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min() - margin), 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min() - margin), 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + margin), x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + margin), y0 + 1, height))
    region = image[y0:y1, x0:x1]
    new_size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    small = cv2.resize(region, new_size, interpolation=cv2.INTER_AREA)
    fx, fy = new_size[0] / region.shape[1], new_size[1] / region.shape[0]
    # Small-image pixel (u, v) sits at ((u + 0.5) / fx - 0.5 + x0, (v + 0.5) / fy - 0.5 + y0) in the original.
    to_original = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0], [0, 0, 1]])
    return small, matrix @ to_original


def align_face(image: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """Crop one face so its landmarks land on the template; returns (size, size, 3) ``uint8``.

    Example:
        >>> template = AlignmentTemplate(((16, 20), (32, 20), (24, 28), (18, 36), (30, 36)), 48)
        >>> align_face(np.zeros((96, 96, 3), np.uint8), np.asarray(template.scaled(96).landmarks), template).shape
        (48, 48, 3)
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"align_face: expected landmarks of shape (5, 2), got {points.shape}")
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"align_face: expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape};"
                         " decode files with deepfever.io.load_image")
    matrix = estimate_similarity(points, template.array)
    source, matrix = _shrink_first(image, matrix, template.size)
    return cv2.warpAffine(source, matrix, (template.size, template.size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def template_landmarks(image_shape: Sequence[int], template: AlignmentTemplate) -> np.ndarray:
    """Where the template's landmarks sit in an image of ``image_shape`` framed like the template.

    Pixel centres scale about the half-pixel (``cv2.resize``'s convention), so warping the image onto
    the template with these landmarks is a plain resize of the whole image.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    scale = np.array([width, height], np.float32) / np.float32(template.size)
    return ((np.asarray(template.landmarks, np.float32) + 0.5) * scale - 0.5).astype(np.float32)


def ready_crop(image: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """The crop of an image that already is a face framed like the template (FER+, CK+48, ``--detector none``).

    The one "ready crop" path: the same warp as every detected face (``align_face``: area averaging
    while shrinking more than 2x, then bilinear), so a ready crop and a detected face follow one
    numeric convention; an image of the template's size comes back unchanged.
    """
    return align_face(image, template_landmarks(image.shape, template), template)


def align_faces(image: np.ndarray, faces: Sequence[Face], template: AlignmentTemplate) -> np.ndarray:
    """Align every face of one image; returns (N, size, size, 3) ``uint8`` (N may be 0)."""
    crops = [align_face(image, face.landmarks, template) for face in faces]
    if not crops:
        return np.zeros((0, template.size, template.size, 3), np.uint8)
    return np.stack(crops)
