"""Write a copy of a video with each tracked face boxed and labelled, for checking results by eye."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from deepfever.io.atomic import atomic_write
from deepfever.video.decode import iter_frames, probe_video

# BGR colours, one per track id (cycled), chosen to stay readable on skin and dark backgrounds.
_PALETTE = ((32, 64, 255), (255, 160, 32), (64, 220, 64), (220, 64, 220), (32, 220, 255), (255, 255, 255))


def write_annotated_video(video: str | os.PathLike, table: pd.DataFrame, output: str | os.PathLike,
                          fps: float | None = None) -> Path:
    """Re-decode ``video`` and write the frames ``table`` was made from, with boxes, track ids and top emotion.

    Args:
        video: the video the table came from.
        table: its rows (``frame``, ``track``, ``box_*``, ``emotion``, ``p_*`` columns).
        output: an ``.mp4`` (MPEG-4 Part 2, ``mp4v``) file; it appears complete or not at all. Existing
            files are replaced (callers check with ``deepfever.io.refuse_overwrite``).
        fps: the sampling rate used for the table; the output plays at that rate (``None``: native rate).

    Returns the path written.

    Example:
        >>> table = extract_video(Extractor(), "clip.mp4", fps=5)  # doctest: +SKIP
        >>> write_annotated_video("clip.mp4", table, "clip.annotated.mp4", fps=5)  # doctest: +SKIP
    """
    missing = {"frame", "track", "box_x1", "box_y1", "box_x2", "box_y2", "emotion"} - set(table.columns)
    if missing:
        raise ValueError(f"write_annotated_video: the table lacks columns {sorted(missing)}; make it with extract_video")
    info = probe_video(video)
    rate = info.fps if fps is None else min(fps, info.fps or fps)
    by_frame = {index: rows for index, rows in table.groupby("frame")}
    final = Path(output)
    with atomic_write(final) as tmp:
        # OpenCV picks the container from the file name, so encode under the real suffix, then hand over.
        staging = tmp.with_name(tmp.name + (final.suffix or ".mp4"))
        writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*"mp4v"), rate, (info.width, info.height))
        try:
            if not writer.isOpened():
                raise OSError(f"write_annotated_video: OpenCV cannot write {final.suffix!r} video to {str(final)!r};"
                                     " use an .mp4 output")
            for index, _, rgb in iter_frames(video, fps):
                bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                if index in by_frame:
                    _draw(bgr, by_frame[index])
                writer.write(bgr)
            writer.release()
            os.replace(staging, tmp)
        finally:
            writer.release()
            staging.unlink(missing_ok=True)
    return final


def _draw(bgr: np.ndarray, rows: pd.DataFrame) -> None:
    thickness = max(2, round(max(bgr.shape[:2]) / 320))
    font_scale = max(0.45, max(bgr.shape[:2]) / 1400)
    for row in rows.itertuples(index=False):
        colour = _PALETTE[int(row.track) % len(_PALETTE)]
        x1, y1, x2, y2 = (int(round(v)) for v in (row.box_x1, row.box_y1, row.box_x2, row.box_y2))
        cv2.rectangle(bgr, (x1, y1), (x2, y2), colour, thickness)
        label = f"#{row.track} {row.emotion} {getattr(row, f'p_{row.emotion}'):.2f}"
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - height - baseline - 2 * thickness)
        cv2.rectangle(bgr, (x1, top), (x1 + width + 2 * thickness, y1), colour, cv2.FILLED)
        cv2.putText(bgr, label, (x1 + thickness, y1 - baseline - thickness), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), 1, cv2.LINE_AA)
