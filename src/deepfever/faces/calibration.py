"""Map each detector's landmarks onto the template's convention, so crops do not depend on the detector.

Why: the bundled template was measured with MTCNN landmarks (``scripts/derive_template.py``). YuNet
places the same five points differently (its mouth corners sit higher on the face), so a YuNet face
aligned onto the MTCNN template is framed a little differently from the faces the model learnt from.
``scripts/calibrate_landmarks.py`` measures, on unlabelled faces both detectors find, a fixed offset
per landmark in a face-normalised frame (origin between the eyes, x along the eye line, unit = the
inter-ocular distance) and stores it in ``landmark_calibration.json`` with the template it belongs to.
MTCNN (the template's own convention) and ``none`` (template points by construction) map to themselves.

It also stores alignment weights: mouth corners move with the expression, so a similarity fitted with
equal weights lets a smile shrink or tilt the crop; weighting the stable points (eyes, nose) more
keeps the framing fixed. ``landmarks_for_alignment`` applies both and returns points that the plain
``align_face`` turns into the calibrated, weighted crop.

Measured (``benchmarks/face_fidelity.py``, results in ``benchmarks/results/face_fidelity.md``): with the
default model neither the calibration nor the weights moves accuracy, cosine to ready crops, stability or
cross-detector agreement beyond noise, so the default face path aligns on the detector's raw landmarks;
this module is the measured alternative, kept for other detectors and templates.

Example:
    >>> from deepfever.faces.template import load_default_template
    >>> template = load_default_template()
    >>> points = np.asarray(template.scaled(192).landmarks)
    >>> to_template_convention(points, "mtcnn") is points
    True
    >>> landmarks_for_alignment(points, "yunet", template).shape
    (5, 2)
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from deepfever.faces.align import AlignmentTemplate, estimate_similarity, transform_points
from deepfever.faces.types import LANDMARK_NAMES

CALIBRATION_FILE = "landmark_calibration.json"
FORMAT_VERSION = 1
REFERENCE_CONVENTIONS = ("mtcnn", "none")
"""Detectors whose landmarks already follow the template's convention (identity mapping)."""


