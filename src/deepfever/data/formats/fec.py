"""Google's Facial Expression Comparison (FEC) dataset (Vemulapalli & Agarwala 2019).

FEC labels triplets, not faces: raters pick the face whose expression differs most from the other
two. Layout: ``ROOT/faceexp-comparison-data-{train,test}-public.csv``, no header, 28 columns: three
times (image URL, top-left column, bottom-right column, top-left row, bottom-right row, the box
normalised to [0, 1] by width and height), the triplet type (``ONE_CLASS_TRIPLET``,
``TWO_CLASS_TRIPLET``, ``THREE_CLASS_TRIPLET``), then six (annotator id, annotation) pairs where the
annotation 1..3 is the index of the odd one out.

Only URLs are published; ``deepfever data fetch-fec`` downloads and crops the faces to
``ROOT/images/<fec_face_stem(face)>.jpg`` (or ``.png``). Format ``fec`` turns each split into a
``DatasetSplit`` of its unique faces, unlabelled (FEC has no categories), so ``data inspect`` can
count them; faces not fetched yet are counted as skipped unless ``require_images=False``. The
triplets themselves come from ``read_fec_triplets``.

Errors: a row without 28 fields or with a non-numeric box or annotation raises ``DataFormatError``
naming file and line; rows with an unknown triplet type, an annotation outside 1..3 or a box outside
[0, 1] are skipped and counted.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

FEC_FILES = {
    "train": "faceexp-comparison-data-train-public.csv",
    "test": "faceexp-comparison-data-test-public.csv",
}
TRIPLET_TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")
FEC_COLUMNS = 28
FACE_COLUMNS = 5
IMAGE_FOLDER = "images"
IMAGE_EXTENSIONS = (".jpg", ".png")


@dataclass(frozen=True)
class FecFace:
    """One face: the photo's URL and the box (x1, y1, x2, y2) normalised by the photo's width and height."""

    url: str
    box_norm: tuple[float, float, float, float]


@dataclass
class FecTriplet:
    """Three faces and every rater's choice of the odd one out (1-based, as in the CSV)."""

    faces: tuple[FecFace, FecFace, FecFace]
    triplet_type: str
    annotations: list[tuple[str, int]]

    @property
    def majority_odd_one_out(self) -> int | None:
        """The most chosen odd one out (1..3), or None when the top choices tie."""
        ranked = Counter(choice for _, choice in self.annotations).most_common()
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            return None
        return ranked[0][0]

    @property
    def agreement(self) -> float:
        """Fraction of raters who chose the most chosen face (1.0 = unanimous)."""
        ranked = Counter(choice for _, choice in self.annotations).most_common(1)
        return ranked[0][1] / len(self.annotations) if ranked else 0.0


def fec_face_stem(face: FecFace) -> str:
    """Stable file name (without extension) of a face crop; shared by the reader and the fetcher.

    The box is rounded to 6 decimals so that "0.1" and "0.100" name the same crop.
    """
    key = f"{face.url}\n" + ",".join(f"{value:.6f}" for value in face.box_norm)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def _parse_face(fields: list[str]) -> FecFace:
    url, left, right, top, bottom = fields
    return FecFace(url.strip(), (float(left), float(top), float(right), float(bottom)))


def _box_problem(face: FecFace) -> str | None:
    x1, y1, x2, y2 = face.box_norm
    if not all(0.0 <= value <= 1.0 for value in face.box_norm):
        return "face box outside [0, 1]"
    if x2 <= x1 or y2 <= y1:
        return "empty face box"
    return None


