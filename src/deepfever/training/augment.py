"""Batched augmentation on tensors: one affine warp for the whole batch, no per-image Python.

Doing it this way keeps augmentation cheap next to the model on CPU and runs on the GPU
unchanged. Every random draw comes from the ``torch.Generator`` passed in, so runs are reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; 0 switches a transform off."""

    rotate_degrees: float = 12.0
    scale: float = 0.12
    translate: float = 0.08
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    erase_probability: float = 0.4
    erase_max_fraction: float = 0.25


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def augment_batch(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment float images (N, C, H, W) in [0, 1]; draws on CPU, applies on the images' device."""
    count, _, height, width = images.shape
    angle = _uniform(count, -1, 1, generator) * math.radians(config.rotate_degrees)
    scale = 1.0 + _uniform(count, -1, 1, generator) * config.scale
    shift = _uniform(2 * count, -1, 1, generator).view(count, 2) * config.translate * 2
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(count)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], dim=1), torch.stack([sin * flip, cos, shift[:, 1]], dim=1)], dim=1
    ).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    brightness = (_uniform(count, -1, 1, generator) * config.brightness).view(count, 1, 1, 1).to(out)
    contrast = (1.0 + _uniform(count, -1, 1, generator) * config.contrast).view(count, 1, 1, 1).to(out)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp(0.0, 1.0)

    if config.erase_probability > 0:
        out = _random_erase(out, config, generator)
    return out


def _random_erase(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Blank one random rectangle per chosen image, so the model cannot rely on a single region."""
    count, _, height, width = images.shape
    chosen = torch.rand(count, generator=generator) < config.erase_probability
    area = _uniform(count, 0.02, config.erase_max_fraction, generator)
    aspect = torch.exp(_uniform(count, math.log(0.3), math.log(3.3), generator))
    box_h = (torch.sqrt(area * aspect) * height).clamp(1, height).long()
    box_w = (torch.sqrt(area / aspect) * width).clamp(1, width).long()
    top = (torch.rand(count, generator=generator) * (height - box_h + 1)).long()
    left = (torch.rand(count, generator=generator) * (width - box_w + 1)).long()
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    mask = (
        (rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1))
        & chosen.view(-1, 1, 1)
    )
    fill = torch.rand(count, generator=generator).view(-1, 1, 1, 1)
    mask = mask.unsqueeze(1).to(images.device)
    return torch.where(mask, fill.to(images), images)
