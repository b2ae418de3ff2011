"""A deterministic, resumable, distributed-aware sampler that mixes several datasets in every batch.

Each source has an endless stream of indices: the concatenation of seeded permutations of its
``range(size)`` (permutation ``k`` seeded by ``(seed, source, k)``). A source given sampling
``weights`` (class-aware sampling) instead draws each cycle of ``size`` indices with replacement in
proportion to them, seeded the same way. Micro-batch ``g`` takes
``counts[d] * world_size`` consecutive stream positions from every source ``d`` and gives rank ``r``
its own slice of ``counts[d]``, so ranks hold disjoint shards and together cover what a single
process would see. The only state is ``position`` (micro-batches drawn so far), which makes
resuming mid-epoch exact.

Example:
    >>> sampler = MixingSampler(sizes=[100, 30], counts=[6, 2], seed=0)
    >>> first = next(sampler)
    >>> [len(indices) for indices in first], sampler.state_dict()
    ([6, 2], {'position': 1})
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def allocate(total: int, ratios: Sequence[float], unit_sizes: Sequence[int] | None = None) -> list[int]:
    """Units drawn from each source so that ``total`` items split by ``ratios`` (largest remainder).

    ``unit_sizes[d]`` items make one unit of source ``d`` (3 for a source of triplets); items left
    over by rounding a multi-item source down go to the first single-item source.
    """
    unit_sizes = list(unit_sizes or [1] * len(ratios))
    if len(ratios) != len(unit_sizes) or not ratios or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"allocate: need one non-negative ratio per source with a positive sum, got {list(ratios)}")
    weights = np.asarray(ratios, dtype=np.float64) / sum(ratios)
    exact = weights * total
    items = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - items), kind="stable")[: total - items.sum()]:
        items[index] += 1
    units = [int(count) // size for count, size in zip(items, unit_sizes)]
    leftover = total - sum(unit * size for unit, size in zip(units, unit_sizes))
    if leftover:
        singles = [index for index, size in enumerate(unit_sizes) if size == 1 and weights[index] > 0]
        if not singles:
            raise ValueError(f"allocate: {total} items cannot be split into units of sizes {unit_sizes}; change the batch size")
        units[singles[0]] += leftover
    return units


class MixingSampler:
    """Index batches mixing ``len(sizes)`` sources; ``next()`` gives one index array per source.

    Args:
        sizes: number of units (images, triplets) in each source.
        counts: units per source in one micro-batch of one rank.
        seed: stream seed; the same seed gives the same batches on any number of processes.
        rank, world_size: this process's place in a distributed run (defaults: single process).
        weights: per source, ``None`` (each unit once per cycle) or non-negative sampling weights, one per unit.
    """

    def __init__(self, sizes: Sequence[int], counts: Sequence[int], seed: int = 0, rank: int = 0, world_size: int = 1,
                 weights: Sequence[np.ndarray | None] | None = None) -> None:
        if len(sizes) != len(counts):
            raise ValueError(f"MixingSampler: {len(sizes)} sizes but {len(counts)} counts; give one count per source")
        weights = list(weights) if weights is not None else [None] * len(sizes)
        if len(weights) != len(sizes):
            raise ValueError(f"MixingSampler: {len(weights)} weight entries for {len(sizes)} sources; give None for unweighted ones")
        self.probabilities = [_probabilities(w, size, source) for source, (w, size) in enumerate(zip(weights, sizes))]
        if any(count > 0 and size <= 0 for size, count in zip(sizes, counts)):
            raise ValueError(f"MixingSampler: a source with units to draw is empty (sizes {list(sizes)}, counts {list(counts)})")
        if not 0 <= rank < world_size:
            raise ValueError(f"MixingSampler: rank {rank} is outside world size {world_size}")
        self.sizes, self.counts = [int(size) for size in sizes], [int(count) for count in counts]
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.position = 0
        self._cycles: dict[tuple[int, int], np.ndarray] = {}

    def __iter__(self) -> "MixingSampler":
        return self

    def __next__(self) -> list[np.ndarray]:
        batch = [self._take(source, (self.position * self.world_size + self.rank) * count, count)
                 for source, count in enumerate(self.counts)]
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = int(state["position"])

    def _take(self, source: int, start: int, count: int) -> np.ndarray:
        size = self.sizes[source]
        positions = np.arange(start, start + count)
        cycles, offsets = positions // max(size, 1), positions % max(size, 1)
        out = np.empty(count, dtype=np.int64)
        for cycle in np.unique(cycles):
            chosen = cycles == cycle
            out[chosen] = self._cycle(source, int(cycle))[offsets[chosen]]
        return out

    def _cycle(self, source: int, cycle: int) -> np.ndarray:
        key = (source, cycle)
        if key not in self._cycles:
            # Keep the two newest cycles per source: a batch spans at most two.
            stale = [old for old in self._cycles if old[0] == source and old[1] < cycle - 1]
            for old in stale:
                del self._cycles[old]
            rng = np.random.default_rng([self.seed, source, cycle])
            probabilities = self.probabilities[source]
            size = self.sizes[source]
            self._cycles[key] = rng.permutation(size) if probabilities is None else rng.choice(size, size, p=probabilities)
        return self._cycles[key]


def _probabilities(weights: np.ndarray | None, size: int, source: int) -> np.ndarray | None:
    """Sampling weights normalised to probabilities, after checking they fit the source."""
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (size,) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"MixingSampler: source {source} needs {size} finite non-negative weights with a positive sum, "
                         f"got shape {weights.shape}")
    return weights / weights.sum()
