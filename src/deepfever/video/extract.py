"""Videos to rows: decode, detect, align, embed in batches across frames, track, smooth.

Rows leave in frame order. A face's rows wait until its track is confirmed (``min_hits`` frames), so a
one-frame false detection never reaches the table and every row carries its final track id.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import cv2
import numpy as np
import pandas as pd

from deepfever.faces.align import align_faces
from deepfever.faces.detect import Detector
from deepfever.faces.types import Face
from deepfever.video.decode import Frame, iter_frames, probe_video
from deepfever.video.tracking import CONFIRMED, DELETED, TENTATIVE, FaceTracker, Track, follow_faces

if TYPE_CHECKING:
    from deepfever.api import Extractor

logger = logging.getLogger(__name__)

VIDEO_KEYS = ("frame", "time_s", "track")
"""Columns a video row has on top of ``Extractor.columns()``."""


@dataclass
class VideoReport:
    """What one video gave: frames processed, faces kept, tracks confirmed and speed."""

    path: str = ""
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    detector_runs: int = 0
    track_ids: list[int] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.path}: {self.frames} frames, {self.faces} faces in {self.tracks} tracks, "
                f"{self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")


@dataclass
class _Pending:
    """Frames whose faces are aligned and wait for a full model batch."""

    frames: list[tuple[int, float, list[Face]]] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)


def video_columns(extractor: Extractor) -> list[str]:
    """``Extractor.columns()`` with ``frame``, ``time_s`` and ``track`` after ``path``."""
    columns = extractor.columns()
    at = columns.index("path") + 1
    return columns[:at] + list(VIDEO_KEYS) + columns[at:]


def iter_video_rows(extractor: Extractor, path: str | os.PathLike, fps: float | None = None,
                    **options: Any) -> Iterator[dict[str, Any]]:
    """Stream one row per tracked face per processed frame of a video file.

    Args:
        extractor: supplies the model, template and (by name) the detector; loaded if needed.
        path: the video file.
        fps: frames per second to process; ``None`` processes every frame.
        **options: ``detector``, ``smoothing``, ``batch_size``, ``detect_side``, ``detect_every``,
            ``max_age_s``, ``min_hits``, ``report``, as in ``iter_frame_rows``.

    Raises:
        FileNotFoundError, VideoReadError: at the first ``next()``, before any row, when the file is
            missing or is not a readable video.

    Example:
        >>> rows = iter_video_rows(Extractor(), "clip.mp4", fps=2, smoothing=0.5)  # doctest: +SKIP
        >>> next(rows)["track"]  # doctest: +SKIP
        0
    """
    native = probe_video(path).fps or 25.0  # some containers omit the rate; it only sizes max_age
    rate = native if fps is None else min(fps, native)
    yield from iter_frame_rows(extractor, iter_frames(path, fps), str(path), rate, **options)


def iter_frame_rows(
    extractor: Extractor,
    frames: Iterable[Frame],
    name: str,
    frame_rate: float,
    detector: str | Detector | None = None,
    smoothing: float = 0.0,
    batch_size: int | None = None,
    detect_side: int | None = 320,
    detect_every: int = 1,
    max_age_s: float = 1.0,
    min_hits: int = 2,
    report: VideoReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows for any stream of ``Frame`` s (a file, a camera, a looped clip), in frame order.

    Args:
        extractor: supplies the model, template and (by name) the detector; loaded if needed.
        frames: ``Frame(index, time_s, rgb)`` in time order.
        name: written to the ``path`` column.
        frame_rate: processed frames per second; turns ``max_age_s`` into frames.
        detector: a detector name (``mtcnn``, ``yunet``, built by ``extractor.detector_for``), a
            ``Detector`` instance, or ``None`` for the extractor's default.
        smoothing: exponential moving average of probabilities (and valence/arousal) per track,
            ``p_t = smoothing * p_{t-1} + (1 - smoothing) * raw_t`` per processed frame; ``emotion`` is
            the argmax of the smoothed values, ``embedding`` stays raw. 0 turns it off.
        batch_size: faces per model batch, shared across frames; default ``extractor.batch_size``.
        detect_side: frames are shrunk so their longer side is at most this before detection, and
            boxes and landmarks are mapped back (crops are still cut from the full frame). 320 finds
            faces down to about 40 px in a 640-wide frame; ``None`` detects at full size.
        detect_every: run the detector on every k-th processed frame and follow faces by optical flow
            of their landmarks in between (``tracking.follow_faces``). Meant for every-frame work:
            with a low ``fps`` the frames are too far apart to follow.
        max_age_s: seconds a track survives without its face (occlusion, a look away).
        min_hits: processed frames in a row before a new face gets a track id and rows.
        report: filled in with counts and timing when given.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"iter_frame_rows: smoothing must lie in [0, 1), got {smoothing!r}; use 0 to turn it off")
    if detect_every < 1 or (detect_side is not None and detect_side < 32):
        raise ValueError(f"iter_frame_rows: need detect_every >= 1 and detect_side None or >= 32, "
                         f"got detect_every={detect_every}, detect_side={detect_side}")
    extractor._check_loaded()
    finder = detector if isinstance(detector, Detector) else extractor.detector_for(detector)
    tracker = FaceTracker(max_age=max(1, round(max_age_s * frame_rate)), min_hits=min_hits)
    report = report if report is not None else VideoReport()
    report.path = name
    batch = batch_size or extractor.batch_size
    started = time.perf_counter()
    pending = _Pending()
    waiting: deque[list[tuple[dict[str, Any], Track]]] = deque()
    averages: dict[int, np.ndarray] = {}
    previous: tuple[np.ndarray, list[Face]] | None = None
    for position, (index, time_s, rgb) in enumerate(frames):
        report.frames += 1
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if detect_every > 1 else None
        if position % detect_every == 0 or previous is None:
            faces = _detect(finder, rgb, detect_side)
            report.detector_runs += 1
        else:
            faces = follow_faces(previous[0], grey, previous[1])
        previous = (grey, faces) if grey is not None else None
        if faces:
            pending.crops.extend(align_faces(rgb, faces, extractor.template_))
        pending.frames.append((index, time_s, faces))
        if len(pending.crops) >= batch:
            waiting.extend(_embed_and_track(extractor, pending, tracker, name))
            yield from _release(waiting, extractor, smoothing, averages, report, final=False)
    waiting.extend(_embed_and_track(extractor, pending, tracker, name))
    yield from _release(waiting, extractor, smoothing, averages, report, final=True)
    report.tracks = len(averages)
    report.track_ids = sorted(averages)
    report.seconds = time.perf_counter() - started
    logger.info(report.summary())


def extract_video(extractor: Extractor, path: str | os.PathLike, **options: Any) -> pd.DataFrame:
    """All rows of ``iter_video_rows`` as a DataFrame (columns ``video_columns``); ``attrs["report"]`` holds the report.

    Example:
        >>> table = extract_video(Extractor(), "clip.mp4", fps=2)  # doctest: +SKIP
        >>> table.groupby("track")["p_happy"].mean()  # doctest: +SKIP
    """
    report = VideoReport()
    frame = pd.DataFrame(list(iter_video_rows(extractor, path, report=report, **options)), columns=video_columns(extractor))
    frame.attrs["report"] = asdict(report)
    return frame


def _detect(finder: Detector, rgb: np.ndarray, side: int | None) -> list[Face]:
    """Detect on a copy shrunk to ``side`` (detectors cost grows with pixels), in full-frame coordinates."""
    longest = max(rgb.shape[:2])
    if side is None or longest <= side:
        return finder.detect(rgb)
    scale = side / longest
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]
    factor = np.array([sx, sy], np.float32)
    return [Face(box=(face.box / np.tile(factor, 2)).astype(np.float32),
                 landmarks=((face.landmarks + 0.5) / factor - 0.5).astype(np.float32), score=face.score)
            for face in finder.detect(small)]


def _embed_and_track(extractor: Extractor, pending: _Pending, tracker: FaceTracker,
                     name: str) -> Iterator[list[tuple[dict[str, Any], Track]]]:
    """Embed every pending crop in one model call, then feed the tracker frame by frame, in order."""
    result = extractor.predict(np.stack(pending.crops)) if pending.crops else None
    start = 0
    for index, time_s, faces in pending.frames:
        stop = start + len(faces)
        embeddings = None if result is None else result["embedding"][start:stop]
        tracks = tracker.update(np.stack([face.box for face in faces]) if faces else np.zeros((0, 4)), embeddings)
        entries = []
        for number, (face, track) in enumerate(zip(faces, tracks)):
            row = extractor._face_row(name, number, face)
            row.update(frame=index, time_s=time_s, embedding=result["embedding"][start + number],
                       probabilities=result["probabilities"][start + number])
            if "valence_arousal" in result:
                row["va"] = result["valence_arousal"][start + number]
            entries.append((row, track))
        start = stop
        yield entries
    pending.frames.clear()
    pending.crops.clear()


def _release(waiting: deque, extractor: Extractor, smoothing: float, averages: dict[int, np.ndarray],
             report: VideoReport, final: bool) -> Iterator[dict[str, Any]]:
    """Yield the oldest frames whose tracks are all decided (at the end, whatever is left)."""
    while waiting and (final or all(track.state != TENTATIVE for _, track in waiting[0])):
        entries = waiting.popleft()
        kept = [(row, track) for row, track in entries if track.id is not None]
        report.frames_with_faces += bool(kept)
        for row, track in kept:
            report.faces += 1
            yield _finish(row, track, extractor, smoothing, averages)


def _finish(row: dict[str, Any], track: Track, extractor: Extractor, smoothing: float,
            averages: dict[int, np.ndarray]) -> dict[str, Any]:
    """Fill in track id, (smoothed) probabilities, emotion and the model fingerprint."""
    assert track.id is not None and track.state in (CONFIRMED, DELETED)
    raw = np.concatenate([row.pop("probabilities"), row.pop("va", np.zeros(0, np.float32))])
    previous = averages.get(track.id)
    values = raw if previous is None or smoothing == 0 else smoothing * previous + (1 - smoothing) * raw
    averages[track.id] = values
    names = extractor.class_names_
    probabilities = values[: len(names)]
    row["track"] = track.id
    row["emotion"] = names[int(np.argmax(probabilities))]
    row.update({f"p_{name}": float(p) for name, p in zip(names, probabilities)})
    if len(values) > len(names):
        row["valence"], row["arousal"] = float(values[-2]), float(values[-1])
    row.update(extractor.fingerprint_)
    return row
