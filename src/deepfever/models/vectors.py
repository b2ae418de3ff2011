"""Expression vectors as numpy arrays: unit length, so inner products are cosine similarities."""
from __future__ import annotations

import numpy as np


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32), so inner products are cosine similarities.

    Example:
        >>> unit(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("unit: received an all-zero vector; an expression vector must have a direction")
    return vectors / norms
