"""Labelled images for a probe, and their frozen vectors (embedded once per run, then reused).

A probe trains its own classifier, so a dataset keeps its own class names here: a ``class/image``
folder or a ``path,label[,subject]`` CSV may use any labels. Named formats (``ckplus48`` ...) are read
through ``read_dataset`` and keep the ``EMOTIONS`` names of the classes they contain.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from deepfever.io.images import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

OWN_FORMATS = ("auto", "folder", "csv")
CROP_SIDE_FACTOR = 4
"""With ``--detector none`` an image this many times larger than the model's crop is likely a photo, not a face crop."""


@dataclass
class LabelledImages:
    """Image sources (paths, or pixel arrays for datasets that store them) with labels and subjects.

    ``labels`` index ``class_names``; ``subjects`` is None when the dataset does not name people.
    """

    sources: list[Any]
    labels: np.ndarray
    class_names: list[str]
    subjects: list[str] | None
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelledVectors:
    """One vector per usable image, and the images that gave none (path, reason)."""

    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    subjects: np.ndarray | None
    paths: list[str]
    failures: list[dict[str, str]]


def load_labelled(root: str | Path, format: str = "auto") -> LabelledImages:
    """Read labelled images: ``auto`` picks ``csv`` for a file and ``folder`` for a folder.

    Any other ``format`` is a registered dataset format (see ``deepfever.data.formats.list_formats``);
    all of its splits are pooled, since the probe makes its own folds.

    Example:
        >>> data = load_labelled("CK+48", format="ckplus48")  # doctest: +SKIP
        >>> data.class_names, len(set(data.subjects))  # doctest: +SKIP
    """
    path = Path(root)
    if format == "auto":
        format = "csv" if path.is_file() else "folder"
    if format == "folder":
        data = _read_class_folders(path)
    elif format == "csv":
        data = _read_manifest(path)
    else:
        data = _read_registered(format, path)
    if len(data.class_names) < 2:
        raise ValueError(f"load_labelled: a probe needs at least 2 classes, {root} ({format}) has {data.class_names}")
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    data.description.update({
        "format": format, "root": str(root), "images": len(data.sources),
        "class_counts": dict(zip(data.class_names, counts.tolist())),
        "subjects": len(set(data.subjects)) if data.subjects is not None else None,
    })
    return data


def _read_class_folders(root: Path) -> LabelledImages:
    if not root.is_dir():
        raise FileNotFoundError(f"load_labelled: {root} is not a folder; expected ROOT/<class>/<image> or a CSV file")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    sources, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        sources += [str(p) for p in files]
        labels += [index] * len(files)
    if not sources:
        raise FileNotFoundError(f"load_labelled: no images in class folders under {root}; expected ROOT/<class>/<image>")
    return LabelledImages(sources, np.array(labels, np.int64), classes, None)


def _read_manifest(manifest: Path) -> LabelledImages:
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"load_labelled: {manifest} lacks columns {sorted(missing)}; expected path,label[,subject], got {list(table.columns)}")
    unlabelled = table["label"].str.strip() == ""
    if unlabelled.any():
        logger.info("%s: %d rows without a label left out", manifest, int(unlabelled.sum()))
    table = table[~unlabelled]
    classes = sorted(table["label"].str.strip().unique())
    labels = table["label"].str.strip().map({name: i for i, name in enumerate(classes)}).to_numpy(np.int64)
    sources = [str(p if Path(p).is_absolute() else manifest.parent / p) for p in table["path"]]
    subjects = None
    if "subject" in table.columns:
        subjects = _fill_subjects([s.strip() or None for s in table["subject"]])
    return LabelledImages(sources, labels, classes, subjects, {"unlabelled_rows": int(unlabelled.sum())})


