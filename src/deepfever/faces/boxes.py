"""Box overlap and non-maximum suppression: the one home of both for detectors and the video tracker.

Boxes are ``(x1, y1, x2, y2)`` pixel edges. ``box_iou`` works on numpy arrays (in float64) and on
torch tensors (on their device, in their dtype), so MTCNN's NMS stays on the GPU while YuNet's
refinement and the tracker use plain arrays; torch is never imported here.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

NMS_BLOCK = 1024
"""Rows of the NMS overlap matrix computed at once: bounds memory on images with many candidates."""
_EPS = 1e-12


def box_iou(boxes: Any, others: Any, mode: str = "union") -> Any:
    """Overlap matrix (N, M) of boxes (N, 4) with others (M, 4): intersection over union, or with
    ``mode="min"`` over the smaller area (MTCNN's last stage). Degenerate pairs (no area) give 0.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6]])).round(3).tolist()
        [[0.143, 0.0]]
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(boxes, torch.Tensor):
        xp, clip = torch, lambda value, low: value.clamp(min=low)
    else:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        others = np.asarray(others, np.float64).reshape(-1, 4)
        xp, clip = np, lambda value, low: np.maximum(value, low)
    width = clip(xp.minimum(boxes[:, None, 2], others[None, :, 2]) - xp.maximum(boxes[:, None, 0], others[None, :, 0]), 0)
    height = clip(xp.minimum(boxes[:, None, 3], others[None, :, 3]) - xp.maximum(boxes[:, None, 1], others[None, :, 1]), 0)
    inter = width * height
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]
    areas = ((others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]))[None, :]
    if mode == "union":
        return inter / clip(area + areas - inter, _EPS)
    if mode == "min":
        return inter / clip(xp.minimum(area, areas), _EPS)
    raise ValueError(f"box_iou: mode must be 'union' or 'min', got {mode!r}")


def nms(boxes: Any, scores: Any, threshold: float, mode: str = "union") -> Any:
    """Greedy non-maximum suppression of torch tensors; returns kept indices by descending score.

    A box is dropped when its overlap with a higher-scoring kept box exceeds ``threshold``; ties in
    score keep the lower index first, so results are deterministic. The overlaps are computed as
    matrices on the boxes' device (blocks of ``NMS_BLOCK`` rows bound memory); only the greedy pass
    over a boolean matrix runs on the host.
    """
    import torch

    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    suppress = torch.cat([box_iou(block, ranked, mode) > threshold for block in ranked.split(NMS_BLOCK)]) \
        if len(ranked) else torch.zeros(0, 0, dtype=torch.bool)
    suppress = suppress.cpu().numpy()
    removed = np.zeros(len(order), bool)
    keep = []
    for position in range(len(order)):
        if not removed[position]:
            keep.append(position)
            removed |= suppress[position]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(boxes: Any, scores: Any, groups: Any, threshold: float, mode: str = "union") -> Any:
    """NMS within each group (image) only: shifting each group far apart makes boxes never overlap."""
    import torch

    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offset = groups.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset, scores, threshold, mode)
