"""Download, check and crop the faces of Google's FEC dataset, which is published as URLs only.

Each photo is downloaded once, however many faces and triplets use it; every face is cropped by its
normalised box and saved under ``OUT/images/<fec_face_stem(face)>.jpg`` (the name the ``fec`` format
looks for). Runs resume: faces already saved are not fetched again, and files are written atomically
so an interrupted run never leaves half an image. ``OUT/fetch_failures.csv`` lists what failed and
why; ``OUT/fetch_summary.json`` counts outcomes.
"""
from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from deepfever._version import __version__
from deepfever.data.formats.fec import IMAGE_EXTENSIONS, IMAGE_FOLDER, FecFace, fec_face_stem, read_fec_csv, unique_faces
from deepfever.errors import DeepFeverError, ImageReadError
from deepfever.io.atomic import atomic_write
from deepfever.io.failures import write_failures
from deepfever.io.images import CorruptImageError, load_image

logger = logging.getLogger(__name__)

REPORT_NAME = "fetch_failures.csv"
FAILURE_COLUMNS = ("url", "file", "reason", "detail")
SUMMARY_NAME = "fetch_summary.json"
USER_AGENT = f"deepfever-fetch-fec/{__version__}"
CHUNK_BYTES = 1 << 16
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
SAVE_FORMATS = {".jpg": ("JPEG", {"quality": 95}), ".png": ("PNG", {})}


@dataclass(frozen=True)
class FetchSettings:
    """How to fetch. ``timeout`` bounds the connection and each read; ``total_timeout`` one whole download.

    Retries (``retries`` more tries, waiting ``backoff`` seconds, then twice that, ...) happen on
    timeouts, connection errors and HTTP 5xx/429, never on other 4xx such as 404.
    """

    workers: int = 16
    timeout: float = 10.0
    total_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_bytes: int = 20 << 20
    extension: str = ".jpg"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.extension not in SAVE_FORMATS:
            raise ValueError(f"FetchSettings: extension must be one of {sorted(SAVE_FORMATS)}, got {self.extension!r}")
        if self.workers < 1 or self.retries < 0 or self.timeout <= 0 or self.max_bytes <= 0:
            raise ValueError(
                "FetchSettings: expected workers >= 1, retries >= 0, timeout > 0 and max_bytes > 0, got "
                f"workers={self.workers}, retries={self.retries}, timeout={self.timeout}, max_bytes={self.max_bytes}"
            )


@dataclass
class FetchSummary:
    """Outcome counts in faces; ``failed`` maps a reason category to the faces it cost."""

    triplets: int = 0
    csv_skipped: int = 0
    faces: int = 0
    urls_attempted: int = 0
    ok: int = 0
    skipped_existing: int = 0
    failed: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "triplets": self.triplets,
            "csv_rows_skipped": self.csv_skipped,
            "faces": self.faces,
            "urls_attempted": self.urls_attempted,
            "ok": self.ok,
            "skipped_existing": self.skipped_existing,
            "failed": dict(sorted(self.failed.items())),
        }


