"""Draw faces, landmarks and the top emotion onto an image, for people to check results by eye."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from deepfever.io.atomic import atomic_write
from deepfever.io.images import load_image


def annotate_file(source: str | os.PathLike, rows: pd.DataFrame, target: str | os.PathLike, fps: float | None = None) -> Path:
    """Write a copy of an image (JPEG) or video (MP4) with its rows drawn on it, atomically."""
    if "frame" in rows and rows["frame"].notna().any():
        from deepfever.video import write_annotated_video

        return write_annotated_video(source, rows, target, fps=fps)
    with atomic_write(target) as tmp:
        annotate_image(load_image(source), rows).save(tmp, format="JPEG", quality=90)
    return Path(target)


def annotate_image(image: np.ndarray, rows: pd.DataFrame) -> Image.Image:
    """RGB array + the table rows of its faces -> annotated PIL image."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 45)))
    for row in rows.itertuples(index=False):
        box = (row.box_x1, row.box_y1, row.box_x2, row.box_y2)
        draw.rectangle(box, outline=(255, 64, 32), width=width)
        for x, y in np.asarray(row.landmarks).reshape(-1, 2):
            draw.ellipse((x - width, y - width, x + width, y + width), fill=(32, 220, 255))
        label = f"{row.face}: {row.emotion} {getattr(row, f'p_{row.emotion}'):.2f}"
        text_box = draw.textbbox((box[0], box[1]), label, font=font)
        top = max(0, box[1] - (text_box[3] - text_box[1]) - 2 * width)
        draw.rectangle((box[0], top, box[0] + text_box[2] - text_box[0] + 2 * width, box[1]), fill=(255, 64, 32))
        draw.text((box[0] + width, top), label, fill=(255, 255, 255), font=font)
    return canvas
