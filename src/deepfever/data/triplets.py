"""FEC-style expression triplets built from FER+ rater votes.

Google's FEC dataset asks raters which of three faces is the odd one out. FER+ has 10 raters per
image, so an equivalent judgement can be read off the vote distributions: in a triplet, the two
faces whose distributions are clearly the closest pair (closer, by ``margin``, than the next
pair) are "similar" and the third is the odd one out. The triplet type follows FEC: how many
distinct majority emotions the three faces have (1 = one-class, 2 = two-class, 3 = three-class).

Example:
    >>> import numpy as np
    >>> votes = np.eye(8)[[0, 0, 1, 1, 2, 2]] * 0.8 + 0.025
    >>> triplets = vote_triplets(votes, count=4, seed=0, margin=0.2)
    >>> len(triplets), triplets.indices.shape
    (4, (4, 3))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRIPLET_TYPES: dict[int, str] = {1: "one_class", 2: "two_class", 3: "three_class"}


@dataclass(frozen=True)
class TripletSet:
    """``indices`` (T, 3): columns 0 and 1 are the similar pair, column 2 the odd one out; ``types`` (T,) in 1..3."""

    indices: np.ndarray
    types: np.ndarray

    def __post_init__(self) -> None:
        if self.indices.ndim != 2 or self.indices.shape[1] != 3 or self.types.shape != self.indices.shape[:1]:
            raise ValueError(f"TripletSet: expected indices (T, 3) and types (T,), got {self.indices.shape} and {self.types.shape}")

    def __len__(self) -> int:
        return len(self.indices)

    def type_counts(self) -> dict[str, int]:
        return {name: int((self.types == kind).sum()) for kind, name in TRIPLET_TYPES.items()}


def triplet_types(labels: np.ndarray) -> np.ndarray:
    """Number of distinct labels in each row of a (T, 3) label array: 1, 2 or 3."""
    labels = np.asarray(labels)
    same_ab, same_ac, same_bc = labels[:, 0] == labels[:, 1], labels[:, 0] == labels[:, 2], labels[:, 1] == labels[:, 2]
    return np.where(same_ab & same_ac, 1, np.where(same_ab | same_ac | same_bc, 2, 3)).astype(np.int8)


def vote_triplets(distributions: np.ndarray, count: int, seed: int = 0, margin: float = 0.2,
                  balance_types: bool = False, max_rounds: int = 200) -> TripletSet:
    """Sample ``count`` triplets whose odd one out is clear from the vote distributions.

    Args:
        distributions: (N, K) rater vote distributions (rows sum to 1), e.g. FER+ soft labels.
        count: number of triplets to return.
        seed: the same seed and inputs always give the same triplets.
        margin: the closest pair's total-variation distance must beat the second closest by this
            much (0.1 = one rater's vote out of ten).
        balance_types: take ``count / 3`` triplets of each type instead of the natural mix.
        max_rounds: rounds of candidate draws before giving up with a ValueError.
    """
    distributions = np.asarray(distributions, dtype=np.float64)
    if distributions.ndim != 2 or len(distributions) < 3:
        raise ValueError(f"vote_triplets: expected (N >= 3, K) vote distributions, got shape {distributions.shape}")
    labels = distributions.argmax(axis=1)
    wanted = ({kind: count // 3 + (1 if kind <= count % 3 else 0) for kind in TRIPLET_TYPES} if balance_types else {0: count})
    found: dict[int, list[np.ndarray]] = {kind: [] for kind in wanted}
    have = dict.fromkeys(wanted, 0)
    rng = np.random.default_rng(seed)
    draw = max(4096, 4 * count)
    for _ in range(max_rounds):
        if all(have[kind] >= wanted[kind] for kind in wanted):
            break
        candidates = rng.integers(0, len(distributions), size=(draw, 3))
        candidates = candidates[(candidates[:, 0] != candidates[:, 1]) & (candidates[:, 0] != candidates[:, 2])
                                & (candidates[:, 1] != candidates[:, 2])]
        ordered = _orient(distributions, candidates, margin)
        kinds = triplet_types(labels[ordered])
        for kind in wanted:
            chosen = ordered if kind == 0 else ordered[kinds == kind]
            chosen = chosen[: wanted[kind] - have[kind]]
            found[kind].append(chosen)
            have[kind] += len(chosen)
    else:
        if not all(have[kind] >= wanted[kind] for kind in wanted):
            raise ValueError(
                f"vote_triplets: found only {have} of {wanted} triplets (0 = any type) after {max_rounds} rounds; "
                f"lower margin ({margin}), count ({count}) or set balance_types=False"
            )
    indices = np.concatenate([np.concatenate(found[kind]) for kind in wanted]).astype(np.int64)
    return TripletSet(indices, triplet_types(labels[indices]))


def _orient(distributions: np.ndarray, candidates: np.ndarray, margin: float) -> np.ndarray:
    """Keep candidates whose closest pair wins by ``margin``; reorder each to (pair, pair, odd one out)."""
    pairs = ((0, 1, 2), (0, 2, 1), (1, 2, 0))  # (first, second, odd one out) for each pair
    distance = np.stack([
        0.5 * np.abs(distributions[candidates[:, i]] - distributions[candidates[:, j]]).sum(axis=1) for i, j, _ in pairs
    ], axis=1)
    order = np.argsort(distance, axis=1, kind="stable")
    rows = np.arange(len(candidates))
    clear = distance[rows, order[:, 1]] - distance[rows, order[:, 0]] >= margin - 1e-9
    columns = np.array(pairs)[order[:, 0]]
    return np.take_along_axis(candidates, columns, axis=1)[clear]