class FetchFailure(DeepFeverError, RuntimeError):
    """One URL or face could not be fetched; ``reason`` is a short category used for counting."""

    def __init__(self, reason: str, detail: str = "", retryable: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


def parse_size(text: str) -> int:
    """``"20MB"`` -> 20971520; accepts K, M, G with optional B or iB (all powers of 1024) or plain bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*", text.upper())
    if match is None:
        raise ValueError(f"parse_size: expected a size such as 500KB, 20MB or 1048576, got {text!r}")
    return int(float(match[1]) * SIZE_UNITS[match[2]])


def _download_once(url: str, settings: FetchSettings) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > settings.max_bytes:
                raise FetchFailure("too large", f"Content-Length {length} > {settings.max_bytes} bytes")
            chunks, size = [], 0
            while chunk := response.read(CHUNK_BYTES):
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchFailure("too large", f"more than {settings.max_bytes} bytes")
                if time.monotonic() - started > settings.total_timeout:
                    raise FetchFailure("timeout", f"download took over {settings.total_timeout} s", retryable=True)
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as error:
        retryable = error.code >= 500 or error.code == 429
        raise FetchFailure(f"http {error.code}", str(error.reason), retryable=retryable) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise FetchFailure("timeout", str(error.reason), retryable=True) from error
        raise FetchFailure("connection error", str(error.reason), retryable=True) from error
    except TimeoutError as error:
        raise FetchFailure("timeout", str(error), retryable=True) from error
    except (OSError, http.client.HTTPException) as error:
        raise FetchFailure("connection error", str(error), retryable=True) from error


def download(url: str, settings: FetchSettings) -> bytes:
    """Fetch ``url`` within the size limit, retrying transient failures with exponential backoff."""
    if not url.lower().startswith(("http://", "https://")):
        raise FetchFailure("unsupported url", f"only http(s) URLs are fetched, got {url[:40]!r}")
    attempt = 0
    while True:
        try:
            return _download_once(url, settings)
        except FetchFailure as failure:
            if not failure.retryable or attempt >= settings.retries:
                raise
            logger.debug("%s: %s; retry %d of %d", url, failure, attempt + 1, settings.retries)
            time.sleep(settings.backoff * 2**attempt)
            attempt += 1


def decode_image(data: bytes) -> np.ndarray:
    """Decode downloaded bytes to RGB with the package's one decoder; its refusals become fetch failures."""
    try:
        return load_image(data)
    except CorruptImageError as error:
        raise FetchFailure("corrupt image", str(error)) from error
    except ImageReadError as error:
        raise FetchFailure("not an image", str(error)) from error


def crop_face(image: np.ndarray, box_norm: tuple[float, float, float, float]) -> np.ndarray:
    """Cut the normalised box (x1, y1, x2, y2) out of an (H, W, 3) image, rounding outwards."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box_norm
    left, top = max(0, math.floor(x1 * width)), max(0, math.floor(y1 * height))
    right, bottom = min(width, math.ceil(x2 * width)), min(height, math.ceil(y2 * height))
    if right <= left or bottom <= top:
        raise FetchFailure("empty crop", f"box {box_norm} is empty on a {width}x{height} image")
    return image[top:bottom, left:right]


def _save(crop: np.ndarray, path: Path) -> None:
    image_format, options = SAVE_FORMATS[path.suffix]
    with atomic_write(path) as tmp:
        Image.fromarray(crop).save(tmp, format=image_format, **options)


def _fetch_url(url: str, faces: list[FecFace], images: Path, settings: FetchSettings) -> list[tuple[FecFace, FetchFailure | None]]:
    """Download one photo and save each of its faces; returns every face with its failure or None."""
    try:
        image = decode_image(download(url, settings))
    except FetchFailure as failure:
        return [(face, failure) for face in faces]
    outcomes: list[tuple[FecFace, FetchFailure | None]] = []
    for face in faces:
        try:
            _save(crop_face(image, face.box_norm), images / (fec_face_stem(face) + settings.extension))
            outcomes.append((face, None))
        except FetchFailure as failure:
            outcomes.append((face, failure))
    return outcomes


def fetch_fec(csv_path: str | Path, out_dir: str | Path, settings: FetchSettings = FetchSettings()) -> FetchSummary:
    """Fetch every face of an FEC CSV into ``out_dir/images`` and write the failure report and summary.

    Example:
        >>> summary = fetch_fec("faceexp-comparison-data-test-public.csv", "data/FEC", FetchSettings(limit=100))  # doctest: +SKIP
        >>> summary.as_dict()["failed"]
        {'http 404': 31}
    """
    triplets, csv_skipped = read_fec_csv(csv_path)
    if settings.limit is not None:
        triplets = triplets[: settings.limit]
    out = Path(out_dir)
    images = out / IMAGE_FOLDER
    images.mkdir(parents=True, exist_ok=True)
    saved = {name for name in os.listdir(images) if not name.startswith(".")}
    summary = FetchSummary(triplets=len(triplets), csv_skipped=sum(csv_skipped.values()))
    pending: dict[str, list[FecFace]] = defaultdict(list)
    for face in unique_faces(triplets):
        summary.faces += 1
        stem = fec_face_stem(face)
        if any(stem + extension in saved for extension in IMAGE_EXTENSIONS):
            summary.skipped_existing += 1
        else:
            pending[face.url].append(face)
    logger.info("fetch_fec: %d faces, %d already saved, %d photos to download", summary.faces, summary.skipped_existing, len(pending))
    failures: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        jobs = [pool.submit(_fetch_url, url, faces, images, settings) for url, faces in pending.items()]
        for done, job in enumerate(as_completed(jobs), start=1):
            summary.urls_attempted += 1
            for face, failure in job.result():
                if failure is None:
                    summary.ok += 1
                else:
                    summary.failed[failure.reason] += 1
                    failures.append({"url": face.url, "file": fec_face_stem(face) + settings.extension,
                                     "reason": failure.reason, "detail": failure.detail})
            if done % 1000 == 0:
                logger.info("fetch_fec: %d of %d photos done, %d faces saved", done, len(jobs), summary.ok)
    write_failures(sorted(failures, key=lambda row: tuple(row.values())), out / REPORT_NAME, FAILURE_COLUMNS)
    with atomic_write(out / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    return summary
