"""Decode a dataset's images once into one uint8 array that training and evaluation stream from.

This is the path for datasets that are already face crops framed like the template (FER+, CK+48):
each image goes through the engine's one ready-crop path (``FacePath.ready_crop``, the ``none``
detector's warp, then ``to_grey``), so these crops equal what ``Extractor(detector="none")`` feeds
the model. Datasets of whole photos, or crops that need per-face alignment, go through
``deepfever.data.prepare`` (detector + alignment, the same face path).
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from deepfever.data.formats.base import Sample
from deepfever.io.cache import cache_dir
from deepfever.io.images import load_image

if TYPE_CHECKING:
    from deepfever.pipeline import FacePath

logger = logging.getLogger(__name__)


def sample_signature(sample: Sample) -> str:
    """What identifies a sample's pixels: path, size and mtime of its file, or a hash of inline pixels.

    Two datasets share a cache entry only when this matches for every sample, so an edited file or
    another path-less split (FER2013's CSV) of equal length never reuses a stale array.
    """
    if sample.pixels is not None:
        return "pixels:" + hashlib.sha256(np.ascontiguousarray(sample.pixels).tobytes()).hexdigest()[:16]
    try:
        stat = os.stat(sample.path)
    except OSError:
        return f"{sample.path}|missing"
    return f"{sample.path}|{stat.st_size}|{stat.st_mtime_ns}"


READY_CROP_VERSION = 2
"""Part of the cache key: 2 since ready crops are warped like detected faces (was a plain bilinear resize),
so arrays cached by the old path are never mixed with new ones."""


def ready_crop_path(size: int, in_chans: int) -> "FacePath":
    """The face path of ready crops of ``size`` pixels, grey (``in_chans`` 1) or RGB (3)."""
    from deepfever import defaults
    from deepfever.faces.template import load_default_template
    from deepfever.pipeline import FacePath
    from deepfever.pipeline.stage import CHANNELS, FaceStage

    stage = FaceStage("none", defaults.LANDMARKS, load_default_template().scaled(size), CHANNELS[in_chans])
    return FacePath(stage)


def _crop(sample: Sample, path: "FacePath") -> np.ndarray:
    image = load_image(sample.pixels if sample.pixels is not None else sample.path)
    return path.model_crops(path.ready_crop(image))


def load_crop_array(samples: list[Sample], size: int, in_chans: int = 1, use_cache: bool = True) -> np.ndarray:
    """Return (N, size, size) grey or (N, size, size, 3) RGB uint8 crops, cached on disk.

    The cache key hashes every sample's signature (``sample_signature``), the size and the channels.
    """
    if in_chans not in (1, 3):
        raise ValueError(f"load_crop_array: in_chans must be 1 (grey) or 3 (RGB), got {in_chans}")
    header = f"{size}\n{in_chans}\nready-crop {READY_CROP_VERSION}\n".encode()
    key = hashlib.sha256(header + "\n".join(sample_signature(s) for s in samples).encode()).hexdigest()[:20]
    cached = cache_dir() / "arrays" / f"{'grey' if in_chans == 1 else 'rgb'}{size}_{key}.npy"
    if use_cache and cached.is_file():
        return np.load(cached)
    path = ready_crop_path(size, in_chans)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = np.stack(list(pool.map(lambda sample: _crop(sample, path), samples)))
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, images)
        os.replace(tmp, cached)
        logger.info("cached %d images at %s", len(images), cached)
    return images
