"""Detect and align a dataset once into a compact cache that training and benchmarks stream from.

Layout of a finished cache directory::

    manifest.json   format, root, reader options, detector, template, crop size, counts, version
    crops.npy       uint8 (N, S, S) grey or (N, S, S, 3) RGB aligned crops (memory-mapped by ``load_prepared``)
    index.parquet   one row per crop: split, index (in its split), path, label, soft_<emotion>,
                    valence, arousal, subject, score, landmarks_from
    failures.csv    split, index, path, reason for every sample that gave no crop

Work is done in shards of consecutive samples, each written atomically (``shards/START-STOP.npy``,
then its ``.parquet``, whose presence marks the shard done), so a killed or ``limit``-ed run
continues where it stopped without redoing or duplicating anything. When every sample is covered
the shards are joined into ``crops.npy`` and ``index.parquet``.

Detection modes: ``none`` (images are already face crops framed like the template: resize),
``mtcnn``/``yunet`` (the largest detected face), ``box`` (the dataset's own face box, e.g.
AffectNet's: the landmark detector runs inside the box, enlarged by ``BOX_MARGIN``; when it finds
nothing, the dataset's own 68 landmarks are used if present). ``fallback="none"`` keeps a sample
whose detector finds no face as a template-framed resize (``landmarks_from == "fallback"``): right
for datasets of face crops already framed like the template (FER+, whose mean framing the template is).

Example:
    >>> summary = prepare_dataset("affectnet", "data/AffectNet", "cache/affectnet48",
    ...                           PrepareSettings(detector="box", workers=8))  # doctest: +SKIP
    >>> crops, index = load_prepared("cache/affectnet48")  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import multiprocessing
import re
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import pandas as pd

from deepfever import defaults
from deepfever._version import __version__
from deepfever.data.arrays import sample_signature
from deepfever.data.formats import Sample, read_dataset
from deepfever.labels import EMOTIONS
from deepfever.errors import DeepFeverError, ImageReadError
from deepfever.faces.align import align_face
from deepfever.faces.types import Face, face_in_original, padded_box
from deepfever.io.atomic import atomic_write
from deepfever.io.failures import write_failures
from deepfever.io.lock import RunLock

if TYPE_CHECKING:
    from deepfever.faces.detect import Detector

logger = logging.getLogger(__name__)

PREPARE_VERSION = 1
DETECTION_MODES = ("mtcnn", "yunet", "none", "box")
CHANNELS = ("grey", "rgb")
FALLBACKS = ("", "none")
BOX_MARGIN = 0.25
"""``box`` mode searches the dataset's box enlarged by this share of its size on every side."""
SOFT_COLUMNS = tuple(f"soft_{name}" for name in EMOTIONS)
_SHARD_NAME = re.compile(r"^(\d{9})-(\d{9})$")
# 68-point (iBUG) indices -> our five landmarks: eye centres, nose tip, mouth corners.
_IBUG_EYES = (range(36, 42), range(42, 48))
_IBUG_NOSE_TIP, _IBUG_MOUTH_CORNERS = 30, (48, 54)


class PrepareError(DeepFeverError, ValueError):
    """A cache directory holds a different preparation, or is not finished yet."""


