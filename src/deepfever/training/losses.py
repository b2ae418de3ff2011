"""Losses as small modules: per-sample values from ``compute``, aggregation by a reducer.

Returning per-sample values keeps weighting (class balance, masking) a swap of reducer.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Reducer = Callable[[torch.Tensor], torch.Tensor]


def mean_reducer(values: torch.Tensor) -> torch.Tensor:
    """Mean over samples; an empty batch gives a zero that still carries the graph."""
    return values.sum() * 0 if values.numel() == 0 else values.mean()


class SoftCrossEntropy(nn.Module):
    """Cross-entropy to a target distribution (FER+ rater votes) or to hard labels.

    ``class_weights`` re-weights each sample by its target's weighted mass (class re-balancing).
    """

    def __init__(self, class_weights: torch.Tensor | None = None, reducer: Reducer = mean_reducer) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)
        self.reducer = reducer

    def compute(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype in (torch.int64, torch.int32):
            target = F.one_hot(target.long(), logits.shape[1]).to(logits.dtype)
        if target.shape != logits.shape:
            raise ValueError(f"SoftCrossEntropy: target shape {tuple(target.shape)} must match logits {tuple(logits.shape)}")
        values = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
        if self.class_weights is not None:
            values = values * (target @ self.class_weights.to(target))
        return values

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.reducer(self.compute(logits, target))
