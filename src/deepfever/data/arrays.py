"""Decode a dataset's images once into one uint8 array that training streams from."""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from deepfever.data.formats.base import Sample

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$DEEPFEVER_CACHE`` or ``~/.cache/deepfever``: weights and prepared arrays live here."""
    return Path(os.environ.get("DEEPFEVER_CACHE", Path.home() / ".cache" / "deepfever"))


def _grey(sample: Sample, size: int) -> np.ndarray:
    if sample.pixels is not None:
        image = Image.fromarray(sample.pixels).convert("L")
    else:
        with Image.open(sample.path) as opened:
            image = opened.convert("L")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_grey_array(samples: list[Sample], size: int, use_cache: bool = True) -> np.ndarray:
    """Return (N, size, size) uint8 grey images, cached on disk by the list of paths.

    The cache key hashes every path and the size, so a changed dataset never reuses a stale array.
    """
    key = hashlib.sha256(f"{size}\n".encode() + "\n".join(str(s.path) for s in samples).encode()).hexdigest()[:20]
    cached = cache_dir() / "arrays" / f"grey{size}_{key}.npy"
    if use_cache and cached.is_file():
        return np.load(cached)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = np.stack(list(pool.map(lambda sample: _grey(sample, size), samples)))
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, images)
        os.replace(tmp, cached)
        logger.info("cached %d images at %s", len(images), cached)
    return images
