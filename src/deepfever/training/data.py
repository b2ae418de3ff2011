"""Training data in memory: every source decoded once into uint8 arrays, batches assembled by index.

A source holds images (N, S, S) or (N, S, S, 3), soft emotion targets (N, 8; NaN rows where a face has no label),
valence/arousal (N, 2; NaN where absent) and optionally triplets over its images, in which case
the sampler draws triplets (3 images each) instead of single images.
"""
from __future__ import annotations

import glob as globbing
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from deepfever.data.arrays import load_crop_array
from deepfever.data.formats import NO_LABEL, Sample
from deepfever.data.splits import SplitArrays, load_split, sample_targets
from deepfever.data.triplets import TripletSet, vote_triplets
from deepfever.models.prior import PRIOR_FLOOR
from deepfever.training.config import DataSection, SourceSection

logger = logging.getLogger(__name__)


@dataclass
class SourceArrays:
    name: str
    images: np.ndarray
    soft: np.ndarray
    valence_arousal: np.ndarray
    triplets: TripletSet | None = None
    face_path: dict = field(default_factory=dict)

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


def holdout_rows(count: int, share: float, seed: int) -> np.ndarray:
    """Row mask of the fixed held-out slice of a training split (same rows for every run with ``seed``)."""
    chosen = np.random.default_rng(seed).permutation(count)[: int(round(count * share))]
    mask = np.zeros(count, bool)
    mask[chosen] = True
    return mask


def load_primary(data: DataSection, size: int, in_chans: int = 1) -> tuple[SourceArrays, SplitArrays | None]:
    """The ``data`` section's training split (FER+ keeps no-majority images as soft targets), and the
    held-out slice (kept out of training) that selects (``holdout``) or monitors (``last``) epochs."""
    options = {"keep_ambiguous": data.keep_ambiguous} if data.format == "ferplus" else {}
    train = load_split(data.format, data.root, options, data.train_split, data.detector, data.fallback, size, in_chans, data.limit_train)
    name = f"{data.format}:{data.train_split}"
    held_out = None
    if data.select_on != "valid":
        mask = holdout_rows(len(train.images), data.holdout, data.holdout_seed)
        # Selection scores hard labels; FER+ no-majority images keep training but never select.
        held_out = train.take(np.flatnonzero(mask & (train.labels != NO_LABEL)))
        train = train.take(np.flatnonzero(~mask))
        name += f" minus {int(mask.sum())} held out (seed {data.holdout_seed})"
    return SourceArrays(name, train.images, train.soft, train.valence_arousal, face_path=train.face_path), held_out


def load_source(source: SourceSection, size: int, seed: int, in_chans: int = 1) -> SourceArrays:
    """One mixed-in source: a dataset split (optionally as vote triplets) or a glob of unlabelled faces."""
    if source.glob:
        paths = sorted(globbing.glob(str(Path(source.glob).expanduser())))
        if not paths:
            raise FileNotFoundError(f"load_source: source {source.name!r} matched no files with glob {source.glob!r}")
        samples = [Sample(path=path) for path in paths][: source.limit or None]
        soft, valence_arousal, _ = sample_targets(samples)
        arrays = SourceArrays(source.name, load_crop_array(samples, size, in_chans), soft, valence_arousal,
                              face_path={"detector": "none", "size": size})
    else:
        split = load_split(source.format, source.root, source.options, source.split, source.detector, source.fallback, size, in_chans,
                           source.limit)
        arrays = SourceArrays(source.name, split.images, split.soft, split.valence_arousal, face_path=split.face_path)
    if source.triplets:
        if np.isnan(arrays.soft).any():
            raise ValueError(f"load_source: source {source.name!r} has images without vote distributions; triplets need them all")
        arrays.triplets = vote_triplets(arrays.soft, source.triplets, seed=seed, margin=source.triplet_margin)
    return arrays


def class_prior(soft: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean soft target over labelled rows, each drawn with ``weights`` (default: once): the class
    distribution of the batches, which a loss without re-balancing learns."""
    labelled = ~np.isnan(soft[:, 0])
    if not labelled.any():
        raise ValueError("class_prior: the training split has no emotion targets; logit adjustment needs them")
    prior = (weights[labelled] if weights is not None else np.ones(int(labelled.sum()))) @ soft[labelled]
    return prior / prior.sum()


def class_balanced_weights(soft: np.ndarray, power: float) -> np.ndarray:
    """Sampling weight per image, ``sum_c soft_c * prior_c ** -power``: class-aware sampling whose
    drawn classes follow ``prior ** (1 - power)``; images without targets keep the mean weight."""
    prior = class_prior(soft)
    labelled = ~np.isnan(soft[:, 0])
    weights = np.empty(len(soft))
    weights[labelled] = soft[labelled] @ np.maximum(prior, PRIOR_FLOOR) ** -power
    weights[~labelled] = weights[labelled].mean()
    return weights


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


