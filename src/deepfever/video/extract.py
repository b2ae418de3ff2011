"""Videos to rows: frames go through the face engine (detect, align, embed in batches across frames);
what is specific to time stays here: tracks and smoothing.

Rows leave in frame order. A face's rows wait until its track is confirmed (``min_hits`` frames), so a
one-frame false detection never reaches the table and every row carries its final track id.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Protocol, Union

import cv2
import numpy as np
import pandas as pd

from deepfever import defaults
from deepfever.faces.detect import Detector
from deepfever.faces.types import Face
from deepfever.pipeline import FaceEngine
from deepfever.pipeline.rows import SMOOTH_SUFFIX, PendingBatch, outputs_at, prediction_fields, row_columns
from deepfever.video.decode import DecodeStats, Frame, decode_shortfall, iter_frames, probe_video, read_ahead
from deepfever.video.scenecut import SceneCutDetector
from deepfever.video.tracking import CONFIRMED, DELETED, TENTATIVE, FaceTracker, Track, appearance_descriptor, follow_faces

class HasEngine(Protocol):
    """What has a ``FaceEngine`` once loaded: ``Extractor`` (``ensure_loaded().engine_``)."""

    def ensure_loaded(self) -> Any: ...


Source = Union[FaceEngine, HasEngine]

logger = logging.getLogger(__name__)

FULL_DETECT_EVERY_S = 0.4
"""Seconds between detections at ``detect_side`` on every-frame work; in between, faces are found on a
smaller copy sized by the faces already seen. Short enough that a newcomer too small for the small copy
gets rows within half a second (0.4 s, then ``min_hits`` frames)."""
REID_WAIT_S = 0.5
"""Seconds a new face's track may wait for its id while a lost track nearly recognises it (``FaceTracker``'s
``reid_wait``: 12 frames at 25 frames/s, where it was measured)."""
MIN_FACE_PX = 48
"""Width, in the shrunk copy, of the smallest face seen in the last frame (see ``DetectionSizes``)."""

@dataclass
class VideoReport:
    """What one video gave: frames decoded and processed, faces kept, tracks confirmed and speed.

    ``frames_declared`` is the container's frame count and ``frames_decoded`` the frames actually read
    (processed or skipped by ``fps``); ``truncation`` says when the two disagree.
    """

    path: str = ""
    frames: int = 0
    frames_declared: int = 0
    frames_decoded: int = 0
    frames_undecodable: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    detector_runs: int = 0
    full_detections: int = 0
    track_ids: list[int] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def truncation(self) -> str | None:
        """Why the video was only partly read, or ``None`` when every declared frame was decoded."""
        return decode_shortfall(self.frames_decoded, self.frames_declared, self.frames_undecodable)

    def summary(self) -> str:
        return (f"{self.path}: {self.frames} frames, {self.faces} faces in {self.tracks} tracks, "
                f"{self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")


def engine_of(source: Source) -> FaceEngine:
    """The engine of ``source``: itself, or a loaded ``Extractor``'s ``engine_``."""
    return source if isinstance(source, FaceEngine) else source.ensure_loaded().engine_


def video_columns(source: Source, smoothed: bool = False) -> list[str]:
    """Image columns with ``frame``, ``time_s`` and ``track`` after ``path`` (and ``*_smooth`` when ``smoothed``)."""
    engine = engine_of(source)
    return row_columns(engine.class_names, engine.has_valence_arousal, engine.fingerprint, video=True, smoothed=smoothed)