def template_id(template: AlignmentTemplate) -> str:
    """Short hash of a template's landmarks and size; the same id ``Extractor`` records in its fingerprint."""
    return hashlib.sha256(json.dumps(template.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _check_landmarks(landmarks: np.ndarray, where: str) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"{where}: expected 5 finite (x, y) landmarks of shape (5, 2) in {LANDMARK_NAMES} order,"
                         f" got shape {points.shape}")
    return points


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin (2,) and basis (2, 2) of the face-normalised frame: rows are the frame's x and y axes in
    image pixels, each one inter-ocular distance long (x from the image-left eye to the image-right eye)."""
    points = _check_landmarks(landmarks, "face_frame")
    origin = (points[0] + points[1]) / 2
    x_axis = points[1] - points[0]
    if np.hypot(*x_axis) <= 0:
        raise ValueError("face_frame: both eye landmarks are at the same place; cannot normalise the face")
    return origin, np.stack([x_axis, np.array([-x_axis[1], x_axis[0]])])


def to_face_frame(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``points`` (N, 2) in image pixels -> the face frame of ``landmarks`` (inter-ocular units, rotation removed)."""
    origin, basis = face_frame(landmarks)
    return (np.asarray(points, np.float64) - origin) @ basis.T / (basis[0] @ basis[0])


def from_face_frame(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Inverse of ``to_face_frame``."""
    origin, basis = face_frame(landmarks)
    return np.asarray(points, np.float64) @ basis + origin


@dataclass(frozen=True)
class LandmarkCalibration:
    """Per-detector landmark offsets (face frame, inter-ocular units) and alignment weights for one template.

    ``offsets[name]`` is (5, 2): added to a face's own normalised landmarks they give the template's
    convention. ``weights`` (5,) are each landmark's share in the alignment fit. ``provenance`` says how
    both were measured (data, split, residuals); it is kept but not interpreted.
    """

    template_id: str
    offsets: Mapping[str, np.ndarray]
    weights: np.ndarray
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        offsets = {}
        for name, value in dict(self.offsets).items():
            array = np.asarray(value, dtype=np.float64)
            if array.shape != (5, 2) or not np.isfinite(array).all():
                raise ValueError(f"LandmarkCalibration: offsets[{name!r}] must be 5 finite (dx, dy) pairs, got shape {array.shape}")
            if name in REFERENCE_CONVENTIONS:
                raise ValueError(f"LandmarkCalibration: {name!r} is the template's own convention and takes no offsets")
            offsets[name] = array
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (5,) or not np.isfinite(weights).all() or (weights < 0).any() or (weights[:3] <= 0).any():
            raise ValueError("LandmarkCalibration: weights must be 5 finite non-negative numbers with positive eye and nose"
                             f" weights, got {np.asarray(self.weights).tolist()}")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "weights", weights)

    @property
    def detectors(self) -> list[str]:
        """Every detector this calibration can map: the calibrated ones and the reference conventions."""
        return sorted([*self.offsets, *REFERENCE_CONVENTIONS])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the packaged file's layout)."""
        return {"format_version": FORMAT_VERSION, "template_id": self.template_id, "landmark_order": list(LANDMARK_NAMES),
                "offsets": {name: np.round(value, 5).tolist() for name, value in sorted(self.offsets.items())},
                "weights": np.round(self.weights, 5).tolist(), **dict(self.provenance)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LandmarkCalibration:
        """Inverse of ``to_dict``; keys other than the fields are kept as provenance."""
        missing = {"format_version", "template_id", "landmark_order", "offsets", "weights"} - set(data)
        if missing:
            raise ValueError(f"LandmarkCalibration.from_dict: missing keys {sorted(missing)}; got keys {sorted(data)}")
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(f"LandmarkCalibration.from_dict: format_version {data['format_version']!r} is not the"
                             f" supported {FORMAT_VERSION}; re-run scripts/calibrate_landmarks.py")
        if list(data["landmark_order"]) != list(LANDMARK_NAMES):
            raise ValueError(f"LandmarkCalibration.from_dict: landmark_order must be {list(LANDMARK_NAMES)}, got {data['landmark_order']}")
        if not isinstance(data["offsets"], Mapping):
            raise ValueError(f"LandmarkCalibration.from_dict: offsets must map detector names to (5, 2) lists, got {type(data['offsets']).__name__}")
        fields = ("format_version", "template_id", "landmark_order", "offsets", "weights")
        return cls(str(data["template_id"]), data["offsets"], data["weights"],
                   {key: value for key, value in data.items() if key not in fields})


@functools.lru_cache(maxsize=1)
def _packaged() -> LandmarkCalibration:
    text = resources.files("deepfever.faces").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    return _parse(text, f"deepfever/faces/{CALIBRATION_FILE}")


def _parse(text: str, where: str) -> LandmarkCalibration:
    try:
        return LandmarkCalibration.from_dict(json.loads(text))
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(f"load_calibration: {where} is not a valid landmark calibration ({error}); regenerate it with"
                         " scripts/calibrate_landmarks.py") from error


def load_calibration(path: str | Path | None = None) -> LandmarkCalibration:
    """The packaged calibration (``path=None``) or one written by ``scripts/calibrate_landmarks.py``, validated.

    Example:
        >>> sorted(load_calibration().detectors)
        ['mtcnn', 'none', 'yunet']
    """
    if path is None:
        return _packaged()
    return _parse(Path(path).read_text(encoding="utf-8"), str(path))


def to_template_convention(landmarks: np.ndarray, detector_name: str,
                           calibration: LandmarkCalibration | None = None) -> np.ndarray:
    """``detector_name``'s five landmarks (5, 2) moved to where the template's detector (MTCNN) would put them.

    The offsets are fixed in the face's own frame, so they follow its position, size and roll.
    Landmarks of a reference convention (``mtcnn``, ``none``) are returned unchanged (the same object).
    """
    if detector_name in REFERENCE_CONVENTIONS:
        return landmarks
    calibration = calibration or load_calibration()
    offsets = calibration.offsets.get(detector_name)
    if offsets is None:
        raise ValueError(f"to_template_convention: no calibration for detector {detector_name!r}; calibrated detectors:"
                         f" {calibration.detectors} (fit one with scripts/calibrate_landmarks.py)")
    points = _check_landmarks(landmarks, "to_template_convention")
    return from_face_frame(to_face_frame(points, points) + offsets, points)


def landmarks_for_alignment(landmarks: np.ndarray, detector_name: str, template: AlignmentTemplate,
                            calibration: LandmarkCalibration | None = None, calibrate: bool = True,
                            weighted: bool = True) -> np.ndarray:
    """Landmarks that the plain ``align_face`` turns into the calibrated (and weighted) crop of this face.

    ``calibrate`` maps the points to the template's convention (``to_template_convention``);
    ``weighted`` fits the similarity with the calibration's weights and returns the template's points
    seen through that fit (an exact fit, so ``align_face``'s unweighted estimate reproduces it).
    Raises ``ValueError`` when the calibration was measured for another template.
    """
    calibration = calibration or load_calibration()
    if calibration.template_id != template_id(template):
        raise ValueError(f"landmarks_for_alignment: the calibration was measured for template {calibration.template_id},"
                         f" the model uses {template_id(template)}; re-run scripts/calibrate_landmarks.py for this template")
    points = _check_landmarks(landmarks, "landmarks_for_alignment")
    if calibrate:
        points = to_template_convention(points, detector_name, calibration)
    if not weighted:
        return points
    matrix = estimate_similarity(points, template.array, calibration.weights)
    return transform_points(_invert(matrix), template.array)


def crop_displacement(matrix: np.ndarray, reference: np.ndarray, size: int) -> float:
    """Mean distance, in crop pixels, between where the pixels of a ``size`` crop come from under two alignment
    matrices (image -> crop, (2, 3)): 0 when both give the same crop; how far apart two face paths frame a face."""
    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64)), -1).reshape(-1, 2)
    return float(np.linalg.norm(transform_points(reference, transform_points(_invert(matrix), grid)) - grid, axis=1).mean())


def _invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -linear @ matrix[:, 2:]])
