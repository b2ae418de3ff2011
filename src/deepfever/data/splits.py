"""One dataset split as crops + targets, through the face path a run asks for.

The single place where training, evaluation and benchmarks turn a dataset split into arrays, so
that all of them see faces the same way: resized crops (``detector: none``) or detected and aligned
through a ``data prepare`` cache (``mtcnn``, ``yunet``, ``box``), like ``Extractor`` does.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepfever.data.arrays import load_crop_array
from deepfever.io.cache import cache_dir
from deepfever.data.formats import NO_LABEL, Sample, read_dataset
from deepfever.data.prepare import SOFT_COLUMNS, DatasetSnapshot, PrepareError, PrepareSettings, load_prepared, prepare_dataset

logger = logging.getLogger(__name__)


@dataclass
class SplitArrays:
    """One dataset split as crops and targets, in the split's sample order (failed crops left out)."""

    images: np.ndarray
    soft: np.ndarray
    valence_arousal: np.ndarray
    labels: np.ndarray
    face_path: dict

    def take(self, rows: np.ndarray) -> "SplitArrays":
        return SplitArrays(self.images[rows], self.soft[rows], self.valence_arousal[rows], self.labels[rows], self.face_path)


def sample_targets(samples: Sequence[Sample], classes: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft targets (NaN rows where unlabelled), valence/arousal and hard labels of ``samples``."""
    soft = np.full((len(samples), classes), np.nan, dtype=np.float32)
    for row, sample in enumerate(samples):
        if sample.soft_label is not None:
            soft[row] = sample.soft_label
        elif sample.label != NO_LABEL:
            soft[row] = np.eye(classes, dtype=np.float32)[sample.label]
    valence_arousal = np.array([[sample.valence, sample.arousal] for sample in samples], dtype=np.float32).reshape(-1, 2)
    labels = np.array([sample.label for sample in samples], dtype=np.int64)
    return soft, valence_arousal, labels


def prepared_cache_path(dataset_format: str, root: str, options: dict[str, Any], settings: PrepareSettings,
                        fingerprint: str) -> Path:
    """Where the ``data prepare`` cache of this dataset and face path lives under ``$DEEPFEVER_CACHE``.

    The name hashes everything that changes the crops (format, resolved root, reader options,
    detector, fallback, size, channels) and ``fingerprint`` (``DatasetSnapshot.fingerprint`` of the
    dataset as it is now), so another face path never reuses a cache and an edited or re-copied dataset gets
    a fresh one instead of a refusal.
    """
    identity = json.dumps({"format": dataset_format, "root": str(Path(root).resolve()), "options": options,
                           "detector": settings.detector, "fallback": settings.fallback, "size": settings.size,
                           "channels": settings.channels, "detector_options": settings.detector_options,
                           "samples": fingerprint}, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return cache_dir() / "prepared" / f"{dataset_format}_{settings.detector}{settings.size}{settings.channels}_{digest}"


def _report_stale(cache: Path, root: str, options: dict[str, Any], settings: PrepareSettings) -> None:
    """Name caches of earlier versions of this dataset and face path beside ``cache``: they are only disk now."""
    wanted = {"root": str(Path(root).resolve()), "options": json.loads(json.dumps(options)), "fallback": settings.fallback,
              "detector_options": settings.detector_options}
    for other in sorted(cache.parent.glob(cache.name.rsplit("_", 1)[0] + "_*")):
        manifest_path = other / "manifest.json"
        if other == cache or not manifest_path.is_file():
            continue
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(key) == value for key, value in wanted.items()):
            logger.info("%s was prepared from an earlier version of this dataset (its files changed since); "
                        "delete it if no run still uses it", other)


def load_split(dataset_format: str, root: str, options: dict[str, Any], split: str, detector: str, fallback: str,
               size: int, in_chans: int, limit: int = 0) -> SplitArrays:
    """Crops of one split, the first ``limit`` samples (0: all), through a face path.

    ``detector`` ``none`` resizes the images (face crops framed like the template); any other of
    ``DETECTION_MODES`` goes through a ``data prepare`` cache, built here on first use (and resumed
    when interrupted), so training and evaluation see faces as ``Extractor`` does. ``fallback``
    ``none`` keeps faces the detector misses as resized crops.
    """
    channels = "grey" if in_chans == 1 else "rgb"
    splits = read_dataset(dataset_format, root, **options)
    if detector == "none":
        if split not in splits:
            raise ValueError(f"load_split: {dataset_format} at {root} has no split {split!r}; found {sorted(splits)}")
        samples = splits[split].samples[: limit or None]
        soft, valence_arousal, labels = sample_targets(samples)
        return SplitArrays(load_crop_array(list(samples), size, in_chans), soft, valence_arousal, labels,
                           {"detector": "none", "size": size, "channels": channels})
    settings = PrepareSettings(detector=detector, fallback=fallback, size=size, channels=channels)
    snapshot = DatasetSnapshot.of(splits)
    cache = prepared_cache_path(dataset_format, root, options, settings, snapshot.fingerprint)
    if not cache.exists():
        _report_stale(cache, root, options, settings)
    summary = prepare_dataset(dataset_format, root, cache, settings, options, snapshot)
    if not summary.complete:
        raise PrepareError(f"load_split: the prepared cache {cache} is unfinished; run training again to finish it")
    crops, index = load_prepared(cache)
    chosen = np.flatnonzero((index["split"] == split).to_numpy())
    if not len(chosen):
        raise ValueError(f"load_split: {dataset_format} at {root} has no crops in split {split!r} ({cache})")
    if limit:
        chosen = chosen[index["index"].to_numpy()[chosen] < limit]
    rows = index.iloc[chosen]
    soft = rows[list(SOFT_COLUMNS)].to_numpy(np.float32).copy()
    labels = rows["label"].to_numpy(np.int64)
    hard = np.isnan(soft[:, 0]) & (labels != NO_LABEL)
    soft[hard] = np.eye(soft.shape[1], dtype=np.float32)[labels[hard]]
    manifest = index.attrs["manifest"]
    face_path = {"detector": detector, "fallback": fallback, "size": size, "channels": channels, "cache": cache.name,
                 "template": manifest["template"], "crops": int(len(chosen)),
                 "fallback_crops": int((rows["landmarks_from"] == "fallback").sum())}
    return SplitArrays(np.ascontiguousarray(crops[chosen]), soft, rows[["valence", "arousal"]].to_numpy(np.float32),
                       labels, face_path)
