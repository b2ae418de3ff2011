"""Write a copy of a video with each tracked face boxed and labelled, in a format browsers and notebooks play.

Which codecs an OpenCV build can encode depends on how its FFmpeg was built (the pip wheels carry no
H.264 encoder), so the format is chosen by trying, once per process: H.264 in MP4 when it encodes,
else VP8 in WebM, else MPEG-4 Part 2 in MP4, which plays in desktop players but not in browsers
(logged). VP9 in WebM is left out: measured at 8 frames/s against VP8's 33 on the shared 640x360
clip (2 shared CPU cores), too slow for a copy made beside every extraction.
"""
from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from deepfever.io.annotate import draw_faces
from deepfever.io.atomic import atomic_write
from deepfever.video.decode import iter_frames, probe_video

logger = logging.getLogger(__name__)

VIDEO_CODECS: dict[str, tuple[str, ...]] = {".mp4": ("avc1", "mp4v"), ".webm": ("VP80",)}
"""Container suffix -> OpenCV fourccs to try, best first."""

PLAYABLE_CODECS = frozenset({"avc1", "VP80"})
"""Codecs every current browser (and so Jupyter's video display) plays."""


@functools.lru_cache(maxsize=None)
def video_codec(suffix: str) -> str | None:
    """The first fourcc of ``VIDEO_CODECS[suffix]`` this OpenCV writes and reads back, or ``None``.

    Measured by writing three 64x64 frames to a temporary file, once per process and suffix.
    """
    codecs = VIDEO_CODECS.get(suffix.lower())
    if codecs is None:
        raise ValueError(f"video_codec: no codecs for {suffix!r}; annotated videos are written as "
                         f"{' or '.join(VIDEO_CODECS)}")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a missing encoder is expected here
    try:
        with tempfile.TemporaryDirectory(prefix="deepfever-codec-") as folder:
            for fourcc in codecs:
                if _writes(Path(folder) / f"probe-{fourcc}{suffix}", fourcc):
                    return fourcc
    finally:
        cv2.utils.logging.setLogLevel(level)
    return None


def _writes(path: Path, fourcc: str) -> bool:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (64, 64))
    try:
        if not writer.isOpened():
            return False
        for level in (0, 128, 255):
            writer.write(np.full((64, 64, 3), level, np.uint8))
    finally:
        writer.release()
    capture = cv2.VideoCapture(str(path))
    try:
        return capture.isOpened() and capture.grab()
    finally:
        capture.release()


def annotated_video_suffix() -> str:
    """``.mp4`` when this OpenCV encodes H.264, else ``.webm`` when it encodes VP8, else ``.mp4`` (mp4v, logged)."""
    if video_codec(".mp4") == "avc1":
        return ".mp4"
    if video_codec(".webm") is not None:
        return ".webm"
    logger.warning("annotated videos: this OpenCV encodes neither H.264 nor VP8; writing MPEG-4 Part 2 (mp4v), "
                   "which desktop players play but browsers and notebooks do not")
    return ".mp4"


def write_annotated_video(video: str | os.PathLike, table: pd.DataFrame, output: str | os.PathLike,
                          fps: float | None = None) -> Path:
    """Re-decode ``video`` and write the frames ``table`` was made from, with boxes, track ids and top emotion.

    Faces are drawn by ``deepfever.io.annotate.draw_faces``, as on photos: each box in its emotion's colour.

    Args:
        video: the video the table came from.
        table: its rows (``frame``, ``track``, ``box_*``, ``emotion``, ``p_*`` columns).
        output: an ``.mp4`` (H.264 when this OpenCV encodes it, else MPEG-4 Part 2, logged) or ``.webm``
            (VP8) file; ``annotated_video_suffix()`` names the one browsers play here. It appears complete
            or not at all; existing files are replaced (callers check with ``deepfever.io.refuse_overwrite``).
        fps: the sampling rate used for the table; the output plays at that rate (``None``: native rate).

    Returns the path written.

    Example:
        >>> table = extract_video(Extractor(), "clip.mp4", fps=5)  # doctest: +SKIP
        >>> write_annotated_video("clip.mp4", table, "clip.annotated" + annotated_video_suffix(), fps=5)  # doctest: +SKIP
    """
    missing = {"frame", "track", "box_x1", "box_y1", "box_x2", "box_y2", "emotion"} - set(table.columns)
    if missing:
        raise ValueError(f"write_annotated_video: the table lacks columns {sorted(missing)}; make it with extract_video")
    final = Path(output)
    suffix = final.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise ValueError(f"write_annotated_video: output must end in {' or '.join(VIDEO_CODECS)}, got {str(final)!r}; "
                         f"{annotated_video_suffix()} plays in browsers with this OpenCV")
    fourcc = video_codec(suffix)
    if fourcc is None:
        raise OSError(f"write_annotated_video: this OpenCV encodes none of {', '.join(VIDEO_CODECS[suffix])} for "
                      f"{suffix}; use an {annotated_video_suffix()} output")
    if fourcc not in PLAYABLE_CODECS:
        logger.warning("write_annotated_video: %s is written as %s, which browsers and notebooks do not play; this OpenCV "
                       "has no H.264 encoder%s", final.name, fourcc,
                       "; a .webm output (VP8) would play" if video_codec(".webm") else "")
    info = probe_video(video)
    rate = info.fps if fps is None else min(fps, info.fps or fps)
    by_frame = {index: rows for index, rows in table.groupby("frame")}
    with atomic_write(final) as tmp:
        # OpenCV picks the container from the file name, so encode under the real suffix, then hand over.
        staging = tmp.with_name(tmp.name + suffix)
        writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*fourcc), rate, (info.width, info.height))
        try:
            if not writer.isOpened():
                raise OSError(f"write_annotated_video: OpenCV could not start a {fourcc} writer for {str(final)!r}")
            for index, _, rgb in iter_frames(video, fps):
                if index in by_frame:
                    draw_faces(rgb, by_frame[index])
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            writer.release()
            os.replace(staging, tmp)
        finally:
            writer.release()
            staging.unlink(missing_ok=True)
    return final