@dataclass(frozen=True)
class PrepareSettings:
    """How to turn images into crops.

    Args:
        detector: one of ``DETECTION_MODES``.
        size: crop side in pixels; the default FER+ template is scaled to it.
        workers: processes detecting in parallel (1: in this process).
        shard_size: samples per shard, the unit of resumption and of parallel work.
        limit: stop after this many samples in this run (a trial run, or a time-boxed chunk).
        detector_options: keyword arguments of the detector (``{"model_path": ...}`` for YuNet).
        box_detector: the landmark detector ``box`` mode runs inside each box.
        threads: torch threads of a detector (0: torch's default); worker processes use 1 each.
        channels: ``grey`` (N, S, S) or ``rgb`` (N, S, S, 3) crops; a model's ``in_chans`` picks which it needs.
        fallback: ``none`` turns a "no face" sample into a template-framed resize instead of a failure.
    """

    detector: str = defaults.DETECTOR
    size: int = 48
    workers: int = 1
    shard_size: int = 2048
    limit: int | None = None
    detector_options: dict[str, Any] = field(default_factory=dict)
    box_detector: str = defaults.DETECTOR
    threads: int = 0
    channels: str = "grey"
    fallback: str = ""

    def __post_init__(self) -> None:
        if self.detector not in DETECTION_MODES:
            raise ValueError(f"PrepareSettings: unknown detector {self.detector!r}; valid: {', '.join(DETECTION_MODES)}")
        if self.channels not in CHANNELS:
            raise ValueError(f"PrepareSettings: channels must be one of {', '.join(CHANNELS)}, got {self.channels!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"PrepareSettings: fallback must be '' (drop the sample) or 'none' (resize), got {self.fallback!r}")
        for name in ("size", "workers", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"PrepareSettings: {name} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"PrepareSettings: limit must be 0 or more (or None for all), got {self.limit}")


@dataclass
class PrepareSummary:
    """Where a cache stands after a ``prepare_dataset`` call."""

    samples: int
    prepared: int
    failed: int
    pending: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "prepared": self.prepared, "failed": self.failed,
                "pending": self.pending, "complete": self.complete, "seconds": round(self.seconds, 2)}


class FaceCropper:
    """One sample -> one aligned crop (the largest face), or a ``_Failure`` naming the reason.

    Crops go through the engine's face path (``deepfever.pipeline.FacePath``): the same detectors,
    alignment, ready-crop resize and grey conversion as extraction, so training crops and inference
    crops of one face agree.
    """

    def __init__(self, settings: PrepareSettings, template: dict[str, Any]) -> None:
        from deepfever.faces.align import AlignmentTemplate
        from deepfever.pipeline import FacePath, FaceStage

        self.settings = settings
        self.mode = settings.detector
        detector = settings.box_detector if self.mode == "box" else self.mode
        stage = FaceStage(detector, defaults.LANDMARKS, AlignmentTemplate.from_dict(template), settings.channels)
        self.path = FacePath(stage, detector_options=settings.detector_options)

    @functools.cached_property
    def detector(self) -> Detector:
        """Built on first use: a shard whose samples all fail early never loads detector weights."""
        detector = self.path.detector()
        if self.settings.threads and "torch" in sys.modules:
            import torch

            torch.set_num_threads(self.settings.threads)
        return detector

    def crop(self, sample: Sample) -> tuple[np.ndarray, float, str]:
        """(crop (S, S) or (S, S, 3) uint8, detector score, where the landmarks came from)."""
        from deepfever.io.images import load_image

        if sample.pixels is None and sample.path is None:
            raise _Failure("sample has neither a path nor pixels")
        try:
            image = load_image(sample.pixels if sample.pixels is not None else sample.path)
        except ImageReadError as error:
            raise _Failure(str(error)) from error
        try:
            landmarks, score, source = self._landmarks(image, sample)
        except _Failure:
            if not self.settings.fallback:
                raise
            return self.path.model_crops(self.path.ready_crop(image)), math.nan, "fallback"
        crop = align_face(image, landmarks, self.path.stage.template)
        return self.path.model_crops(crop), score, source

    def _landmarks(self, image: np.ndarray, sample: Sample) -> tuple[np.ndarray, float, str]:
        if self.mode != "box":
            faces = self.detector.detect(image)
            if not faces:
                raise _Failure("no face detected")
            face = _largest(faces)
            return face.landmarks, float(face.score), "template" if self.mode == "none" else "detector"
        if sample.box is None:
            raise _Failure("sample has no face box (box mode needs the dataset's boxes)")
        left, top, right, bottom = padded_box(sample.box, BOX_MARGIN, image.shape, per_axis=True)
        if right - left < 2 or bottom - top < 2:
            raise _Failure(f"face box {sample.box} lies outside the {image.shape[1]}x{image.shape[0]} image")
        faces = self.detector.detect(np.ascontiguousarray(image[top:bottom, left:right]))
        if faces:
            face = _largest(faces)
            return face_in_original(face, 1.0, (left, top)).landmarks, float(face.score), "detector"
        if sample.landmarks is not None and len(sample.landmarks) == 68:
            return five_from_68(sample.landmarks), math.nan, "dataset"
        raise _Failure("no face found inside the dataset's face box")


def _largest(faces: Sequence[Face]) -> Face:
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


class _Failure(Exception):
    """A sample that gives no crop; the message is the reason written to failures.csv."""


def five_from_68(points: np.ndarray) -> np.ndarray:
    """iBUG 68-point landmarks -> (5, 2) eye centres, nose tip and mouth corners, in ``LANDMARK_NAMES`` order."""
    points = np.asarray(points, np.float32)
    eyes = [points[list(indices)].mean(axis=0) for indices in _IBUG_EYES]
    return np.stack([*eyes, points[_IBUG_NOSE_TIP], points[_IBUG_MOUTH_CORNERS[0]], points[_IBUG_MOUTH_CORNERS[1]]])


def _row(split: str, index: int, sample: Sample) -> dict[str, Any]:
    soft = sample.soft_label if sample.soft_label is not None else np.full(len(EMOTIONS), np.nan)
    return {
        "split": split, "index": index, "path": sample.path or "", "label": int(sample.label),
        **{column: float(value) for column, value in zip(SOFT_COLUMNS, soft)},
        "valence": float(sample.valence), "arousal": float(sample.arousal), "subject": sample.subject,
    }


def _write_shard(cropper: FaceCropper, directory: Path, start: int, items: Sequence[tuple[str, int, Sample]]) -> tuple[int, int]:
    """Crop ``items`` (samples ``start`` .. ``start + len(items)``); write ``.npy`` then the committing ``.parquet``."""
    crops, rows = [], []
    for split, index, sample in items:
        row = _row(split, index, sample)
        try:
            crop, score, source = cropper.crop(sample)
        except _Failure as failure:
            row.update(crop=-1, score=math.nan, landmarks_from="", reason=str(failure))
        else:
            row.update(crop=len(crops), score=score, landmarks_from=source, reason="")
            crops.append(crop)
        rows.append(row)
    stem = directory / f"{start:09d}-{start + len(items):09d}"
    with atomic_write(stem.with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.stack(crops) if crops else np.zeros((0, *crop_shape(cropper.settings)), np.uint8))
    with atomic_write(stem.with_suffix(".parquet")) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    return len(crops), len(rows) - len(crops)


def crop_shape(settings: PrepareSettings) -> tuple[int, ...]:
    """Shape of one crop: (S, S) grey or (S, S, 3) RGB."""
    return (settings.size, settings.size) if settings.channels == "grey" else (settings.size, settings.size, 3)


_WORKER: dict[str, FaceCropper] = {}


def _init_worker(settings: PrepareSettings, template: dict[str, Any]) -> None:
    # One process per core: threads inside each (OpenCV's, torch's) would only oversubscribe.
    cv2.setNumThreads(1)
    _WORKER["cropper"] = FaceCropper(replace(settings, threads=1), template)


def _worker_shard(directory: Path, start: int, items: list[tuple[str, int, Sample]]) -> tuple[int, int]:
    return _write_shard(_WORKER["cropper"], directory, start, items)


def _done_ranges(shards: Path) -> list[tuple[int, int]]:
    """Committed shards (their ``.parquet`` exists); stray ``.npy`` files of killed shards are removed."""
    done = []
    for path in sorted(shards.glob("*.parquet")):
        match = _SHARD_NAME.match(path.stem)
        if match:
            done.append((int(match.group(1)), int(match.group(2))))
    committed = {f"{start:09d}-{stop:09d}" for start, stop in done}
    for stray in shards.glob("*.npy"):
        if stray.stem not in committed:
            stray.unlink()
    return done


def _todo(total: int, done: list[tuple[int, int]], shard_size: int, limit: int | None) -> list[tuple[int, int]]:
    """The uncovered sample ranges, cut into shards, at most ``limit`` samples in all."""
    covered = np.zeros(total, bool)
    for start, stop in done:
        covered[start:stop] = True
    todo, budget = [], total if limit is None else limit
    start = 0
    while start < total and budget > 0:
        if covered[start]:
            start += 1
            continue
        stop = start
        while stop < total and not covered[stop] and stop - start < min(shard_size, budget):
            stop += 1
        todo.append((start, stop))
        budget -= stop - start
        start = stop
    return todo


@dataclass(frozen=True)
class DatasetSnapshot:
    """A dataset as read now: the samples of its ``read_dataset`` splits in the order caches store them,
    and the fingerprint of every sample's split, position and pixel signature (any edit changes it)."""

    items: list[tuple[str, int, Sample]]
    fingerprint: str

    @classmethod
    def of(cls, splits: dict[str, Any]) -> "DatasetSnapshot":
        items = [(name, index, sample) for name, split in splits.items() for index, sample in enumerate(split.samples)]
        digest = hashlib.sha256()
        for split, index, sample in items:
            digest.update(f"{split}\t{index}\t{sample_signature(sample)}\n".encode())
        return cls(items, digest.hexdigest()[:20])


def _identity(dataset_format: str, root: str, options: dict[str, Any], settings: PrepareSettings,
              template: dict[str, Any], snapshot: DatasetSnapshot) -> dict[str, Any]:
    identity = {
        "version": PREPARE_VERSION, "format": dataset_format, "root": str(Path(root).resolve()), "options": options,
        "detector": settings.detector, "detector_options": settings.detector_options,
        "box_detector": settings.box_detector if settings.detector == "box" else None,
        "size": settings.size, "channels": settings.channels, "fallback": settings.fallback,
        "template": template, "samples": len(snapshot.items), "sample_fingerprint": snapshot.fingerprint,
    }
    return json.loads(json.dumps(identity))  # as it reads back from the manifest (tuples become lists)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def prepare_dataset(
    dataset_format: str,
    root: str | Path,
    cache_dir: str | Path,
    settings: PrepareSettings | None = None,
    options: dict[str, Any] | None = None,
    snapshot: DatasetSnapshot | None = None,
) -> PrepareSummary:
    """Detect and align every sample of ``read_dataset(dataset_format, root, **options)`` into ``cache_dir``.

    ``snapshot`` is that dataset when the caller has read it already (not read and fingerprinted twice).
    Re-running continues an unfinished cache; a finished one is left as it is. Raises ``PrepareError``
    when ``cache_dir`` holds a preparation with other settings or of other data.
    """
    from deepfever.faces.template import load_default_template

    settings = settings or PrepareSettings()
    options = dict(options or {})
    started = time.perf_counter()
    cache = Path(cache_dir)
    snapshot = snapshot or DatasetSnapshot.of(read_dataset(dataset_format, str(root), **options))
    items = snapshot.items
    template = load_default_template().scaled(settings.size).to_dict()
    identity = _identity(dataset_format, str(root), options, settings, template, snapshot)
    finished = _finished(cache, identity, len(items), started)  # a finished cache is only read: it may be read-only
    if finished:
        return finished
    cache.mkdir(parents=True, exist_ok=True)
    # Two runs that need the same cache (trainings started together) would each detect every face.
    with RunLock(cache / ".prepare.lock", f"the face cache {cache}", wait=True):
        finished = _finished(cache, identity, len(items), started)  # by the run waited for
        if finished:
            return finished
        _write_json(cache / "manifest.json", {**identity, "complete": False, "deepfever_version": __version__})
        shards = cache / "shards"
        shards.mkdir(parents=True, exist_ok=True)
        todo = _todo(len(items), _done_ranges(shards), settings.shard_size, settings.limit)
        logger.info("prepare %s: %d samples, %d to do now in %d shards", dataset_format, len(items), sum(b - a for a, b in todo), len(todo))
        if settings.workers == 1 or len(todo) <= 1:
            cropper = FaceCropper(settings, template)
            for number, (start, stop) in enumerate(todo, 1):
                made, failed = _write_shard(cropper, shards, start, items[start:stop])
                logger.info("shard %d/%d (samples %d-%d): %d crops, %d failures", number, len(todo), start, stop, made, failed)
        else:
            context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or OpenCV thread state
            with ProcessPoolExecutor(settings.workers, mp_context=context, initializer=_init_worker, initargs=(settings, template)) as pool:
                futures = [pool.submit(_worker_shard, shards, start, items[start:stop]) for start, stop in todo]
                for number, ((start, stop), future) in enumerate(zip(todo, futures), 1):
                    made, failed = future.result()
                    logger.info("shard %d/%d (samples %d-%d): %d crops, %d failures", number, len(todo), start, stop, made, failed)
        return _finish(cache, identity, len(items), started)


