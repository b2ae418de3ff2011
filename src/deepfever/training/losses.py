"""Losses as small modules: per-sample values from ``compute``, aggregation by a reducer.

Returning per-sample values keeps weighting (class balance, masking) a swap of reducer. Every
loss derives from ``PerSampleLoss``, whose ``forward`` checks devices, calls ``compute`` and reduces.

Example:
    >>> import torch
    >>> loss = SoftCrossEntropy()
    >>> round(loss(torch.zeros(2, 8), torch.tensor([0, 1])).item(), 4)
    2.0794
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

Reducer = Callable[[torch.Tensor], torch.Tensor]
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

FEC_MARGINS: dict[int, float] = {1: 0.1, 2: 0.2, 3: 0.2}
"""FECNet's margins by triplet type: 1 = one-class, 2 = two-class, 3 = three-class triplets."""


def mean_reducer(values: torch.Tensor) -> torch.Tensor:
    """Mean over samples; an empty batch gives a zero that still carries the graph."""
    return values.sum() * 0 if values.numel() == 0 else values.mean()


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise squared L2 distance (FECNet's distance between normalised embeddings)."""
    return (a - b).pow(2).sum(dim=1)


class PerSampleLoss(nn.Module):
    """Base class: ``forward`` validates inputs, calls ``compute`` (one value per sample), reduces."""

    def __init__(self, reducer: Reducer = mean_reducer) -> None:
        super().__init__()
        self.reducer = reducer

    def compute(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement compute()")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        devices = {tensor.device for tensor in inputs if torch.is_tensor(tensor)}
        if len(devices) > 1:
            raise ValueError(f"{type(self).__name__}: inputs are on different devices {sorted(map(str, devices))}; move them to one")
        return self.reducer(self.compute(*inputs))


class SoftCrossEntropy(PerSampleLoss):
    """Cross-entropy to a target distribution (FER+ rater votes) or to hard labels.

    ``class_weights`` re-weights each sample by its target's weighted mass (class re-balancing).
    """

    def __init__(self, class_weights: torch.Tensor | None = None, reducer: Reducer = mean_reducer) -> None:
        super().__init__(reducer)
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)

    def compute(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype in (torch.int64, torch.int32):
            target = F.one_hot(target.long(), logits.shape[1]).to(logits.dtype)
        if target.shape != logits.shape:
            raise ValueError(f"SoftCrossEntropy: target shape {tuple(target.shape)} must match logits {tuple(logits.shape)}")
        values = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
        if self.class_weights is not None:
            values = values * (target @ self.class_weights.to(target))
        return values


class ConcordanceLoss(PerSampleLoss):
    """1 - Lin's concordance correlation coefficient (CCC), per target column, NaN targets masked.

    CCC is a batch statistic, so per-sample values come from an exact decomposition: with
    population moments, ``1 - CCC = mean_i (p_i - t_i)^2 / D`` where
    ``D = var(p) + var(t) + (mean(p) - mean(t))^2`` over the batch's labelled rows. Sample i's
    value is ``(p_i - t_i)^2 / D`` (D is computed from the batch and back-propagated through), so
    the mean reducer returns exactly ``1 - CCC``, and a sample's contribution is its share of the
    squared disagreement. With several columns (valence, arousal) a sample's value is the mean over
    its labelled columns; ``compute`` returns values for samples with at least one label only, so
    the mean equals the mean of the per-column ``1 - CCC`` whenever both columns share the mask.
    Under DDP each process computes it over its own shard of the batch.
    """

    def __init__(self, eps: float = 1e-6, reducer: Reducer = mean_reducer) -> None:
        super().__init__(reducer)
        self.eps = eps

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape or prediction.ndim != 2:
            raise ValueError(
                f"ConcordanceLoss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be (N, K)"
            )
        prediction = prediction.float()
        target = target.to(prediction)
        valid = ~torch.isnan(target)
        weight = valid.to(prediction)
        count = weight.sum(dim=0).clamp_min(1)
        clean = torch.where(valid, target, torch.zeros_like(target))
        mean_p = (prediction * weight).sum(dim=0) / count
        mean_t = (clean * weight).sum(dim=0) / count
        var_p = ((prediction - mean_p).pow(2) * weight).sum(dim=0) / count
        var_t = ((clean - mean_t).pow(2) * weight).sum(dim=0) / count
        denominator = var_p + var_t + (mean_p - mean_t).pow(2) + self.eps
        per_column = (prediction - clean).pow(2) / denominator * weight
        labelled = valid.any(dim=1)
        return (per_column.sum(dim=1) / weight.sum(dim=1).clamp_min(1))[labelled]


class FecTripletLoss(PerSampleLoss):
    """FECNet's triplet loss on normalised embeddings, with a margin per triplet type.

    A triplet ``(a, b, c)`` says faces ``a`` and ``b`` are the most similar pair (``c`` is the odd one
    out); its value is ``relu(d(a,b) - d(a,c) + m) + relu(d(a,b) - d(b,c) + m)`` with ``m`` chosen by
    the triplet's type (one-, two- or three-class). Indices point into ``embeddings``.
    """

    def __init__(self, margins: Mapping[int, float] = FEC_MARGINS, distance: Distance = squared_euclidean,
                 reducer: Reducer = mean_reducer) -> None:
        super().__init__(reducer)
        self.margins = dict(margins)
        self.distance = distance

    def compute(self, embeddings: torch.Tensor, triplets: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        if triplets.ndim != 2 or triplets.shape[1] != 3 or types.shape != triplets.shape[:1]:
            raise ValueError(
                f"FecTripletLoss: triplets must be (T, 3) with types (T,), got {tuple(triplets.shape)} and {tuple(types.shape)}"
            )
        if triplets.numel() == 0:
            # No values, but tied to the graph: the mean reducer turns this into embeddings.sum() * 0,
            # which keeps every parameter in the backward pass so DDP does not stall.
            return embeddings.sum().reshape(1)[:0]
        unknown = set(types.unique().tolist()) - set(self.margins)
        if unknown:
            raise ValueError(f"FecTripletLoss: triplet types {sorted(unknown)} have no margin; known types {sorted(self.margins)}")
        table = torch.zeros(max(self.margins) + 1, dtype=torch.float32, device=embeddings.device)
        for kind, margin in self.margins.items():
            table[kind] = margin
        margin = table[types.long()]
        embeddings = embeddings.float()
        a, b, c = (embeddings[triplets[:, column]] for column in range(3))
        pair = self.distance(a, b)
        return F.relu(pair - self.distance(a, c) + margin) + F.relu(pair - self.distance(b, c) + margin)


class SoftenedKLDivergence(PerSampleLoss):
    """Hinton's distillation term: ``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` per sample.

    Multiplying by ``T^2`` keeps the gradient scale independent of the temperature.
    """

    def __init__(self, temperature: float = 4.0, reducer: Reducer = mean_reducer) -> None:
        super().__init__(reducer)
        if temperature <= 0:
            raise ValueError(f"SoftenedKLDivergence: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"SoftenedKLDivergence: student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} logits differ in shape"
            )
        t = self.temperature
        student = F.log_softmax(student_logits.float() / t, dim=1)
        teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
        return (teacher.exp() * (teacher - student)).sum(dim=1) * t * t


class EmbeddingDistillation(PerSampleLoss):
    """Pull the student's embedding towards the teacher's: ``1 - cos`` or squared L2 (``mse``) per sample."""

    KINDS = ("cosine", "mse")

    def __init__(self, kind: str = "cosine", reducer: Reducer = mean_reducer) -> None:
        super().__init__(reducer)
        if kind not in self.KINDS:
            raise ValueError(f"EmbeddingDistillation: kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind

    def compute(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(f"EmbeddingDistillation: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ in shape")
        student, teacher = student.float(), teacher.float()
        if self.kind == "cosine":
            return 1 - F.cosine_similarity(student, teacher, dim=1)
        return (student - teacher).pow(2).mean(dim=1)
