"""Triplet accuracy: does an embedding pick the same odd one out as the human raters?

For each triplet the prediction is the face outside the closest pair by embedding distance;
accuracy is reported overall and per triplet type (one-, two-, three-class), as in FECNet.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepfever.data.triplets import TRIPLET_TYPES, TripletSet, vote_triplets


def predicted_odd_one_out(embeddings: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Column (0, 1 or 2) of the face outside the closest pair, for each (T, 3) triplet of ``embeddings``."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    a, b, c = (vectors[indices[:, column]] for column in range(3))
    distance = np.stack([((b - c) ** 2).sum(1), ((a - c) ** 2).sum(1), ((a - b) ** 2).sum(1)], axis=1)
    return distance.argmin(axis=1)  # the pair opposite column k is closest -> k is the odd one out


def triplet_accuracy(embeddings: np.ndarray, triplets: TripletSet) -> dict[str, Any]:
    """``{"n", "accuracy", "per_type": {type name: {"n", "accuracy"}}}``; the odd one out is column 2."""
    correct = predicted_odd_one_out(embeddings, triplets.indices) == 2
    per_type = {}
    for kind, name in TRIPLET_TYPES.items():
        chosen = triplets.types == kind
        per_type[name] = {"n": int(chosen.sum()), "accuracy": float(correct[chosen].mean()) if chosen.any() else float("nan")}
    return {"n": len(triplets), "accuracy": float(correct.mean()) if len(correct) else float("nan"), "per_type": per_type}


def ferplus_vote_triplets(root: str, split: str = "valid", count: int = 10_000, seed: int = 0, margin: float = 0.2):
    """The FER+ samples of ``split`` (images with a majority label) and vote triplets over them."""
    from deepfever.data.formats import read_dataset

    dataset = read_dataset("ferplus", root, splits=(split,))
    if split not in dataset:
        raise FileNotFoundError(f"ferplus_vote_triplets: split {split!r} not found under {root}")
    samples = dataset[split].samples
    return samples, vote_triplets(np.stack([sample.soft_label for sample in samples]), count, seed=seed, margin=margin)