def _finished(cache: Path, identity: dict[str, Any], total: int, started: float) -> PrepareSummary | None:
    """The summary of a finished preparation of ``identity`` in ``cache``; None if there is none yet.

    Raises ``PrepareError`` when ``cache`` holds a preparation of other data or settings.
    """
    manifest_path = cache / "manifest.json"
    if not manifest_path.is_file():
        return None
    existing = json.loads(manifest_path.read_text())
    differing = sorted(key for key in identity if existing.get(key) != identity[key])
    if differing:
        raise PrepareError(
            f"prepare_dataset: {cache} holds another preparation (different {', '.join(differing)}); "
            "choose a new cache directory or delete this one"
        )
    if not existing.get("complete"):
        return None
    counts = existing["counts"]
    logger.info("%s is already complete: %d crops, %d failures", cache, counts["prepared"], counts["failed"])
    return PrepareSummary(total, counts["prepared"], counts["failed"], 0, time.perf_counter() - started)


def _finish(cache: Path, identity: dict[str, Any], total: int, started: float) -> PrepareSummary:
    """Write failures.csv and the manifest counts; join the shards once every sample is covered."""
    shards = cache / "shards"
    done = sorted(_done_ranges(shards))
    frames = [pd.read_parquet(shards / f"{start:09d}-{stop:09d}.parquet") for start, stop in done]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "index", "path", "reason"])
    failures = table[table["reason"] != ""]
    write_failures(failures.to_dict("records"), cache / "failures.csv", ("split", "index", "path", "reason"))
    covered = sum(stop - start for start, stop in done)
    summary = PrepareSummary(total, int((table["reason"] == "").sum()), len(failures), total - covered, time.perf_counter() - started)
    if summary.complete:
        _join(cache, done, table, crop_shape(PrepareSettings(size=identity["size"], channels=identity.get("channels", "grey"))))
    counts = {**summary.as_dict(), "per_split": {str(k): int(v) for k, v in table[table["reason"] == ""]["split"].value_counts().items()}}
    _write_json(cache / "manifest.json", {**identity, "complete": summary.complete, "counts": counts, "deepfever_version": __version__})
    logger.info("prepare: %s", json.dumps(summary.as_dict()))
    return summary


