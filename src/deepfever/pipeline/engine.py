"""The one engine from image to row: detect, align, embed in shared batches, build rows.

Images (``Extractor.extract``), video frames (``deepfever.video``), server requests and dataset
preparation all go through a ``FaceEngine`` (or, for preparation, through its crop functions), so a
face gives the same crop, vector and row whichever way it came in. Time-specific work (tracks,
smoothing) stays in ``deepfever.video`` on top of it; HTTP stays in ``deepfever.serve``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from deepfever import defaults
from deepfever._iterate import batched
from deepfever.errors import ImageReadError
from deepfever.faces.detect import Detector
from deepfever.faces.types import Face
from deepfever.io.images import load_image
from deepfever.pipeline.path import FacePath
from deepfever.pipeline.report import ExtractionReport
from deepfever.pipeline.rows import PendingBatch, face_row, outputs_at, prediction_fields
from deepfever.pipeline.stage import FaceStage

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


class FaceEngine(FacePath):
    """Image -> faces -> aligned crops -> model outputs -> rows, for one loaded model.

    The face half (detectors, ``find_faces``, ``align``, ``locate``) is ``FacePath``'s.

    Args:
        stage: the model's face stage (``FaceStage.of(model.config)``); its detector is the default one.
        predict: aligned crops (N, S, S, 3) uint8 -> ``embedding``, ``probabilities`` and (when the
            model has the head) ``valence_arousal`` arrays.
        class_names: the model's emotion names, in probability order.
        fingerprint: columns every row carries (model id, template id, crop size).
        has_valence_arousal: the model has a trained valence/arousal head (its rows get those columns).
        batch_size: crops per ``predict`` call; faces of several images share a call.
        device: where detectors that can run on a GPU run.
        detector_options: keyword arguments of the stage's detector (e.g. YuNet's ``model_path``).

    Example:
        >>> rows = engine.image_rows(load_image("a.jpg"), "a.jpg")  # doctest: +SKIP
        >>> rows[0]["emotion"], rows[0]["box_x1"]  # doctest: +SKIP
    """

    def __init__(self, stage: FaceStage, predict: Predict, class_names: Sequence[str], fingerprint: dict[str, Any], *,
                 has_valence_arousal: bool = False, batch_size: int = defaults.BATCH_SIZE, device: str = "cpu", detector_options: dict[str, Any] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"FaceEngine: batch_size must be at least 1, got {batch_size}")
        super().__init__(stage, device=device, detector_options=detector_options)
        self.predict = predict
        self.class_names = list(class_names)
        self.fingerprint = dict(fingerprint)
        self.has_valence_arousal = has_valence_arousal
        self.batch_size = batch_size

    # -- rows -------------------------------------------------------------------------------
    def row(self, name: str, index: int, face: Face, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """The row of face ``index`` of ``name``: where it is, its vector, emotions and the model fingerprint.

        ``outputs`` are one face's model outputs (``rows.outputs_at``); the one row builder of every entry point.
        """
        row = face_row(name, index, face)
        row["embedding"] = outputs["embedding"]
        row.update(prediction_fields(self.class_names, outputs["probabilities"], outputs.get("valence_arousal")))
        row.update(self.fingerprint)
        return row

    def image_rows(self, image: np.ndarray, name: str, detector: str | Detector | None = None) -> list[dict[str, Any]]:
        """Rows of every face of one decoded RGB image, in one call (``[]`` when it has none)."""
        faces, crops = self.locate(image, detector)
        if not faces:
            return []
        result = self.predict(crops)
        return [self.row(name, index, face, outputs_at(result, index)) for index, face in enumerate(faces)]

    def iter_image_rows(self, items: Sequence[tuple[str, Any]], report: ExtractionReport,
                        detector: str | Detector | None = None,
                        progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Rows of many images, faces of several images sharing each model batch, in input order.

        ``items`` are (name, path or RGB array). Images are decoded ahead in threads (PIL releases the
        GIL) and detected ``defaults.DECODE_AHEAD`` at a time (one ``detect_batch``); unreadable images
        and images without a face are failures in ``report``, never exceptions.
        """
        finder = self.detector(detector)
        pending = PendingBatch()
        with ThreadPoolExecutor(max_workers=2) as decoder:
            for group in batched(_prefetch(decoder, items, defaults.DECODE_AHEAD), defaults.DECODE_AHEAD):
                found = iter(self.find_faces([image for _, image in group if not isinstance(image, Exception)], finder))
                for name, image in group:  # in input order, so failures are listed as the inputs came
                    report.images += 1
                    if progress:
                        progress(1)
                    if isinstance(image, Exception):
                        report.failures.append({"path": name, "reason": str(image)})
                        continue
                    faces = next(found)
                    if not faces:
                        report.failures.append({"path": name, "reason": "no face detected"})
                        continue
                    report.images_with_faces += 1
                    for index, (face, crop) in enumerate(zip(faces, self.align(image, faces))):
                        pending.add((name, index, face), crop)
                    if len(pending) >= self.batch_size:
                        yield from self._predicted_rows(pending, report)
            yield from self._predicted_rows(pending, report)

    def _predicted_rows(self, pending: PendingBatch, report: ExtractionReport) -> Iterator[dict[str, Any]]:
        keys, crops = pending.take()
        if crops is None:
            return
        result = self.predict(crops)
        for position, (name, index, face) in enumerate(keys):
            report.faces += 1
            yield self.row(name, index, face, outputs_at(result, position))


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