def _read_registered(format: str, root: Path) -> LabelledImages:
    from deepfever.data.formats import NO_LABEL, read_dataset
    from deepfever.labels import EMOTIONS

    splits = read_dataset(format, str(root))
    samples = [s for split in splits.values() for s in split.samples if s.label != NO_LABEL]
    present = sorted({s.label for s in samples})
    remap = {label: i for i, label in enumerate(present)}
    subjects = None
    if any(s.subject for s in samples):
        subjects = _fill_subjects([s.subject for s in samples])
    skipped = sum((split.skipped for split in splits.values()), Counter())
    return LabelledImages(
        sources=[s.path if s.pixels is None else s.pixels for s in samples],
        labels=np.array([remap[s.label] for s in samples], np.int64),
        class_names=[EMOTIONS[label] for label in present],
        subjects=subjects,
        description={"splits": sorted(splits), "skipped_by_reader": dict(skipped)},
    )


def _fill_subjects(subjects: list[str | None]) -> list[str]:
    """Give each image without a subject its own group: it can then never leak across folds."""
    unknown = sum(s is None for s in subjects)
    if unknown:
        logger.warning("%d of %d images have no subject; each is treated as its own person", unknown, len(subjects))
    return [s if s is not None else f"<no subject #{i}>" for i, s in enumerate(subjects)]


def embed_labelled(
    extractor, data: LabelledImages, detector: str | None = None, progress: Callable[[int], None] | None = None
) -> LabelledVectors:
    """Embed every image once; with several faces in an image, the largest one is the labelled face.

    Missing or unreadable files and images without a face become failures; the run goes on.
    """
    keys, present, failures = [], [], []
    for source in data.sources:
        if isinstance(source, np.ndarray):
            keys.append(f"array[{len(present)}]")
            present.append(source)
        elif Path(source).is_file():
            keys.append(str(Path(source)))
            present.append(source)
        else:
            keys.append(None)
            failures.append({"path": str(source), "reason": "no such file"})
    table = extractor.extract(present, detector=detector, progress=progress) if present else pd.DataFrame()
    failures += table.attrs["failures"] if present else []
    warn_unless_crops(table, detector or extractor.stage_.detector, extractor.fingerprint_["crop_size"])
    vectors = _largest_face_vectors(table)
    usable = [i for i, key in enumerate(keys) if key in vectors]
    if not usable:
        raise ValueError(f"embed_labelled: no image gave a face vector ({len(failures)} failures, e.g. {failures[:3]})")
    return LabelledVectors(
        features=np.stack([vectors[keys[i]] for i in usable]),
        labels=data.labels[usable],
        class_names=list(data.class_names),
        subjects=np.array([data.subjects[i] for i in usable]) if data.subjects is not None else None,
        paths=[keys[i] for i in usable],
        failures=failures,
    )


def warn_unless_crops(table: pd.DataFrame, detector: str, crop_size: int) -> int:
    """Warn when ``--detector none`` was given whole photos: each becomes one "face" and gets a wrong label.

    Returns how many images look like photos rather than face crops.
    """
    if detector != "none" or table.empty:
        return 0
    side = np.maximum(table["box_x2"] - table["box_x1"], table["box_y2"] - table["box_y1"])
    large = int((side > CROP_SIDE_FACTOR * crop_size).sum())
    if large:
        logger.warning("%d of %d images are larger than %d px: with --detector none each whole image is taken as one face; "
                       "if they are photos, not face crops, drop --detector none so faces are detected",
                       large, len(table), CROP_SIDE_FACTOR * crop_size)
    return large


def _largest_face_vectors(table: pd.DataFrame) -> dict[str, np.ndarray]:
    if table.empty:
        return {}
    area = (table["box_x2"] - table["box_x1"]) * (table["box_y2"] - table["box_y1"])
    several = int((table.groupby("path")["face"].count() > 1).sum())
    if several:
        logger.info("%d images hold several faces; the largest face of each is used", several)
    largest = table.assign(area=area).sort_values("area", ascending=False, kind="stable").drop_duplicates("path")
    return dict(zip(largest["path"], largest["embedding"]))