def iter_video_rows(extractor: Source, path: str | os.PathLike, fps: float | None = None,
                    **options: Any) -> Iterator[dict[str, Any]]:
    """Stream one row per tracked face per processed frame of a video file.

    Args:
        extractor: an ``Extractor`` (loaded if needed) or its ``FaceEngine``.
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
    info = probe_video(path)
    native = info.fps or 25.0  # some containers omit the rate; it only sizes max_age
    rate = native if fps is None else min(fps, native)
    report = options["report"] = options.get("report") or VideoReport()
    stats = DecodeStats()
    yield from iter_frame_rows(extractor, read_ahead(iter_frames(path, fps, stats=stats)), str(path), rate, **options)
    report.frames_declared, report.frames_decoded, report.frames_undecodable = info.frame_count, stats.decoded, stats.undecodable


def iter_frame_rows(
    extractor: Source,
    frames: Iterable[Frame],
    name: str,
    frame_rate: float,
    detector: str | Detector | None = None,
    smoothing: float = 0.0,
    batch_size: int | None = None,
    detect_side: int | None = defaults.DETECT_SIDE,
    detect_every: int = 1,
    max_age_s: float = defaults.TRACK_MAX_AGE_S,
    min_hits: int = defaults.TRACK_MIN_HITS,
    report: VideoReport | None = None,
    full_detect_every_s: float | None = FULL_DETECT_EVERY_S,
    min_face_px: int = MIN_FACE_PX,
) -> Iterator[dict[str, Any]]:
    """Rows for any stream of ``Frame`` s (a file, a camera, a looped clip), in frame order.

    Args:
        extractor: an ``Extractor`` (loaded if needed) or its ``FaceEngine``: model, template, detectors, rows.
        frames: ``Frame(index, time_s, rgb)`` in time order.
        name: written to the ``path`` column.
        frame_rate: processed frames per second; turns ``max_age_s`` into frames.
        detector: a detector name (``mtcnn``, ``yunet``, built by the engine), a ``Detector`` instance,
            or ``None`` for the engine's default.
        smoothing: exponential moving average of probabilities (and valence/arousal) per track,
            ``p_t = smoothing * p_{t-1} + (1 - smoothing) * raw_t`` per processed frame; ``emotion`` is
            written beside the raw values as ``p_<class>_smooth``, ``emotion_smooth`` (their argmax) and
            ``valence_smooth``/``arousal_smooth``; ``p_*``, ``emotion`` and ``embedding`` stay raw. 0 turns it off.
        batch_size: faces per model batch, shared across frames; default the engine's.
        detect_side: frames are shrunk so their longer side is at most this before detection, and
            boxes and landmarks are mapped back (crops are still cut from the full frame). 320 finds
            faces down to about 40 px in a 640-wide frame; ``None`` detects at full size.
        detect_every: run the detector on every k-th processed frame and follow faces by optical flow
            of their landmarks in between (``tracking.follow_faces``). Meant for every-frame work:
            with a low ``fps`` the frames are too far apart to follow.
        max_age_s: seconds a track survives without its face (someone passing in front, a look away);
            meanwhile its box moves on with its last velocity, and it is re-identified by the colours
            of face and hair (``tracking.appearance_descriptor``) if it reappears elsewhere nearby.
            After a scene cut (``scenecut.SceneCutDetector``) tracks are found again by appearance alone.
        min_hits: processed frames in a row before a new face gets a track id and rows.
        report: filled in with counts and timing when given.
        full_detect_every_s: between detections at ``detect_side``, made at least this often (and on
            every cut, and while no face is seen), the detector runs on a smaller copy whose size is
            chosen so that the smallest face of the previous frame is still ``min_face_px`` wide; when
            it finds fewer faces than that frame had, the frame is detected again at ``detect_side``.
            ``None`` detects every frame at ``detect_side``.
        min_face_px: see ``full_detect_every_s``.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"iter_frame_rows: smoothing must lie in [0, 1), got {smoothing!r}; use 0 to turn it off")
    if detect_every < 1 or (detect_side is not None and detect_side < 32) or min_face_px < 8 \
            or (full_detect_every_s is not None and not full_detect_every_s > 0):
        raise ValueError(f"iter_frame_rows: need detect_every >= 1, detect_side None or >= 32, min_face_px >= 8 and "
                         f"full_detect_every_s None or > 0, got detect_every={detect_every}, detect_side={detect_side}, "
                         f"min_face_px={min_face_px}, full_detect_every_s={full_detect_every_s}")
    engine = engine_of(extractor)
    finder = engine.detector(detector)
    tracker = FaceTracker(max_age=max(1, round(max_age_s * frame_rate)), min_hits=min_hits,
                          reid_wait=round(REID_WAIT_S * frame_rate))
    report = report if report is not None else VideoReport()
    report.path = name
    batch = batch_size or engine.batch_size
    started = time.perf_counter()
    pending = PendingBatch()
    pending_frames: list[tuple[int, float, list[Face], list[np.ndarray], bool]] = []
    cuts = SceneCutDetector()
    waiting: deque[list[tuple[dict[str, Any], np.ndarray, Track]]] = deque()
    averages: dict[int, np.ndarray] = {}
    previous: tuple[np.ndarray, list[Face]] | None = None
    sizes = DetectionSizes(detect_side, None if full_detect_every_s is None else max(1, round(full_detect_every_s * frame_rate)),
                           min_face_px)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepfever-embed") as model:
        # The model embeds one batch while the next frames are detected and aligned (both release the GIL).
        in_flight: tuple[Future, list] | None = None
        for position, (index, time_s, rgb) in enumerate(frames):
            report.frames += 1
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if detect_every > 1 else None
            cut = cuts.is_cut(rgb)
            if position % detect_every == 0 or previous is None or cut:  # nothing can be followed across a cut
                faces = sizes.find(engine, finder, rgb, cut, report)
            else:
                faces = follow_faces(previous[0], grey, previous[1])
            previous = (grey, faces) if grey is not None else None
            for crop in engine.align(rgb, faces) if faces else []:
                pending.add(len(pending_frames), crop)
            pending_frames.append((index, time_s, faces, [appearance_descriptor(rgb, face.box) for face in faces], cut))
            full = len(pending) >= batch
            if in_flight is not None and (full or in_flight[0].done()):  # rows leave as soon as their batch is embedded
                waiting.extend(_track(in_flight[0].result(), in_flight[1], engine, tracker, name))
                yield from _release(waiting, engine, smoothing, averages, report, final=False)
                in_flight = None
            if full:
                in_flight = _embed(model, engine, pending), pending_frames
                pending_frames = []
        if in_flight is not None:
            waiting.extend(_track(in_flight[0].result(), in_flight[1], engine, tracker, name))
        waiting.extend(_track(_embed(model, engine, pending).result(), pending_frames, engine, tracker, name))
    yield from _release(waiting, engine, smoothing, averages, report, final=True)
    report.tracks = len(averages)
    report.track_ids = sorted(averages)
    report.seconds = time.perf_counter() - started
    logger.info(report.summary())


