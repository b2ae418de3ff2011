"""Stream RGB frames from a video file with OpenCV, optionally sampled at a fixed rate.

Frames are decoded one at a time and handed over at once, so memory stays the same for a 10-second
clip and a 10-hour recording.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np

from deepfever.errors import DeepFeverError
from deepfever.io.images import IMAGE_SUFFIXES


class VideoReadError(DeepFeverError, ValueError):
    """A file could not be opened or decoded as a video (missing codec, corrupt, not a video)."""


class Frame(NamedTuple):
    """One decoded frame: its position in the file, its timestamp in seconds and the RGB pixels."""

    index: int
    time_s: float
    rgb: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video; ``frame_count`` is an estimate for some formats."""

    fps: float
    frame_count: int
    width: int
    height: int


@dataclass
class DecodeStats:
    """Frames read from a file by ``iter_frames``: ``decoded`` (processed or skipped) and ``undecodable``."""

    decoded: int = 0
    undecodable: int = 0


TRUNCATION_TOLERANCE = 0.02
"""Containers estimate their frame count for some codecs; a shortfall within 2 % (or one frame) is not reported."""


def decode_shortfall(decoded: int, declared: int, undecodable: int = 0) -> str | None:
    """Why a video was only partly read (fewer frames than declared, or frames that failed to decode), else ``None``."""
    problems = []
    if declared and declared - decoded > max(1, TRUNCATION_TOLERANCE * declared):
        problems.append(f"read {decoded} of the {declared} frames the container declares (truncated or damaged file)")
    if undecodable:
        problems.append(f"{undecodable} frames could not be decoded and were skipped")
    return "; ".join(problems) + "; rows cover only the frames read" if problems else None


def _open(path: str | os.PathLike, caller: str) -> cv2.VideoCapture:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{caller}: no such video file: {str(file)!r}")
    if file.suffix.lower() in IMAGE_SUFFIXES:
        # OpenCV opens a still image as a one-frame "video"; that is almost always a mistake.
        raise VideoReadError(f"{caller}: {str(file)!r} is an image, not a video; use Extractor.extract for images")
    capture = cv2.VideoCapture(str(file))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(
            f"{caller}: {str(file)!r} is not a readable video (OpenCV could not open it); expected a file such as"
            " .mp4, .avi, .mov or .mkv with a codec that OpenCV's FFmpeg build supports"
        )
    return capture


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of a video, without decoding it.

    Example:
        >>> probe_video("clip.mp4").fps  # doctest: +SKIP
        23.976
    """
    capture = _open(path, "probe_video")
    try:
        return VideoInfo(
            fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()


def iter_frames(path: str | os.PathLike, fps: float | None = None, stats: DecodeStats | None = None) -> Iterator[Frame]:
    """Yield the frames of a video in order as ``Frame(index, time_s, rgb)``.

    Args:
        path: the video file.
        fps: ``None`` yields every frame; otherwise at most ``fps`` frames per second: for each
            sample time ``k / fps`` the first frame at or after it (frames are never repeated, so
            asking for more than the native rate gives every frame). Skipped frames are only
            demuxed and decoded, never converted, which keeps sampling cheap.
        stats: filled in as frames are read: how many were decoded and how many could not be (those
            are skipped, so a partly damaged file gives every frame it can; compare with
            ``probe_video(path).frame_count`` to notice a truncated file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoReadError: the file is not a video OpenCV can decode (raised before the first frame,
            so a caller can record a failure and go on).

    Example:
        >>> [round(frame.time_s, 2) for frame in iter_frames("clip.mp4", fps=2)][:3]  # doctest: +SKIP
        [0.0, 0.5, 1.0]
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"iter_frames: fps must be None (every frame) or a positive number, got {fps!r}")
    capture = _open(path, "iter_frames")
    stats = stats if stats is not None else DecodeStats()
    try:
        native_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        index, next_sample, last_time = -1, 0, -1.0
        while capture.grab():
            index += 1
            stats.decoded += 1
            time_s = _timestamp(capture, index, native_fps, last_time)
            last_time = time_s
            if fps is not None:
                # Tolerance of a microsecond: container timestamps are rounded to milliseconds or ticks.
                if time_s + 1e-6 < next_sample / fps:
                    continue
                next_sample = int(np.floor(time_s * fps + 1e-6)) + 1
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                stats.undecodable += 1
                continue
            yield Frame(index, time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if index < 0:
            raise VideoReadError(f"iter_frames: {str(path)!r} opened but has no decodable frame; is it a video?")
    finally:
        capture.release()


def _timestamp(capture: cv2.VideoCapture, index: int, native_fps: float, last_time: float) -> float:
    """The container's timestamp of the frame just grabbed; frame index / rate if it is missing or stuck."""
    time_s = float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
    if time_s > last_time or index == 0:
        return max(time_s, 0.0)
    if native_fps > 0:
        return index / native_fps
    raise VideoReadError("iter_frames: the video reports neither frame timestamps nor a frame rate; cannot place frames in time")


_END = object()


def read_ahead(frames: Iterator[Frame], ahead: int = 8) -> Iterator[Frame]:
    """Yield ``frames`` while a thread decodes up to ``ahead`` more, so decoding overlaps detection and the model.

    OpenCV releases the GIL while it demuxes, decodes and converts, so the two run at once on two cores.
    An error of the decoder (such as ``VideoReadError`` before the first frame) is raised here, at the
    ``next()`` that would have met it; stopping early stops and joins the thread and closes ``frames``.

    Example:
        >>> [frame.index for frame in read_ahead(iter_frames("clip.mp4", fps=1))][:3]  # doctest: +SKIP
        [0, 24, 48]
    """
    if ahead < 1:
        raise ValueError(f"read_ahead: ahead must be >= 1 frame, got {ahead!r}")
    buffer: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for frame in frames:
                if not hand_over(frame):
                    return
            hand_over(_END)
        except BaseException as error:  # handed to the reader, who raises it
            hand_over(error)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=decode, name="deepfever-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
