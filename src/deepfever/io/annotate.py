"""Draw faces, landmarks and the top emotion onto an image, for people to check results by eye.

The one drawing helper: photos and video frames are drawn alike, each face in its emotion's colour
(``PALETTE``), named as in the table: ``0:`` for face 0 of a photo, ``#0`` for track 0 of a video.
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

PALETTE: dict[str, str] = {
    "neutral": "#555555", "happy": "#E69F00", "sad": "#0072B2", "surprise": "#56B4E9",
    "fear": "#CC79A7", "disgust": "#009E73", "anger": "#D55E00", "contempt": "#F0E442",
}
"""One colour per emotion, the same in annotated images and videos, timelines, maps and the web page
(``serve/static/app.js`` repeats it; a test keeps the two equal). The Okabe-Ito colours, with neutral a dark
grey: happy is orange, surprise sky blue, sad deep blue. Every pair stays at least 16 CIELAB units apart for
normal, protan, deutan and tritan vision (Machado et al. 2009 simulation; the page's former colours: 3)."""
OTHER_COLOUR = "#BBBBBB"
"""The colour of a label outside ``PALETTE`` (a model trained on other classes)."""
LANDMARK_COLOUR = (255, 255, 255)


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#E69F00"`` -> ``(230, 159, 0)``."""
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def emotion_colour(emotion: str) -> tuple[int, int, int]:
    """RGB of ``emotion`` in ``PALETTE`` (``OTHER_COLOUR`` for a label outside it)."""
    return hex_to_rgb(PALETTE.get(str(emotion), OTHER_COLOUR))


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

    Box and label take the colour of the row's ``emotion``; the label says which face or track it is.

    ``image`` must be a writable, contiguous ``uint8`` (H, W, 3) array, as ``load_image`` and
    ``deepfever.video.iter_frames`` give; ``rows`` are the table rows of its faces.

    Example:
        >>> frame = draw_faces(np.array(load_image("photo.jpg")), table[table["path"] == "photo.jpg"])  # doctest: +SKIP
    """
    longest = max(image.shape[:2])
    thickness = max(2, round(longest / 300))
    font_scale = max(0.45, longest / 1400)
    for row in rows.itertuples(index=False):
        colour = emotion_colour(row.emotion)
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
