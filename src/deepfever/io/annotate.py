"""Draw faces, landmarks and the top emotion onto an image, for people to check results by eye.

The one drawing helper: photos and video frames are drawn alike, with one palette.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from deepfever.io.atomic import atomic_write
from deepfever.io.images import load_image

PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 32), (32, 160, 255), (64, 220, 64), (220, 64, 220), (255, 220, 32), (255, 255, 255))
"""RGB colours, one per video track (cycled); faces of a photo take the first. Readable on skin and dark
backgrounds."""
LANDMARK_COLOUR = (32, 220, 255)


def face_colour(row: object) -> tuple[int, int, int]:
    """The palette colour of a row: by its ``track`` when it has one, else the first."""
    track = getattr(row, "track", None)
    return PALETTE[0] if track is None or pd.isna(track) else PALETTE[int(track) % len(PALETTE)]


def face_label(row: object) -> str:
    """``#track emotion p`` for a tracked video face, ``face: emotion p`` for a face of a photo."""
    track = getattr(row, "track", None)
    name = f"#{int(track)}" if track is not None and not pd.isna(track) else f"{row.face}:"
    return f"{name} {row.emotion} {getattr(row, f'p_{row.emotion}'):.2f}"


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (by luma), so every label stays legible."""
    red, green, blue = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue >= 128 else (255, 255, 255)


def draw_faces(image: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """Draw each row's box, landmarks (when present) and top emotion onto RGB ``image``, in place; returns it.

    ``image`` must be a writable, contiguous ``uint8`` (H, W, 3) array, as ``load_image`` and
    ``deepfever.video.iter_frames`` give; ``rows`` are the table rows of its faces.

    Example:
        >>> frame = draw_faces(np.array(load_image("photo.jpg")), table[table["path"] == "photo.jpg"])  # doctest: +SKIP
    """
    longest = max(image.shape[:2])
    thickness = max(2, round(longest / 300))
    font_scale = max(0.45, longest / 1400)
    for row in rows.itertuples(index=False):
        colour = face_colour(row)
        x1, y1, x2, y2 = (int(round(float(v))) for v in (row.box_x1, row.box_y1, row.box_x2, row.box_y2))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        landmarks = getattr(row, "landmarks", None)
        if landmarks is not None and not (np.isscalar(landmarks) and pd.isna(landmarks)):
            for x, y in np.asarray(landmarks, np.float64).reshape(-1, 2):
                cv2.circle(image, (int(round(x)), int(round(y))), thickness, LANDMARK_COLOUR, cv2.FILLED, cv2.LINE_AA)
        label = face_label(row)
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - height - baseline - 2 * thickness)
        cv2.rectangle(image, (x1, top), (x1 + width + 2 * thickness, y1), colour, cv2.FILLED)
        cv2.putText(image, label, (x1 + thickness, y1 - baseline - thickness), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, text_colour(colour), 1, cv2.LINE_AA)
    return image


def write_annotated_image(source: str | os.PathLike, rows: pd.DataFrame, target: str | os.PathLike) -> Path:
    """Write a JPEG copy of image ``source`` with its rows drawn on it, atomically; returns ``target``."""
    image = draw_faces(np.array(load_image(source)), rows)
    with atomic_write(target) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=90)
    return Path(target)
