"""Expression similarity of two faces, and the odd one out of three.

A cosine distance alone means little to a user ("0.31: is that close?"), so ``compare`` places it
among the distances of random pairs of a named reference set of faces, embedded by the same model.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepfever.errors import DeepFeverError
from deepfever.models.vectors import unit

logger = logging.getLogger(__name__)

ODD_ONE_OUT_TEMPERATURE = 0.05
"""Softmax temperature in cosine-distance units: a pair 0.05 closer is e times more likely to be
the similar pair. Not calibrated on human judgements; fit it on labelled triplets (e.g. FEC) to
turn confidences into probabilities."""

REFERENCE_PAIRS = 20_000


class NoFaceError(DeepFeverError, ValueError):
    """An input image held no face (or fewer faces than the index asked for)."""


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)``: 0 for the same direction, 1 for orthogonal, 2 for opposite (rounding clipped away)."""
    return float(np.clip(1.0 - np.dot(unit(a), unit(b)), 0.0, 2.0))


@dataclass(frozen=True)
class ReferenceDistances:
    """Sorted cosine distances of random pairs of faces, and what those faces were."""

    distances: np.ndarray
    description: str
    faces: int

    def percentile(self, distance: float) -> float:
        """Percentage of reference pairs at most ``distance`` apart (low = unusually similar)."""
        return 100.0 * float(np.searchsorted(self.distances, distance, side="right")) / len(self.distances)


def reference_from_vectors(vectors: np.ndarray, description: str, pairs: int = REFERENCE_PAIRS, seed: int = 0) -> ReferenceDistances:
    """Distances of ``pairs`` random pairs of distinct rows of ``vectors`` (fixed seed: reproducible)."""
    vectors = unit(vectors)
    if len(vectors) < 2:
        raise ValueError(f"reference_from_vectors: need at least 2 faces for a distance, got {len(vectors)}; use a larger reference set")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(vectors), pairs)
    second = (first + rng.integers(1, len(vectors), pairs)) % len(vectors)  # never the same face
    distances = 1.0 - np.einsum("ij,ij->i", vectors[first], vectors[second])
    return ReferenceDistances(np.sort(distances), description, len(vectors))


def load_reference(extractor, source: str | os.PathLike, use_cache: bool = True) -> ReferenceDistances:
    """Reference distances for ``source``: a FER+ root (its FER2013Valid faces) or a folder of images.

    Embeddings are computed once per model and source listing and cached under
    ``$DEEPFEVER_CACHE/reference``, because embedding thousands of faces takes a while on a CPU.
    """
    from deepfever.io.cache import cache_dir
    from deepfever.io.inputs import expand_inputs

    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"load_reference: {root} is not a folder; pass a FER+ root or a folder of face images")
    if not hasattr(extractor, "fingerprint_"):
        extractor.load()
    ferplus_labels = root / "FER2013Valid" / "label.csv"
    files = [ferplus_labels] if ferplus_labels.is_file() else expand_inputs([root])
    if not files:
        raise FileNotFoundError(f"load_reference: no images in {root}; expected image files or a FER+ root with FER2013Valid/label.csv")
    listing = "\n".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    key_text = json.dumps([extractor.fingerprint_, extractor.stage_.detector, listing], sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    cached = cache_dir() / "reference" / f"{key}.npz"
    if use_cache and cached.is_file():
        with np.load(cached, allow_pickle=False) as archive:
            return reference_from_vectors(archive["vectors"], str(archive["description"]))
    if ferplus_labels.is_file():
        vectors, description = _ferplus_valid_vectors(extractor, root)
    else:
        table = extractor.extract(files)
        if table.empty:
            raise NoFaceError(f"load_reference: no face found in any of the {len(files)} images in {root} (detector {extractor.stage_.detector})")
        vectors = np.stack(table["embedding"])
        description = f"{len(table)} faces from {table['path'].nunique()} images in {root} (detector {extractor.stage_.detector})"
    if use_cache:
        from deepfever.io.atomic import atomic_write

        with atomic_write(cached) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, vectors=vectors.astype(np.float32), description=np.array(description))
        logger.info("cached reference embeddings of %s at %s", root, cached)
    return reference_from_vectors(vectors, description)


def _ferplus_valid_vectors(extractor, root: Path) -> tuple[np.ndarray, str]:
    from deepfever.data.arrays import load_crop_array
    from deepfever.data.formats import read_dataset

    samples = read_dataset("ferplus", str(root), splits=("valid",))["valid"].samples
    crops = load_crop_array(samples, extractor.fingerprint_["crop_size"])
    return extractor.embed(crops), f"FER+ validation split: {len(samples)} faces with a majority label under {root}"


