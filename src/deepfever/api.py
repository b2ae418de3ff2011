"""The user-facing extractor: images (or aligned crops) in, expression vectors and emotions out.

A thin facade in scikit-learn's manner: the constructor stores and checks settings, ``load()`` sets
the trailing-underscore state (model, face stage, ``engine_``), and every call returns its own
results and report. The work itself is ``deepfever.pipeline.FaceEngine`` (images) and
``deepfever.video`` (frames, on the same engine).
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from deepfever import defaults
from deepfever.errors import HeadUnavailableError
from deepfever.io.images import IMAGE_SUFFIXES, as_rgb_uint8, as_uint8_pixels
from deepfever.io.inputs import VIDEO_SUFFIXES, expand_inputs
from deepfever.io.names import is_utf8_name, printable_name
from deepfever.models.config import normalize_prior
from deepfever.models.device import resolve_device_name
from deepfever.models.prior import prior_offset, resolve_prior
from deepfever.pipeline.engine import FaceEngine
from deepfever.pipeline.report import ExtractionReport
from deepfever.pipeline.stage import FaceStage
from deepfever.pipeline.rows import row_columns

__all__ = ["ExtractionReport", "ExtractionStream", "Extractor"]

logger = logging.getLogger(__name__)


class ExtractionStream(Iterator[dict[str, Any]]):
    """The rows of one ``Extractor.iter_extract`` call, and that call's own ``report`` (final once exhausted)."""

    def __init__(self, rows: Callable[[ExtractionReport], Iterator[dict[str, Any]]]) -> None:
        self.report = ExtractionReport()
        self._rows = rows(self.report)

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def close(self) -> None:
        """Stop early (closes decoders and video readers)."""
        self._rows.close()


