"""The user-facing extractor: images (or aligned crops) in, expression vectors and emotions out."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from deepfever.errors import HeadUnavailableError, ImageReadError
from deepfever.evaluation.predict import predict_arrays
from deepfever.faces.detect import DEFAULT_DETECTOR
from deepfever.io.images import IMAGE_SUFFIXES, as_rgb_uint8, load_image
from deepfever.io.inputs import VIDEO_SUFFIXES, expand_inputs
from deepfever.models import DEFAULT_MODEL, load_model
from deepfever.models.checkpoint import resolve_weights
from deepfever.models.fuse import fuse_batchnorm
from deepfever.models.prior import prior_offset, resolve_prior

logger = logging.getLogger(__name__)


@dataclass
class ExtractionReport:
    """What an ``extract`` call did: counts, failures (path, reason) and throughput."""

    images: int = 0
    images_with_faces: int = 0
    faces: int = 0
    videos: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def processed(self) -> int:
        """Inputs that gave at least one face (images, or videos with a face track)."""
        return self.images_with_faces + sum(1 for video in self.videos if video["faces"])

    def summary(self) -> str:
        """One line: counts, failures, time, and the rate of what was processed (images and/or frames)."""
        parts = [f"{self.images} images"]
        rates = [f"{self.images_per_second:.2f} images/s"] if self.images or not self.videos else []
        if self.videos:
            frames = sum(video["frames"] for video in self.videos)
            parts.append(f"{len(self.videos)} videos ({frames} frames)")
            rates.append(f"{frames / self.seconds if self.seconds > 0 else 0.0:.1f} frames/s")
        parts += [f"{self.faces} faces", f"{len(self.failures)} failures", f"{self.seconds:.1f} s ({', '.join(rates)})"]
        return ", ".join(parts)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return torch.device(name)


class Extractor:
    """Turn faces into expression vectors and emotion probabilities.

    The constructor only stores settings; ``load()`` (called on first use) reads the model and sets
    ``model_``, ``template_`` and ``fingerprint_``.

    Args:
        model: packaged model name (``arch.tag``), path to a ``.safetensors`` model file, or (backend
            ``onnxruntime``) a ``.onnx`` file from ``deepfever export onnx``.
        device: ``cpu``, ``cuda`` or ``auto``.
        detector: default face detector for ``extract``: ``yunet`` (default), ``mtcnn`` or ``none``; it runs
            on ``device`` where it can.
        detector_options: keyword arguments for the detector (e.g. ``{"model_path": ...}`` for YuNet).
        batch_size: faces per model batch; faces from several images share a batch.
        flip_tta: average each face with its mirror image (2x slower, slightly more accurate).
        prior: class prior the emotion probabilities assume: ``uniform`` (every expression equally likely a
            priori; for data whose classes are balanced), ``train`` (the training data's, e.g. FER+'s 32 %
            neutral; for FER+-like data) or a strength in [0, 1] between them (0 = train, 1 = uniform);
            None: the model's recorded ``output_prior``. See ``deepfever.models.prior``.
        backend: ``torch`` or ``onnxruntime`` (the ``onnx`` extra; with an int8 export, the fast CPU path).

    Example:
        >>> from deepfever import Extractor
        >>> table = Extractor().extract(["photos/"])  # doctest: +SKIP
        >>> table[["path", "face", "emotion", "p_happy"]].head()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        device: str = "cpu",
        detector: str = DEFAULT_DETECTOR,
        detector_options: dict[str, Any] | None = None,
        batch_size: int = 64,
        flip_tta: bool = False,
        prior: str | float | None = None,
        backend: str = "torch",
    ) -> None:
        self.model = model
        self.device = device
        self.detector = detector
        self.detector_options = detector_options
        self.batch_size = batch_size
        self.flip_tta = flip_tta
        self.prior = prior
        self.backend = backend

    # -- loading -------------------------------------------------------------------------
    def load(self) -> "Extractor":
        """Load the model and its preprocessing; returns ``self``."""
        from deepfever.models.onnx_runtime import BACKENDS, load_onnx_backend

        if self.backend not in BACKENDS:
            raise ValueError(f"Extractor: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self.device_ = resolve_device(self.device)
        if self.backend == "onnxruntime":
            self.model_ = load_onnx_backend(self.model, self.device_)
            return self._set_model_state(self.model_.fingerprint)
        weights = resolve_weights(self.model)
        # BatchNorm folded into the convolutions: same outputs, faster CPU inference.
        self.model_ = fuse_batchnorm(load_model(weights, self.device_)).to(memory_format=torch.channels_last)
        return self._set_model_state({
            "model_id": f"{Path(weights).stem}@{_sha256(weights)[:12]}",
            "template_id": hashlib.sha256(json.dumps(self.model_.config.template, sort_keys=True).encode()).hexdigest()[:12],
            "crop_size": self.model_.config.input_size,
        })

    def _set_model_state(self, fingerprint: dict[str, Any]) -> "Extractor":
        """Template, classes, heads and fingerprint from the loaded model's config (either backend)."""
        from deepfever.faces.align import AlignmentTemplate

        config = self.model_.config
        if config.template is None:
            raise ValueError(f"Extractor.load: {self.model} has no alignment template in its metadata; it cannot align faces")
        self.template_ = AlignmentTemplate.from_dict(config.template)
        if self.template_.size != config.input_size:
            raise ValueError(f"Extractor.load: template size {self.template_.size} != model input size {config.input_size}")
        self.prior_ = resolve_prior(config, self.prior, "Extractor: prior")
        prior_offset(config, self.prior_)  # a prior the model cannot give is refused now, not at the first face
        self.class_names_ = list(config.class_names)
        self.heads_ = tuple(config.trained_heads)
        self.fingerprint_ = fingerprint
        self._detectors: dict[str, Any] = {}
        return self

    def _check_loaded(self) -> None:
        if not hasattr(self, "model_"):
            self.load()

    def detector_for(self, name: str | None = None):
        """The (cached) detector called ``name``, built with ``detector_options``."""
        from deepfever.faces.detect import create_detector

        self._check_loaded()
        name = name or self.detector
        if name not in self._detectors:
            options = dict(self.detector_options or {}) if name == self.detector else {}
            if name == "none":
                options.setdefault("template", self.template_)
            self._detectors[name] = create_detector(name, device=str(self.device_), **options)
        return self._detectors[name]

    # -- crops ---------------------------------------------------------------------------
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Expression vectors (N, D) float32, L2-normalised, for aligned crops (N, S, S[, 3]) uint8."""
        return self.predict(crops)["embedding"]

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """``embedding``, ``probabilities`` and (when trained) ``valence_arousal`` for aligned crops."""
        self._check_loaded()
        crops = np.asarray(crops)
        if len(crops) == 0:
            return {"embedding": np.zeros((0, self.model_.config.embedding_dim), np.float32),
                    "probabilities": np.zeros((0, len(self.class_names_)), np.float32)}
        if self.backend == "onnxruntime":
            result = self.model_.predict_arrays(crops, self.batch_size, self.flip_tta, self.prior_)
        else:
            result = predict_arrays(self.model_, crops, self.batch_size, self.flip_tta, self.device_, self.prior_)
        if "valence_arousal" not in self.heads_:
            result.pop("valence_arousal")
        return {key: value.astype(np.float32) for key, value in result.items()}

    def valence_arousal(self, crops: np.ndarray) -> np.ndarray:
        """(N, 2) valence and arousal; raises ``HeadUnavailableError`` if the model never learnt them."""
        self._check_loaded()
        if "valence_arousal" not in self.heads_:
            raise HeadUnavailableError(
                f"valence_arousal: model {self.fingerprint_['model_id']} was trained without valence/arousal labels "
                f"(trained heads: {', '.join(self.heads_)}); use a model trained on AffectNet"
            )
        return self.predict(crops)["valence_arousal"]

    # -- images and videos ----------------------------------------------------------------
    def extract(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike | np.ndarray],
        detector: str | None = None,
        progress: Callable[[int], None] | None = None,
        fps: float | None = None,
        smoothing: float = 0.0,
    ) -> pd.DataFrame:
        """One row per face in every image and video of ``inputs`` (files, folders, globs or RGB arrays).

        Video rows add ``frame``, ``time_s`` and ``track`` (see ``deepfever.video``); ``fps`` samples
        videos at that rate (``None``: every frame) and ``smoothing`` adds per-track moving averages
        (``p_*_smooth``, ``emotion_smooth``) beside the raw values. Unreadable files, images without
        a face and partly read videos do not stop the run: they are listed in
        ``table.attrs["failures"]`` (path, reason) and in ``self.report_``. For collections too large
        to hold in memory, use ``deepfever.extraction.ExtractionRun``, which streams rows to a file.
        """
        items = _normalise_inputs(inputs)
        rows = list(self._iter_items(items, detector, progress, fps, smoothing))
        video = any(_is_video(source) for _, source in items)
        table = pd.DataFrame(rows, columns=self.columns(video=video, smoothed=bool(smoothing)))
        if video:
            table = table.astype({"frame": "Int64", "track": "Int64"})
        table.attrs["failures"] = list(self.report_.failures)
        return table

    def columns(self, video: bool = False, smoothed: bool = False) -> list[str]:
        """The table's columns: video rows add ``frame``, ``time_s``, ``track``; smoothing adds ``*_smooth``."""
        from deepfever.extraction.rows import SMOOTH_SUFFIX, prediction_columns
        from deepfever.video.extract import VIDEO_KEYS

        self._check_loaded()
        has_va = "valence_arousal" in self.heads_
        columns = ["path", *(VIDEO_KEYS if video else ()), "face", "box_x1", "box_y1", "box_x2", "box_y2", "landmarks",
                   "score", "embedding", *prediction_columns(self.class_names_, has_va)]
        if smoothed:
            columns += prediction_columns(self.class_names_, has_va, SMOOTH_SUFFIX)
        return columns + list(self.fingerprint_)

    def iter_extract(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike | np.ndarray],
        detector: str | None = None,
        progress: Callable[[int], None] | None = None,
        fps: float | None = None,
        smoothing: float = 0.0,
    ) -> Iterator[dict[str, Any]]:
        """Stream rows as batches complete: images first, then videos, in input order.

        ``self.report_`` is final once the iterator is exhausted. Memory stays bounded whatever the
        number of images or the length of a video: rows leave as soon as their batch is predicted.
        """
        return self._iter_items(_normalise_inputs(inputs), detector, progress, fps, smoothing)

    def _iter_items(self, items: list[tuple[str, Any]], detector: str | None, progress: Callable[[int], None] | None,
                    fps: float | None, smoothing: float) -> Iterator[dict[str, Any]]:
        self._check_loaded()
        self.report_ = report = ExtractionReport()
        started = time.perf_counter()
        yield from self._iter_image_rows([item for item in items if not _is_video(item[1])], detector, progress)
        for _, video in (item for item in items if _is_video(item[1])):
            yield from self._iter_video(video, detector, fps, smoothing)
            if progress:
                progress(1)
        report.seconds = time.perf_counter() - started

    def _iter_image_rows(self, items: Sequence[tuple[str, Any]], detector: str | None,
                         progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
        from deepfever.extraction.rows import PendingBatch, face_row
        from deepfever.faces.align import align_faces

        finder = self.detector_for(detector)
        report = self.report_
        pending = PendingBatch()
        with ThreadPoolExecutor(max_workers=2) as decoder:
            # Decode ahead in threads (PIL releases the GIL) while this thread detects and embeds.
            for name, decoded in _prefetch(decoder, items, lookahead=4):
                report.images += 1
                if progress:
                    progress(1)
                if isinstance(decoded, Exception):
                    report.failures.append({"path": name, "reason": str(decoded)})
                    continue
                faces = finder.detect(decoded)
                if not faces:
                    report.failures.append({"path": name, "reason": "no face detected"})
                    continue
                report.images_with_faces += 1
                for index, (face, crop) in enumerate(zip(faces, align_faces(decoded, faces, self.template_))):
                    pending.add(face_row(name, index, face), crop)
                if len(pending) >= self.batch_size:
                    yield from self._predict_rows(pending)
            yield from self._predict_rows(pending)

    def _predict_rows(self, pending) -> Iterator[dict[str, Any]]:
        from deepfever.extraction.rows import prediction_fields

        rows, crops = pending.take()
        if crops is None:
            return
        result = self.predict(crops)
        for position, row in enumerate(rows):
            va = result["valence_arousal"][position] if "valence_arousal" in result else None
            row["embedding"] = result["embedding"][position]
            row.update(prediction_fields(self.class_names_, result["probabilities"][position], va))
            row.update(self.fingerprint_)
            self.report_.faces += 1
            yield row

    def _iter_video(self, video: Path, detector: str | None, fps: float | None, smoothing: float) -> Iterator[dict[str, Any]]:
        """Rows of one video; an unreadable or partly read video becomes a failure entry, not an exception."""
        from deepfever.video import VideoReport, iter_video_rows

        report, video_report = self.report_, VideoReport()
        try:
            yield from iter_video_rows(self, video, fps=fps, detector=detector, smoothing=smoothing, report=video_report)
        except (OSError, ValueError) as error:
            report.failures.append({"path": str(video), "reason": str(error)})
        else:
            if video_report.truncation:
                report.failures.append({"path": str(video), "reason": video_report.truncation})
            if not video_report.faces:
                report.failures.append({"path": str(video), "reason": "no face track in the video"})
        report.videos.append({"path": str(video), "frames": video_report.frames, "faces": video_report.faces,
                              "tracks": video_report.tracks, "frames_per_second": video_report.frames_per_second,
                              "frames_declared": video_report.frames_declared, "frames_decoded": video_report.frames_decoded})
        report.faces += video_report.faces


def _normalise_inputs(inputs) -> list[tuple[str, Any]]:
    """(name, source) pairs: paths expanded from files/folders/globs, arrays named ``array[i]``.

    Arrays are converted here, before any work, so a wrong dtype stops the call with the reason.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    items: list[tuple[str, Any]] = []
    names: list[str | os.PathLike] = []
    for position, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            items.append((f"array[{position}]", as_rgb_uint8(item, caller=f"Extractor.extract: array[{position}]")))
        else:
            names.append(item)
    items += [(str(path), path) for path in expand_inputs(names, IMAGE_SUFFIXES | VIDEO_SUFFIXES)] if names else []
    return items


def _is_video(source: Any) -> bool:
    return isinstance(source, Path) and source.suffix.lower() in VIDEO_SUFFIXES


def _decode(source: Any) -> np.ndarray | Exception:
    try:
        return load_image(source)
    except ImageReadError as error:
        return error


def _prefetch(pool: ThreadPoolExecutor, items: Sequence[tuple[str, Any]], lookahead: int) -> Iterator[tuple[str, Any]]:
    """Yield (name, image or error) in input order with up to ``lookahead`` decodes in flight."""
    futures = [pool.submit(_decode, source) for _, source in items[:lookahead]]
    for position, (name, _) in enumerate(items):
        following = position + lookahead
        if following < len(items):
            futures.append(pool.submit(_decode, items[following][1]))
        yield name, futures[position].result()
        futures[position] = None  # let the decoded image go once it is used


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