def embed_faces(extractor, sources: Sequence[Any], faces: Sequence[int]) -> list[dict[str, Any]]:
    """The extraction rows (path, box, embedding, emotion, ...) of face ``faces[i]`` of image ``sources[i]``.

    Each distinct image is read once and all of them share one model batch.
    """
    slots: dict[tuple, int] = {}
    items: list[Any] = []
    names = []
    for source in sources:
        key = ("array", id(source)) if isinstance(source, np.ndarray) else ("path", str(Path(source)))
        if key not in slots:
            slots[key] = len(items)
            items.append(source)
        names.append(f"array[{slots[key]}]" if key[0] == "array" else key[1])
    table = extractor.extract(items)
    failures = {failure["path"]: failure["reason"] for failure in table.attrs["failures"]}
    rows = []
    for name, face in zip(names, faces):
        if name in failures:
            hint = "; for images that are already face crops use detector 'none'" if failures[name] == "no face detected" else ""
            raise NoFaceError(f"{name}: {failures[name]}{hint}")
        found = table[table["path"] == name]
        if not 0 <= face < len(found):
            raise NoFaceError(f"{name}: face {face} was asked for but the image has {len(found)} face(s) (0..{len(found) - 1})")
        rows.append(found[found["face"] == face].iloc[0].to_dict())
    return rows


def compare_vectors(a: np.ndarray, b: np.ndarray, reference: ReferenceDistances | None = None) -> dict[str, Any]:
    """Cosine similarity and distance of two vectors, and their percentile among reference pairs."""
    distance = cosine_distance(a, b)
    result: dict[str, Any] = {"cosine_similarity": 1.0 - distance, "cosine_distance": distance,
                              "percentile": None, "reference": None, "interpretation": None}
    if reference is not None:
        percentile = reference.percentile(distance)
        result.update(percentile=percentile, reference=reference.description, interpretation=(
            f"{percentile:.1f}% of random pairs of reference faces are at least this close"
            f" (lower = more similar than usual; reference: {reference.description})"
        ))
    return result


def compare_faces(extractor, a: Any, b: Any, face_a: int = 0, face_b: int = 0,
                  reference: ReferenceDistances | None = None) -> dict[str, Any]:
    """Expression similarity of face ``face_a`` of image ``a`` and face ``face_b`` of image ``b``.

    Example:
        >>> from deepfever import Extractor
        >>> result = compare_faces(Extractor(), "smile.jpg", "grin.jpg")  # doctest: +SKIP
        >>> round(result["cosine_similarity"], 2)  # doctest: +SKIP
        0.87
    """
    row_a, row_b = embed_faces(extractor, (a, b), (face_a, face_b))
    result = {"a": row_a["path"], "face_a": face_a, "emotion_a": row_a["emotion"],
              "b": row_b["path"], "face_b": face_b, "emotion_b": row_b["emotion"]}
    result.update(compare_vectors(row_a["embedding"], row_b["embedding"], reference))
    result["model_id"] = extractor.fingerprint_["model_id"]
    return result


def odd_one_out_vectors(a: np.ndarray, b: np.ndarray, c: np.ndarray, temperature: float = ODD_ONE_OUT_TEMPERATURE) -> dict[str, Any]:
    """FEC-style triplet judgement: the face outside the closest pair is the odd one.

    ``probabilities[i]`` is a softmax over the negative pair distances divided by ``temperature``:
    the weight of the pair that leaves face ``i`` out.
    """
    if temperature <= 0:
        raise ValueError(f"odd_one_out: temperature must be positive, got {temperature}")
    vectors = (a, b, c)
    # pair_distances[i] is the distance of the pair that excludes face i
    pair_distances = np.array([cosine_distance(vectors[1], vectors[2]), cosine_distance(vectors[0], vectors[2]),
                               cosine_distance(vectors[0], vectors[1])])
    logits = -pair_distances / temperature
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    odd = int(np.argmin(pair_distances))
    return {"odd_one_out": odd, "confidence": float(probabilities[odd]), "probabilities": probabilities.tolist(),
            "pair_distances": {"bc": float(pair_distances[0]), "ac": float(pair_distances[1]), "ab": float(pair_distances[2])},
            "temperature": temperature}


def odd_one_out(extractor, a: Any, b: Any, c: Any, faces: tuple[int, int, int] = (0, 0, 0),
                temperature: float = ODD_ONE_OUT_TEMPERATURE) -> dict[str, Any]:
    """Which of three faces has the expression farthest from the other two (0, 1 or 2), with confidence.

    Example:
        >>> from deepfever import Extractor
        >>> odd_one_out(Extractor(), "smile1.jpg", "smile2.jpg", "frown.jpg")["odd_one_out"]  # doctest: +SKIP
        2
    """
    rows = embed_faces(extractor, (a, b, c), faces)
    result = odd_one_out_vectors(*(row["embedding"] for row in rows), temperature=temperature)
    result["inputs"] = [row["path"] for row in rows]
    result["emotions"] = [row["emotion"] for row in rows]
    result["odd_path"] = result["inputs"][result["odd_one_out"]]
    result["model_id"] = extractor.fingerprint_["model_id"]
    return result