class DetectionSizes:
    """Which size each frame is detected at: ``detect_side`` at least every ``full_every`` frames, on a cut
    and while no face is seen; in between, the smallest size that keeps the smallest face of the last
    frame ``min_face_px`` wide (detection cost grows with pixels; a face 200 px wide is found as well
    at a quarter of the size). A frame where the small copy shows fewer faces than the last frame is
    detected again at ``detect_side``, so a face lost by shrinking is never lost from the rows, and the
    next ``full_every - 1`` frames are detected at ``detect_side`` too rather than twice.
    """

    def __init__(self, detect_side: int | None, full_every: int | None, min_face_px: int) -> None:
        self.detect_side = detect_side
        self.full_every = full_every
        self.min_face_px = min_face_px
        self._since_full = 0
        self._held = 0
        self._last: list[Face] = []

    def side(self, shape: tuple[int, ...], cut: bool) -> int | None:
        """The longer side to shrink this frame to; ``detect_side`` for a full detection."""
        if self.full_every is None or cut or not self._last or self._held or self._since_full + 1 >= self.full_every:
            return self.detect_side
        longest = max(shape[:2])
        smallest = min(float(min(face.box[2] - face.box[0], face.box[3] - face.box[1])) for face in self._last)
        side = 32 * int(np.ceil(longest * self.min_face_px / max(smallest, 1.0) / 32))  # YuNet pads to multiples of 32
        ceiling = longest if self.detect_side is None else min(self.detect_side, longest)
        return self.detect_side if side >= ceiling else max(side, 64)

    def find(self, engine: FaceEngine, finder: Detector, rgb: np.ndarray, cut: bool, report: VideoReport) -> list[Face]:
        """This frame's faces, found at the size ``side`` chooses (again at ``detect_side`` if one went missing)."""
        side = self.side(rgb.shape, cut)
        self._held = max(0, self._held - 1)
        (faces,) = engine.find_faces([rgb], finder, side)
        report.detector_runs += 1
        if side != self.detect_side and len(faces) < len(self._last):
            (faces,) = engine.find_faces([rgb], finder, self.detect_side)
            report.detector_runs += 1
            side, self._held = self.detect_side, (self.full_every or 1) - 1
        self._since_full = 0 if side == self.detect_side else self._since_full + 1
        report.full_detections += side == self.detect_side
        self._last = faces
        return faces


