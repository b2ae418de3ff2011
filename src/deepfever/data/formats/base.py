"""What every dataset format yields, and the registry that finds formats by name.

A format reads a dataset exactly as its owners publish it and maps its labels into
``deepfever.labels.EMOTIONS``; rows it cannot use are counted in ``skipped`` with a reason.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

NO_LABEL = -1


@dataclass
class Sample:
    """One face image with whatever labels its dataset provides.

    ``path`` points at an image file, or ``pixels`` holds the image when the dataset stores pixels
    inline (FER2013's CSV). ``label`` is an index into ``EMOTIONS`` or ``NO_LABEL``; ``soft_label`` is
    an 8-vector of probabilities when raters' votes are known; valence/arousal are NaN when absent.
    ``box`` is (x1, y1, x2, y2) in pixels when the dataset gives a face box; ``landmarks`` (K, 2).
    """

    path: str | None
    label: int = NO_LABEL
    soft_label: np.ndarray | None = None
    valence: float = math.nan
    arousal: float = math.nan
    subject: str | None = None
    pixels: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None


@dataclass
class DatasetSplit:
    """The samples of one split plus an account of every row that was left out and why."""

    name: str
    samples: list[Sample]
    skipped: Counter = field(default_factory=Counter)

    def class_counts(self, class_names: Iterable[str]) -> dict[str, int]:
        names = list(class_names)
        counts = Counter(sample.label for sample in self.samples)
        result = {name: counts.get(index, 0) for index, name in enumerate(names)}
        if counts.get(NO_LABEL):
            result["unlabelled"] = counts[NO_LABEL]
        return result


FormatReader = Callable[..., dict[str, DatasetSplit]]
_FORMATS: dict[str, FormatReader] = {}


def register_format(name: str) -> Callable[[FormatReader], FormatReader]:
    """Decorator: make ``reader(root, **options) -> {split: DatasetSplit}`` available by name."""

    def decorate(reader: FormatReader) -> FormatReader:
        if name in _FORMATS:
            raise ValueError(f"dataset format {name!r} is registered twice")
        _FORMATS[name] = reader
        return reader

    return decorate


def list_formats() -> list[str]:
    _import_all()
    return sorted(_FORMATS)


def read_dataset(name: str, root: str, **options) -> dict[str, DatasetSplit]:
    """Read dataset ``name`` under ``root``; returns its splits by name."""
    _import_all()
    if name not in _FORMATS:
        raise ValueError(f"read_dataset: unknown format {name!r}; valid formats: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name](root, **options)


def _import_all() -> None:
    """Formats register on import; import the package that lists them all."""
    import deepfever.data.formats  # noqa: F401
