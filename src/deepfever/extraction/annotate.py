"""Annotated copies of inputs: photos through ``deepfever.io.annotate``, videos through ``deepfever.video``."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepfever.io.annotate import write_annotated_image


def annotate_file(source: str | os.PathLike, rows: pd.DataFrame, target: str | os.PathLike, fps: float | None = None) -> Path:
    """Write a copy of an image (JPEG) or video (MP4) with its rows drawn on it, atomically.

    Rows with a ``frame`` number come from a video; ``fps`` is the rate the video was sampled at.
    """
    if "frame" in rows and rows["frame"].notna().any():
        from deepfever.video import write_annotated_video

        return write_annotated_video(source, rows, target, fps=fps)
    return write_annotated_image(source, rows, target)
