"""Training data in memory: every source decoded once into uint8 arrays, batches assembled by index.

A source holds images (N, S, S), soft emotion targets (N, 8; NaN rows where a face has no label),
valence/arousal (N, 2; NaN where absent) and optionally triplets over its images, in which case
the sampler draws triplets (3 images each) instead of single images.
"""
from __future__ import annotations

import glob as globbing
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from deepfever.data.arrays import load_grey_array
from deepfever.data.formats import NO_LABEL, Sample, read_dataset
from deepfever.data.triplets import TripletSet, vote_triplets
from deepfever.training.config import DataSection, SourceSection

logger = logging.getLogger(__name__)


@dataclass
class SourceArrays:
    name: str
    images: np.ndarray
    soft: np.ndarray
    valence_arousal: np.ndarray
    triplets: TripletSet | None = None

    @property
    def units(self) -> int:
        return len(self.triplets) if self.triplets is not None else len(self.images)

    @property
    def unit_size(self) -> int:
        return 3 if self.triplets is not None else 1

    def describe(self) -> str:
        labelled = int((~np.isnan(self.soft[:, 0])).sum())
        extra = f", {len(self.triplets)} triplets {self.triplets.type_counts()}" if self.triplets is not None else ""
        return f"{self.name}: {len(self.images)} images ({labelled} with emotion targets){extra}"


def samples_to_arrays(name: str, samples: Sequence[Sample], size: int, classes: int = 8) -> SourceArrays:
    """Decode ``samples`` (cached) and collect their targets; missing labels become NaN rows."""
    soft = np.full((len(samples), classes), np.nan, dtype=np.float32)
    for row, sample in enumerate(samples):
        if sample.soft_label is not None:
            soft[row] = sample.soft_label
        elif sample.label != NO_LABEL:
            soft[row] = np.eye(classes, dtype=np.float32)[sample.label]
    valence_arousal = np.array([[sample.valence, sample.arousal] for sample in samples], dtype=np.float32).reshape(-1, 2)
    return SourceArrays(name, load_grey_array(list(samples), size), soft, valence_arousal)


def load_primary(data: DataSection, size: int) -> SourceArrays:
    """The ``data`` section's training split (FER+ keeps no-majority images as soft targets)."""
    options = {"keep_ambiguous": data.keep_ambiguous} if data.format == "ferplus" else {}
    samples = read_dataset(data.format, data.root, **options)[data.train_split].samples
    return samples_to_arrays(f"{data.format}:{data.train_split}", samples[: data.limit_train or None], size)


def load_source(source: SourceSection, size: int, seed: int) -> SourceArrays:
    """One mixed-in source: a dataset split (optionally as vote triplets) or a glob of unlabelled faces."""
    if source.glob:
        paths = sorted(globbing.glob(str(Path(source.glob).expanduser())))
        if not paths:
            raise FileNotFoundError(f"load_source: source {source.name!r} matched no files with glob {source.glob!r}")
        samples = [Sample(path=path) for path in paths]
    else:
        splits = read_dataset(source.format, source.root, **source.options)
        if source.split not in splits:
            raise ValueError(f"load_source: source {source.name!r} has no split {source.split!r}; found {sorted(splits)}")
        samples = splits[source.split].samples
    arrays = samples_to_arrays(source.name, samples[: source.limit or None], size)
    if source.triplets:
        if np.isnan(arrays.soft).any():
            raise ValueError(f"load_source: source {source.name!r} has images without vote distributions; triplets need them all")
        arrays.triplets = vote_triplets(arrays.soft, source.triplets, seed=seed, margin=source.triplet_margin)
    return arrays


def assemble(sources: Sequence[SourceArrays], indices: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """One batch from per-source index arrays: uint8 ``images`` (B, S, S), ``soft`` (B, 8),
    ``valence_arousal`` (B, 2), ``triplets`` (T, 3) indices into the batch and their ``types`` (T,)."""
    images, soft, valence_arousal, triplets, types = [], [], [], [], []
    offset = 0
    for source, chosen in zip(sources, indices):
        if len(chosen) == 0:
            continue
        if source.triplets is not None:
            members = source.triplets.indices[chosen]
            triplets.append(offset + np.arange(members.size).reshape(-1, 3))
            types.append(source.triplets.types[chosen])
            chosen = members.reshape(-1)
        images.append(source.images[chosen])
        soft.append(source.soft[chosen])
        valence_arousal.append(source.valence_arousal[chosen])
        offset += len(chosen)
    return {
        "images": torch.from_numpy(np.concatenate(images)),
        "soft": torch.from_numpy(np.concatenate(soft)),
        "valence_arousal": torch.from_numpy(np.concatenate(valence_arousal)),
        "triplets": torch.from_numpy(np.concatenate(triplets) if triplets else np.zeros((0, 3), np.int64)),
        "types": torch.from_numpy(np.concatenate(types).astype(np.int64) if types else np.zeros(0, np.int64)),
    }


def steps_per_epoch(primary: SourceArrays, primary_units_per_step: int, configured: int) -> int:
    """``configured`` if > 0, else the steps that take one pass over the primary source."""
    if configured > 0:
        return configured
    if primary_units_per_step <= 0:
        raise ValueError("steps_per_epoch: the data section's ratio is 0, so set steps_per_epoch explicitly")
    steps = primary.units // primary_units_per_step
    if steps < 1:
        raise ValueError(f"steps_per_epoch: {primary.units} training images are fewer than one batch share ({primary_units_per_step})")
    return steps


def has_labels(soft: torch.Tensor) -> torch.Tensor:
    """Rows of a soft-target batch that carry a target (unlabelled rows are NaN)."""
    return ~torch.isnan(soft[:, 0])


