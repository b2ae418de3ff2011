"""Faces to table rows, one way for images, video frames and server requests.

Every entry point collects aligned crops until a model batch is full (``PendingBatch``), then builds
its rows with ``face_row`` + ``prediction_fields`` (``FaceEngine.row`` joins them with the vector and
the model fingerprint), so a face's columns never depend on where it came from. Smoothed video values
are added beside the raw ones (``_smooth`` suffix).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from deepfever.faces.types import Face

SMOOTH_SUFFIX = "_smooth"
"""Suffix of per-track smoothed columns; the raw ``p_*`` / ``emotion`` / ``valence`` stay beside them."""
VIDEO_KEYS = ("frame", "time_s", "track")
"""Columns a video row has on top of an image row."""


@dataclass
class PendingBatch:
    """Aligned crops waiting for a full model batch, each with a key saying which row it belongs to."""

    keys: list[Any] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)

    def add(self, key: Any, crop: np.ndarray) -> None:
        self.keys.append(key)
        self.crops.append(crop)

    def __len__(self) -> int:
        return len(self.crops)

    def take(self) -> tuple[list[Any], np.ndarray | None]:
        """The keys and stacked crops so far (``None`` when empty); the batch is empty afterwards."""
        keys, crops = self.keys, (np.stack(self.crops) if self.crops else None)
        self.keys, self.crops = [], []
        return keys, crops


def face_row(name: str, index: int, face: Face) -> dict[str, Any]:
    """The detection columns of a face: where it is and how sure the detector was."""
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return {"path": name, "face": index, "box_x1": x1, "box_y1": y1, "box_x2": x2, "box_y2": y2,
            "landmarks": np.asarray(face.landmarks, np.float32).ravel(), "score": float(face.score)}


def prediction_fields(class_names: Sequence[str], probabilities: np.ndarray, valence_arousal: np.ndarray | None,
                      suffix: str = "") -> dict[str, Any]:
    """``emotion``, ``p_<class>`` and (when given) ``valence``/``arousal``, each name followed by ``suffix``."""
    fields: dict[str, Any] = {f"emotion{suffix}": class_names[int(np.argmax(probabilities))]}
    fields.update({f"p_{name}{suffix}": float(p) for name, p in zip(class_names, probabilities)})
    if valence_arousal is not None:
        fields[f"valence{suffix}"], fields[f"arousal{suffix}"] = float(valence_arousal[0]), float(valence_arousal[1])
    return fields


def outputs_at(result: dict[str, np.ndarray], position: int) -> dict[str, np.ndarray]:
    """The model outputs of one face of a predicted batch."""
    return {key: value[position] for key, value in result.items()}


def row_columns(class_names: Sequence[str], valence_arousal: bool, fingerprint: Sequence[str], video: bool = False,
                smoothed: bool = False) -> list[str]:
    """A table's columns: video rows add ``frame``, ``time_s``, ``track``; smoothing adds ``*_smooth``."""
    columns = ["path", *(VIDEO_KEYS if video else ()), "face", "box_x1", "box_y1", "box_x2", "box_y2", "landmarks",
               "score", "embedding", *prediction_columns(class_names, valence_arousal)]
    if smoothed:
        columns += prediction_columns(class_names, valence_arousal, SMOOTH_SUFFIX)
    return columns + list(fingerprint)


def prediction_columns(class_names: Sequence[str], valence_arousal: bool, suffix: str = "") -> list[str]:
    """The column names ``prediction_fields`` fills, in table order."""
    columns = [f"emotion{suffix}"] + [f"p_{name}{suffix}" for name in class_names]
    return columns + ([f"valence{suffix}", f"arousal{suffix}"] if valence_arousal else [])