def read_fec_csv(path: str | Path) -> tuple[list[FecTriplet], Counter]:
    """Parse one FEC CSV into triplets plus the reasons and counts of the rows left out.

    Example:
        >>> triplets, skipped = read_fec_csv("faceexp-comparison-data-test-public.csv")  # doctest: +SKIP
        >>> triplets[0].majority_odd_one_out
        2
    """
    triplets: list[FecTriplet] = []
    skipped: Counter = Counter()
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != FEC_COLUMNS:
                raise DataFormatError(
                    f"{path}, line {line}: expected {FEC_COLUMNS} fields (3 x URL and box, triplet type, "
                    f"6 x annotator and annotation), got {len(row)}"
                )
            try:
                faces = tuple(_parse_face(row[start:start + FACE_COLUMNS]) for start in range(0, 15, FACE_COLUMNS))
                annotations = [(row[index].strip(), int(row[index + 1])) for index in range(16, FEC_COLUMNS, 2)]
            except ValueError as error:
                raise DataFormatError(f"{path}, line {line}: boxes and annotations must be numbers ({error})") from error
            triplet_type = row[15].strip()
            reason = next((problem for problem in map(_box_problem, faces) if problem), None)
            if reason is None and triplet_type not in TRIPLET_TYPES:
                reason = f"unknown triplet type {triplet_type!r}"
            elif reason is None and any(choice not in (1, 2, 3) for _, choice in annotations):
                reason = "annotation outside 1..3"
            if reason is not None:
                skipped[reason] += 1
                logger.debug("%s, line %d: skipped, %s", path, line, reason)
                continue
            triplets.append(FecTriplet(faces, triplet_type, annotations))  # type: ignore[arg-type]
    return triplets, skipped


def read_fec_triplets(root: str, split: str) -> list[FecTriplet]:
    """The usable triplets of split ``train`` or ``test`` under ``root``."""
    if split not in FEC_FILES:
        raise ValueError(f"read_fec_triplets: unknown split {split!r}; valid splits: {', '.join(FEC_FILES)}")
    path = Path(root) / FEC_FILES[split]
    if not path.is_file():
        raise DataFormatError(f"read_fec_triplets: no {FEC_FILES[split]} under {root}")
    return read_fec_csv(path)[0]


def unique_faces(triplets: list[FecTriplet]) -> list[FecFace]:
    """Every distinct face, in order of first appearance."""
    return list(dict.fromkeys(face for triplet in triplets for face in triplet.faces))


def describe_fec(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per split: the triplets the CSV lists (by type), its distinct faces and how many are fetched.

    Unlike ``read_fec`` (which lists only fetched faces as samples) this needs no image, so it tells
    what a split holds before ``deepfever data fetch-fec`` and how far a fetch has got.
    """
    base = Path(root)
    images = base / IMAGE_FOLDER
    fetched = set(os.listdir(images)) if images.is_dir() else set()

    def have(face: FecFace) -> bool:
        return any(fec_face_stem(face) + ext in fetched for ext in IMAGE_EXTENSIONS)

    described = {}
    for split, name in FEC_FILES.items():
        if (base / name).is_file():
            triplets, skipped = read_fec_csv(base / name)
            faces = unique_faces(triplets)
            described[split] = {
                "triplets": len(triplets), "triplets_by_type": dict(Counter(triplet.triplet_type for triplet in triplets)),
                "triplets_with_all_images": sum(all(map(have, triplet.faces)) for triplet in triplets),
                "faces": len(faces), "faces_fetched": sum(map(have, faces)), "rows_skipped": dict(skipped),
            }
    return described


@register_format("fec")
def read_fec(root: str, require_images: bool = True) -> dict[str, DatasetSplit]:
    """Read the unique faces of every FEC split present under ``root``.

    With ``require_images=False`` every face is listed at its ``.jpg`` path even if not fetched.

    Example:
        >>> read_dataset("fec", "data/FEC")["test"].skipped  # doctest: +SKIP
        Counter({'image not fetched (run deepfever data fetch-fec)': 12})
    """
    base = Path(root)
    images = base / IMAGE_FOLDER
    fetched = set(os.listdir(images)) if images.is_dir() else set()
    result: dict[str, DatasetSplit] = {}
    for split, name in FEC_FILES.items():
        if not (base / name).is_file():
            continue
        triplets, skipped = read_fec_csv(base / name)
        samples: list[Sample] = []
        for face in unique_faces(triplets):
            stem = fec_face_stem(face)
            file_name = next((stem + ext for ext in IMAGE_EXTENSIONS if stem + ext in fetched), None)
            if file_name is None and require_images:
                skipped["image not fetched (run deepfever data fetch-fec)"] += 1
                continue
            samples.append(Sample(path=str(images / (file_name or stem + IMAGE_EXTENSIONS[0]))))
        result[split] = DatasetSplit(split, samples, skipped)
    if not result:
        raise DataFormatError(f"read_fec: no {' or '.join(FEC_FILES.values())} under {root}")
    return result
