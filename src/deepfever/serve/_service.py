"""The server's pipeline: one loaded ``Extractor`` behind a thread pool and a micro-batching queue.

Decoding, detection and alignment run in ``workers`` threads (detection one image at a time: the
detectors are not thread-safe and already use every core); the aligned crops of all requests go to
one ``MicroBatcher`` that calls ``Extractor.predict``. Nothing here knows about HTTP: the web layer
(``deepfever.serve.app``) awaits these coroutines and turns ``ClientInputError`` into status codes.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from deepfever import defaults
from deepfever.pipeline.rows import outputs_at
from deepfever.serve._batching import MicroBatcher
from deepfever.serve._uploads import ClientInputError, decode_upload

logger = logging.getLogger(__name__)

REFERENCE_SAMPLE = 5_000
"""Index faces drawn to give distances a percentile when no ``reference`` folder is named."""
THUMBNAIL_SIDE = 128


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``deepfever serve`` can set; limits are enforced before any work is done.

    Args:
        model: packaged model name or ``.safetensors`` path.
        detector: ``mtcnn``, ``yunet`` or ``none``; ``detector_options`` go to its constructor.
        prior: class prior of the probabilities, as ``Extractor(prior=...)`` (None: the model's recorded strength).
        index: folder from ``deepfever index build``, for ``/v1/search``.
        reference: folder of face images or FER+ root whose random pairs give ``compare`` a percentile
            (default: pairs of faces from the index, when there is one).
        max_upload_mb: largest request body.
        max_pixels: largest image, in pixels, checked from the header before decoding.
        max_files: most images in one ``/v1/extract`` request.
        workers: threads that decode, detect and align (one process, one model).
        max_concurrency: requests worked on at once, counted once their body has arrived; more are
            answered 503 with ``Retry-After``. Bodies held at once are capped at this many full ones.
        max_wait_ms: how long the batcher waits for other requests' faces before a forward pass.
        request_timeout_s: a request still unanswered after this is abandoned with 503.
        body_timeout_s: a request body not received within this (from its headers) is refused with 408.
        header_timeout_s: a connection whose request line and headers take longer than this is closed.
        allowed_hosts: names accepted in the ``Host`` header besides the bound address and loopback
            (``localhost``, ``127.0.0.1``, ``[::1]``); anything else is a 400 (DNS rebinding).
        absolute_paths: search results name indexed files by absolute path instead of relative to the
            index root (the deepest folder holding them all).
    """

    model: str = defaults.MODEL
    detector: str = defaults.DETECTOR
    detector_options: dict[str, Any] | None = None
    device: str = defaults.DEVICE
    prior: str | float | None = defaults.OUTPUT_PRIOR
    index: str | None = None
    reference: str | None = None
    max_upload_mb: float = 20.0
    max_pixels: int = defaults.UPLOAD_MAX_PIXELS
    max_files: int = 16
    workers: int = 2
    max_concurrency: int = 32
    max_wait_ms: float = 5.0
    batch_size: int = defaults.BATCH_SIZE
    request_timeout_s: float = 30.0
    body_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    absolute_paths: bool = False

    def __post_init__(self) -> None:
        positive = {"max_upload_mb": self.max_upload_mb, "max_pixels": self.max_pixels, "max_files": self.max_files,
                    "workers": self.workers, "max_concurrency": self.max_concurrency, "batch_size": self.batch_size,
                    "request_timeout_s": self.request_timeout_s, "body_timeout_s": self.body_timeout_s,
                    "header_timeout_s": self.header_timeout_s}
        wrong = [f"{name}={value}" for name, value in positive.items() if value <= 0]
        if wrong or self.max_wait_ms < 0:
            raise ValueError(f"ServeSettings: these must be positive (max_wait_ms non-negative), got {', '.join(wrong) or f'max_wait_ms={self.max_wait_ms}'}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def body_budget_bytes(self) -> int:
        """Bytes of request bodies held at once (being read or worked on): as many full bodies as work slots."""
        return self.max_concurrency * self.max_body_bytes


class RequestCancelled(Exception):
    """The client went away or the request ran out of time; the remaining work is skipped."""


@dataclass
class Counters:
    """What the server has done since it started (``/v1/health`` reports them)."""

    requests: int = 0
    images_detected: int = 0
    skipped_cancelled: int = 0
    disconnected: int = 0
    timed_out: int = 0
    slow_bodies: int = 0
    refused_busy: int = 0
    refused_input: int = 0


@dataclass
class Analysis:
    """One uploaded image: its size and the extraction rows of its faces (all, or the one asked for)."""

    name: str
    width: int
    height: int
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Prepared:
    width: int
    height: int
    faces: list
    crops: np.ndarray


class ExpressionService:
    """Extraction, comparison and search for uploaded images, sharing one model among all requests.

    The constructor stores settings; ``load()`` loads the model, detector, index and reference (so a
    caller can report a bad file before serving); ``start()`` loads what is missing and starts the
    threads, ``close()`` stops them (the app's lifespan calls both). Pass a ready ``extractor`` to share
    one that is already loaded.

    Example:
        >>> service = ExpressionService(ServeSettings(detector="yunet", detector_options={"model_path": "yunet.onnx"}))  # doctest: +SKIP
        >>> service.start(); analysis = asyncio.run(service.analyse(open("a.jpg", "rb").read(), "a.jpg"))  # doctest: +SKIP
    """

    def __init__(self, settings: ServeSettings, extractor=None) -> None:
        self.settings = settings
        self.extractor = extractor

    # -- life cycle ------------------------------------------------------------------------
    def load(self) -> "ExpressionService":
        """Load the model, detector, index and reference; a second call does nothing."""
        from deepfever.api import Extractor

        if hasattr(self, "extractor_"):
            return self
        settings = self.settings
        extractor = self.extractor or Extractor(model=settings.model, device=settings.device, detector=settings.detector,
                                                detector_options=settings.detector_options, batch_size=settings.batch_size,
                                                prior=settings.prior)
        if not hasattr(extractor, "fingerprint_"):
            extractor.load()
        self.detector_ = extractor.detector_for(settings.detector)
        self.extractor_ = extractor
        self.index_ = self._load_index()
        self.index_root_ = self._index_root()
        self.reference_ = self._load_reference()
        return self

    def start(self) -> "ExpressionService":
        """``load()``, then start the thread pool and the batcher with fresh counters."""
        settings = self.load().settings
        self.counters_ = Counters()
        self.started_ = time.monotonic()
        self._detect_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="deepfever-prepare")
        self.batcher_ = MicroBatcher(self.extractor_.predict, settings.max_wait_ms / 1000.0, settings.batch_size).start()
        self._thumbnail = lru_cache(maxsize=512)(self._render_thumbnail)
        return self

    def close(self) -> None:
        self.batcher_.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _load_index(self):
        if not self.settings.index:
            return None
        from deepfever.applications.search import load_index

        index = load_index(self.settings.index)
        index.check_fingerprint(self.extractor_.fingerprint_, self.extractor_.stage_.detector)
        return index

    def _index_root(self) -> str | None:
        """The deepest folder holding every indexed file: search results name files relative to it."""
        if self.index_ is None or self.index_.meta.empty:
            return None
        folders = {os.path.dirname(os.path.abspath(path)) for path in self.index_.meta["path"].astype(str).unique()}
        return os.path.commonpath(sorted(folders))

    def _load_reference(self):
        from deepfever.applications.compare import load_reference, reference_from_vectors

        if self.settings.reference:
            return load_reference(self.extractor_, self.settings.reference)
        if self.index_ is None or len(self.index_) < 2:
            return None
        rows = np.random.default_rng(0).choice(len(self.index_), min(len(self.index_), REFERENCE_SAMPLE), replace=False)
        vectors = np.stack([self.index_.vector(int(row)) for row in np.sort(rows)])
        return reference_from_vectors(vectors, f"{len(vectors)} faces of the index {self.settings.index}")

    def health(self) -> dict[str, Any]:
        extractor = self.extractor_
        return {
            "status": "ok", "fingerprint": dict(extractor.fingerprint_), "model": str(self.settings.model),
            "detector": self.settings.detector, "classes": list(extractor.class_names_),
            "uptime_s": round(time.monotonic() - self.started_, 3),
            "index": None if self.index_ is None else {"path": self.settings.index, "faces": len(self.index_)},
            "reference": None if self.reference_ is None else self.reference_.description,
            "limits": {"max_upload_mb": self.settings.max_upload_mb, "max_pixels": self.settings.max_pixels,
                       "max_files": self.settings.max_files, "max_concurrency": self.settings.max_concurrency,
                       "request_timeout_s": self.settings.request_timeout_s, "body_timeout_s": self.settings.body_timeout_s,
                       "header_timeout_s": self.settings.header_timeout_s},
            "counters": vars(self.counters_).copy(), "batching": self.batcher_.stats.as_dict(),
        }

    # -- the pipeline ----------------------------------------------------------------------
    async def analyse(self, data: bytes, name: str, cancelled: threading.Event | None = None,
                      face: int | None = None) -> Analysis:
        """Rows of every face of one uploaded image, or of face ``face`` only (then a missing face is a 422)."""
        cancelled = cancelled or threading.Event()
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self._pool, self._prepare, data, name, cancelled)
        analysis = Analysis(name, prepared.width, prepared.height)
        chosen = range(len(prepared.faces)) if face is None else [self._check_face(name, face, len(prepared.faces))]
        if not prepared.faces:
            return analysis
        crops = prepared.crops[list(chosen)]
        result = await asyncio.wrap_future(self.batcher_.submit(crops, cancelled))
        for position, index in enumerate(chosen):
            analysis.rows.append(self._row(name, index, prepared.faces[index], outputs_at(result, position)))
        return analysis

    @staticmethod
    def _check_face(name: str, face: int, found: int) -> int:
        if found == 0:
            raise ClientInputError(422, f"{name}: no face detected; for images that are already face crops use detector 'none'")
        if not 0 <= face < found:
            raise ClientInputError(422, f"{name}: face {face} was asked for but the image has {found} face(s) (0..{found - 1})")
        return face

    def _prepare(self, data: bytes, name: str, cancelled: threading.Event) -> _Prepared:
        """Decode, detect and align (the engine's face path) in a pool thread; skipped when the client has gone."""
        if cancelled.is_set():
            self.counters_.skipped_cancelled += 1
            raise RequestCancelled(name)
        image = decode_upload(data, name, self.settings.max_pixels)
        with self._detect_lock:
            if cancelled.is_set():
                self.counters_.skipped_cancelled += 1
                raise RequestCancelled(name)
            faces, crops = self.extractor_.engine_.locate(image, self.detector_)
            self.counters_.images_detected += 1
        return _Prepared(image.shape[1], image.shape[0], faces, crops)

    def _row(self, name: str, index: int, face, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """The row ``deepfever extract`` writes for this face (the engine's row builder), as JSON-ready values."""
        row = self.extractor_.engine_.row(name, index, face, outputs)
        row["landmarks"] = row["landmarks"].tolist()
        row["embedding"] = row["embedding"].tolist()
        return row

    # -- applications ----------------------------------------------------------------------
    def compare(self, first: Analysis, second: Analysis) -> dict[str, Any]:
        """``deepfever compare``'s result for the chosen face of each analysis."""
        from deepfever.applications.compare import compare_vectors

        a, b = first.rows[0], second.rows[0]
        result = {"a": a["path"], "face_a": a["face"], "emotion_a": a["emotion"],
                  "b": b["path"], "face_b": b["face"], "emotion_b": b["emotion"]}
        result.update(compare_vectors(np.asarray(a["embedding"]), np.asarray(b["embedding"]), self.reference_))
        result["model_id"] = self.extractor_.fingerprint_["model_id"]
        return result

    def odd_one_out(self, analyses: list[Analysis], temperature: float) -> dict[str, Any]:
        """``deepfever odd-one-out``'s result for the chosen face of each of three analyses."""
        from deepfever.applications.compare import odd_one_out_vectors

        rows = [analysis.rows[0] for analysis in analyses]
        result = odd_one_out_vectors(*(np.asarray(row["embedding"]) for row in rows), temperature=temperature)
        result.update(inputs=[row["path"] for row in rows], emotions=[row["emotion"] for row in rows],
                      model_id=self.extractor_.fingerprint_["model_id"])
        result["odd_path"] = result["inputs"][result["odd_one_out"]]
        return result

    def search(self, query: Analysis, k: int) -> list[dict[str, Any]]:
        """The ``k`` indexed faces nearest the query's face, with a thumbnail URL where one can be cut.

        Paths are relative to the index root unless ``absolute_paths``: a page on another origin that
        got an answer anyway would not learn the server's folders.
        """
        from deepfever.applications.search import result_columns

        hits = self.require_index().search(np.asarray(query.rows[0]["embedding"], np.float32), k=k)
        results = []
        for record in hits[result_columns(hits)].to_dict(orient="records"):
            clean = {key: _plain(value) for key, value in record.items()}
            clean["thumbnail"] = f"/v1/index/thumbnails/{clean['row']}" if self._has_thumbnail(clean["row"]) else None
            absolute = os.path.abspath(str(clean["path"]))
            clean["path"] = absolute if self.settings.absolute_paths else os.path.relpath(absolute, self.index_root_)
            results.append(clean)
        return results

    def require_index(self):
        """The loaded ``FaceIndex``; a 409 that says how to load one when the server was started without."""
        if self.index_ is None:
            raise ClientInputError(409, "search: this server has no index; start it with 'deepfever serve --index INDEX' "
                                        "(build one with 'deepfever index build')")
        return self.index_

    def _has_thumbnail(self, row: int) -> bool:
        from deepfever.faces.thumbnails import has_image_face

        return has_image_face(self.index_.meta.iloc[row])

    async def thumbnail(self, row: int) -> bytes:
        """JPEG of indexed face ``row``, cut from the image file the index names (never a path from a request)."""
        if self.index_ is None or not 0 <= row < len(self.index_) or not self._has_thumbnail(row):
            raise ClientInputError(404, f"thumbnail: no image face at index row {row}")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._thumbnail, row)

    def _render_thumbnail(self, row: int) -> bytes:
        from PIL import Image

        from deepfever.errors import ImageReadError
        from deepfever.faces.thumbnails import face_thumbnail
        from deepfever.io.images import load_image

        record = self.index_.meta.iloc[row]
        try:
            image = load_image(record["path"])
        except ImageReadError as error:
            raise ClientInputError(404, f"thumbnail: the indexed image of row {row} cannot be read now ({error})") from error
        crop = face_thumbnail(image, [float(record[f"box_{name}"]) for name in ("x1", "y1", "x2", "y2")], THUMBNAIL_SIDE)
        if crop is None:
            raise ClientInputError(404, f"thumbnail: the box of index row {row} lies outside its image")
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as JSON values (missing as ``None``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if pd.isna(value) else value