class Extractor:
    """Turn faces into expression vectors and emotion probabilities.

    The constructor stores and checks settings (``get_params``/``set_params`` as in scikit-learn);
    ``load()`` (called on first use) reads the model and sets ``model_``, ``stage_`` (its face stage),
    ``engine_`` (the ``FaceEngine`` other packages use), ``template_``, ``class_names_``, ``heads_``,
    ``prior_``, ``fingerprint_``, ``device_`` and ``backend_`` (what runs the model: ``onnxruntime`` or
    ``torch``). Every call returns its own results and report.

    Args:
        model: packaged model name (``arch.tag``), path to a ``.safetensors`` model file, or a ``.onnx``
            file from ``deepfever export onnx`` (run by ONNX Runtime).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        detector: face detector for ``extract``: ``yunet``, ``mtcnn`` or ``none`` (each image is one face
            crop); None: the detector the model file records (``deepfever.defaults.DETECTOR`` for the
            packaged models). It runs on ``device`` where it can.
        detector_options: keyword arguments for the detector (e.g. ``{"model_path": ...}`` for YuNet).
        batch_size: faces per model batch; faces from several images share a batch.
        flip_tta: average each face with its mirror image (2x slower, slightly more accurate).
        prior: class prior the emotion probabilities assume: ``uniform`` (every expression equally likely a
            priori; for data whose classes are balanced), ``train`` (the training data's, e.g. FER+'s 32 %
            neutral; for FER+-like data) or a strength in [0, 1] between them (0 = train, 1 = uniform);
            None: the model's recorded ``output_prior``. See ``deepfever.models.prior``.
        backend: ``auto`` (ONNX Runtime on the CPU, torch on a GPU), ``torch`` or ``onnxruntime``. Both give
            the same outputs (to about 1e-6); ONNX Runtime starts in a fraction of a second and runs faster on
            CPUs. It runs the model exported once to ``$DEEPFEVER_CACHE/onnx`` (the first run imports torch to
            export it; if that cache cannot be written, ``auto`` runs torch and logs why).

    Raises:
        ValueError: at construction, for a setting outside the choices above (e.g. ``batch_size=0``).

    Example:
        >>> from deepfever import Extractor
        >>> Extractor(batch_size=32).get_params()["batch_size"]
        32
        >>> table = Extractor().extract(["photos/"])  # doctest: +SKIP
        >>> table[["path", "face", "emotion", "p_happy"]].head()  # doctest: +SKIP
        >>> table.attrs["report"]["faces"]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike = defaults.MODEL,
        device: str = defaults.DEVICE,
        detector: str | None = None,
        detector_options: dict[str, Any] | None = None,
        batch_size: int = defaults.BATCH_SIZE,
        flip_tta: bool = defaults.FLIP_TTA,
        prior: str | float | None = defaults.OUTPUT_PRIOR,
        backend: str = defaults.BACKEND,
    ) -> None:
        self.model = model
        self.device = device
        self.detector = detector
        self.detector_options = detector_options
        self.batch_size = batch_size
        self.flip_tta = flip_tta
        self.prior = prior
        self.backend = backend
        self._validate()

    # -- parameters ------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's settings, as scikit-learn's ``get_params`` (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Extractor":
        """Change settings (checked as in the constructor); a loaded model is dropped and reloaded on next use."""
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ValueError(f"Extractor.set_params: unknown parameters {unknown}; valid: {self._param_names()}")
        previous = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate()
        except ValueError:
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        for name in [name for name in vars(self) if name.endswith("_") and not name.startswith("_")]:
            delattr(self, name)
        return self

    def _validate(self) -> None:
        """Every setting is checked here, before any model is read, so a wrong one fails where it was written."""
        problems = []
        if not isinstance(self.model, (str, os.PathLike)) or not str(self.model):
            problems.append(f"model must be a packaged model name or a file path, got {self.model!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "mps") or self.device.split(":")[0] == "cuda"):
            problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.detector is not None and self.detector not in defaults.DETECTORS:
            problems.append(f"detector must be one of {', '.join(defaults.DETECTORS)} (or None: the model's), got {self.detector!r}")
        if self.detector_options is not None and not isinstance(self.detector_options, dict):
            problems.append(f"detector_options must be a dict of detector keyword arguments or None, got {self.detector_options!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size must be an integer of at least 1, got {self.batch_size!r}")
        if not isinstance(self.flip_tta, bool):
            problems.append(f"flip_tta must be True or False, got {self.flip_tta!r}")
        if self.prior is not None:
            try:
                normalize_prior(self.prior)
            except ValueError as error:
                problems.append(f"{error} (or None: the model's)")
        if self.backend not in defaults.BACKENDS:
            problems.append(f"backend must be one of {', '.join(defaults.BACKENDS)}, got {self.backend!r}")
        if problems:
            raise ValueError("Extractor: " + "; ".join(problems))

    # -- loading -------------------------------------------------------------------------
    def load(self) -> "Extractor":
        """Load the model, its face stage and the engine; returns ``self``."""
        self.device_ = resolve_device_name(self.device)
        onnx_file = str(self.model).endswith(".onnx")
        self.backend_ = self.backend if self.backend != "auto" else "onnxruntime" if self.device_ == "cpu" or onnx_file else "torch"
        self.model_, fingerprint = self._load_onnx(fallback=self.backend == "auto" and not onnx_file) \
            if self.backend_ == "onnxruntime" else (None, {})
        if self.model_ is None:
            self.backend_ = "torch"
            self.model_, fingerprint = self._load_torch()
        config = self.model_.config
        try:
            self.stage_ = FaceStage.of(config, self.detector)
        except ValueError as error:
            raise ValueError(f"Extractor.load: {self.model}: {error}") from error
        self.template_ = self.stage_.template
        self.prior_ = resolve_prior(config, self.prior, "Extractor: prior")
        prior_offset(config, self.prior_)  # a prior the model cannot give is refused now, not at the first face
        self.class_names_ = list(config.class_names)
        self.heads_ = tuple(config.trained_heads)
        self.fingerprint_ = fingerprint
        self.engine_ = FaceEngine(self.stage_, self.predict, self.class_names_, fingerprint,
                                  has_valence_arousal="valence_arousal" in self.heads_, batch_size=self.batch_size,
                                  device=self.device_, detector_options=self.detector_options)
        return self

    def _load_onnx(self, fallback: bool) -> tuple[Any, dict[str, Any]]:
        """The ONNX Runtime model and its fingerprint; ``(None, {})`` when it cannot run here and torch may (``fallback``)."""
        from deepfever.models.onnx_runtime import load_onnx_backend

        # Falls back on a missing onnx package, a cache that cannot be written, an architecture the exporter or
        # ONNX Runtime cannot take (RuntimeError); a damaged model file (ValueError) is refused by either backend.
        try:
            model = load_onnx_backend(self.model, self.device_)
        except (ImportError, OSError, RuntimeError) as error:
            if not fallback or isinstance(error, FileNotFoundError):
                raise
            logger.warning("ONNX Runtime cannot run %s (%s); running it with torch", self.model, error)
            return None, {}
        return model, dict(model.fingerprint)

    def _load_torch(self) -> tuple[Any, dict[str, Any]]:
        """The torch model (BatchNorm folded into the convolutions: same outputs, faster) and its fingerprint."""
        import torch

        from deepfever.models.checkpoint import load_model
        from deepfever.models.files import resolve_weights
        from deepfever.models.fingerprint import model_fingerprint
        from deepfever.models.fuse import fuse_batchnorm

        weights = resolve_weights(self.model)
        model = fuse_batchnorm(load_model(weights, self.device_)).to(memory_format=torch.channels_last)
        return model, model_fingerprint(weights, model.config)

    def ensure_loaded(self) -> "Extractor":
        """``self``, loaded first if no call has loaded it yet (what other packages call before ``engine_``)."""
        if not hasattr(self, "engine_"):
            self.load()
        return self

    def detector_for(self, name: str | None = None):
        """The (cached) detector called ``name`` (default: this extractor's), built with ``detector_options``."""
        return self.ensure_loaded().engine_.detector(name)

    # -- crops ---------------------------------------------------------------------------
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Expression vectors (N, D) float32, L2-normalised, for aligned crops (N, S, S[, 3]) uint8 (or uint16)."""
        return self._predict(crops, "Extractor.embed")["embedding"]

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """``embedding``, ``probabilities`` and (when trained) ``valence_arousal`` for aligned crops uint8 (or uint16)."""
        return self._predict(crops, "Extractor.predict")

    def _predict(self, crops: np.ndarray, caller: str) -> dict[str, np.ndarray]:
        """Crops through the one pixel converter (as ``extract`` takes images), then the model."""
        self.ensure_loaded()
        crops = np.asarray(crops)
        if len(crops) == 0:
            return {"embedding": np.zeros((0, self.model_.config.embedding_dim), np.float32),
                    "probabilities": np.zeros((0, len(self.class_names_)), np.float32)}
        crops = as_uint8_pixels(crops, caller)
        if self.backend_ == "onnxruntime":
            result = self.model_.predict_arrays(crops, self.batch_size, self.flip_tta, self.prior_)
        else:
            from deepfever.models.predict import predict_arrays

            result = predict_arrays(self.model_, crops, self.batch_size, self.flip_tta, self.device_, self.prior_)
        if "valence_arousal" not in self.heads_:
            result.pop("valence_arousal")
        return {key: value.astype(np.float32) for key, value in result.items()}

    def valence_arousal(self, crops: np.ndarray) -> np.ndarray:
        """(N, 2) valence and arousal; raises ``HeadUnavailableError`` if the model never learnt them."""
        self.ensure_loaded()
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
        ``table.attrs["failures"]`` (path, reason); ``table.attrs["report"]`` holds this call's
        report (``ExtractionReport.as_dict()``). For collections too large to hold in memory, use
        ``deepfever.extraction.ExtractionRun``, which streams rows to a file.
        """
        items = _normalise_inputs(inputs)
        stream = ExtractionStream(lambda report: self._iter_items(items, report, detector, progress, fps, smoothing))
        rows = list(stream)
        video = any(_is_video(source) for _, source in items)
        table = pd.DataFrame(rows, columns=self.columns(video=video, smoothed=bool(smoothing)))
        if video:
            table = table.astype({"frame": "Int64", "track": "Int64"})
        table.attrs["failures"] = list(stream.report.failures)
        table.attrs["report"] = stream.report.as_dict()
        return table

    def columns(self, video: bool = False, smoothed: bool = False) -> list[str]:
        """The table's columns: video rows add ``frame``, ``time_s``, ``track``; smoothing adds ``*_smooth``."""
        self.ensure_loaded()
        return row_columns(self.class_names_, "valence_arousal" in self.heads_, self.fingerprint_, video, smoothed)

    def iter_extract(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike | np.ndarray],
        detector: str | None = None,
        progress: Callable[[int], None] | None = None,
        fps: float | None = None,
        smoothing: float = 0.0,
    ) -> ExtractionStream:
        """Stream rows as batches complete: images first, then videos, in input order.

        The returned stream owns this call's ``report``, final once the stream is exhausted. Memory
        stays bounded whatever the number of images or the length of a video: rows leave as soon as
        their batch is predicted.
        """
        items = _normalise_inputs(inputs)
        return ExtractionStream(lambda report: self._iter_items(items, report, detector, progress, fps, smoothing))

    def _iter_items(self, items: list[tuple[str, Any]], report: ExtractionReport, detector: str | None,
                    progress: Callable[[int], None] | None, fps: float | None, smoothing: float) -> Iterator[dict[str, Any]]:
        engine = self.ensure_loaded().engine_
        started = time.perf_counter()
        yield from engine.iter_image_rows([item for item in items if not _is_video(item[1])], report, detector, progress)
        for name, video in (item for item in items if _is_video(item[1])):
            yield from self._iter_video(name, video, report, detector, fps, smoothing)
            if progress:
                progress(1)
        report.seconds = time.perf_counter() - started

    def _iter_video(self, name: str, video: Path, report: ExtractionReport, detector: str | None, fps: float | None,
                    smoothing: float) -> Iterator[dict[str, Any]]:
        """Rows of one video; an unreadable or partly read video becomes a failure entry, not an exception."""
        from deepfever.video import VideoReport, iter_video_rows

        video_report = VideoReport()
        try:
            if not is_utf8_name(video):
                raise ValueError("the file name is not valid UTF-8, so no table can name its rows; rename the file")
            yield from iter_video_rows(self.engine_, video, fps=fps, detector=detector, smoothing=smoothing, report=video_report)
        except (OSError, ValueError) as error:
            report.failures.append({"path": name, "reason": str(error)})
        else:
            if video_report.truncation:
                report.failures.append({"path": name, "reason": video_report.truncation})
            if not video_report.faces:
                report.failures.append({"path": name, "reason": "no face track in the video"})
        report.videos.append({"path": name, "frames": video_report.frames, "faces": video_report.faces,
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
    # A name that is not UTF-8 is shown escaped: its failure row must name it in any table.
    items += [(printable_name(path), path) for path in expand_inputs(names, IMAGE_SUFFIXES | VIDEO_SUFFIXES)] if names else []
    return items


def _is_video(source: Any) -> bool:
    return isinstance(source, Path) and source.suffix.lower() in VIDEO_SUFFIXES