def extract_video(extractor: Source, path: str | os.PathLike, **options: Any) -> pd.DataFrame:
    """All rows of ``iter_video_rows`` as a DataFrame (columns ``video_columns``); ``attrs["report"]`` holds the report.

    Example:
        >>> table = extract_video(Extractor(), "clip.mp4", fps=2)  # doctest: +SKIP
        >>> table.groupby("track")["p_happy"].mean()  # doctest: +SKIP
    """
    report = VideoReport()
    rows = list(iter_video_rows(extractor, path, report=report, **options))
    frame = pd.DataFrame(rows, columns=video_columns(extractor, smoothed=bool(options.get("smoothing"))))
    frame.attrs["report"] = asdict(report)
    return frame


def _embed(model: ThreadPoolExecutor, engine: FaceEngine, pending: PendingBatch) -> Future:
    """Start embedding every pending crop in one model call (the batch is empty afterwards); the future holds
    the model's outputs, or ``None`` when no frame had a face."""
    _, crops = pending.take()
    return model.submit(lambda: None if crops is None else engine.predict(crops))


def _track(result: dict[str, np.ndarray] | None, frames: list[tuple[int, float, list[Face], list[np.ndarray], bool]],
           engine: FaceEngine, tracker: FaceTracker, name: str) -> Iterator[list[tuple[dict[str, Any], np.ndarray, Track]]]:
    """Feed one embedded batch's frames to the tracker, in order (telling it of scene cuts).

    Each entry is (the engine's row plus ``frame``/``time_s``, raw values to smooth, track).
    """
    start = 0
    for index, time_s, faces, looks, cut in frames:
        stop = start + len(faces)
        embeddings = None if result is None else result["embedding"][start:stop]
        tracks = tracker.update(np.stack([face.box for face in faces]) if faces else np.zeros((0, 4)), embeddings,
                                np.stack(looks) if looks else None, scene_cut=cut)
        entries = []
        for number, (face, track) in enumerate(zip(faces, tracks)):
            outputs = outputs_at(result, start + number)
            row = engine.row(name, number, face, outputs)
            row.update(frame=index, time_s=time_s)
            va = outputs.get("valence_arousal")
            entries.append((row, outputs["probabilities"] if va is None else np.concatenate([outputs["probabilities"], va]), track))
        start = stop
        yield entries


def _release(waiting: deque, engine: FaceEngine, smoothing: float, averages: dict[int, np.ndarray],
             report: VideoReport, final: bool) -> Iterator[dict[str, Any]]:
    """Yield the oldest frames whose tracks are all decided (at the end, whatever is left)."""
    while waiting and (final or all(track.state != TENTATIVE for _, _, track in waiting[0])):
        entries = waiting.popleft()
        kept = [entry for entry in entries if entry[2].id is not None]
        report.frames_with_faces += bool(kept)
        for row, raw, track in kept:
            report.faces += 1
            yield _finish(row, raw, track, engine.class_names, smoothing, averages)


def _finish(row: dict[str, Any], raw: np.ndarray, track: Track, class_names: list[str], smoothing: float,
            averages: dict[int, np.ndarray]) -> dict[str, Any]:
    """Fill in the track id and the smoothed values beside the raw ones (when smoothing)."""
    assert track.id is not None and track.state in (CONFIRMED, DELETED)
    row["track"] = track.id
    if smoothing:
        previous = averages.get(track.id)
        values = raw if previous is None else smoothing * previous + (1 - smoothing) * raw
        row.update(prediction_fields(class_names, values[: len(class_names)],
                                     values[len(class_names):] if len(values) > len(class_names) else None, suffix=SMOOTH_SUFFIX))
    else:
        values = raw
    averages[track.id] = values
    return row