def _join(cache: Path, done: list[tuple[int, int]], table: pd.DataFrame, shape: tuple[int, ...]) -> None:
    ok = table[table["reason"] == ""].drop(columns=["crop", "reason"]).reset_index(drop=True)
    with atomic_write(cache / "crops.npy") as tmp:
        crops = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(ok), *shape))
        position = 0
        for start, stop in done:
            part = np.load(cache / "shards" / f"{start:09d}-{stop:09d}.npy")
            crops[position:position + len(part)] = part
            position += len(part)
        crops.flush()
        del crops
    with atomic_write(cache / "index.parquet") as tmp:
        ok.to_parquet(tmp, index=False)
    shutil.rmtree(cache / "shards")


def load_prepared(cache_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Memory-mapped crops (N, S, S) uint8 and their index table; ``index.attrs["manifest"]`` holds the manifest.

    Example:
        >>> crops, index = load_prepared("cache/affectnet48")  # doctest: +SKIP
        >>> valid = crops[index["split"].to_numpy() == "valid"]  # doctest: +SKIP
    """
    cache = Path(cache_dir)
    manifest_path = cache / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"load_prepared: {cache} has no manifest.json; create it with `deepfever data prepare`")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("complete"):
        counts = manifest.get("counts", {})
        raise PrepareError(
            f"load_prepared: {cache} is unfinished ({counts.get('pending', 'some')} of {manifest['samples']} samples pending); "
            "run the same `deepfever data prepare` command again to finish it"
        )
    crops = np.load(cache / "crops.npy", mmap_mode="r")
    index = pd.read_parquet(cache / "index.parquet")
    if len(index) != len(crops):
        raise PrepareError(f"load_prepared: {cache} has {len(crops)} crops but {len(index)} index rows; prepare it again")
    index.attrs["manifest"] = manifest
    return crops, index
