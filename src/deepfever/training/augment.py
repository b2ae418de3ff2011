"""Batched augmentation on tensors: one warp for the whole batch, no per-image Python.

Doing it this way keeps augmentation cheap next to the model on CPU and runs on the GPU
unchanged. Every random draw comes from the ``torch.Generator`` passed in, so runs are reproducible.

Beyond pose and lighting, the domain transforms imitate what other datasets look like so a model
trained on one transfers: low resolution (down- then up-sampling), blur, sensor noise, JPEG
block artefacts (8x8 DCT quantisation as a JPEG encoder does it), gamma and histogram
equalisation, small perspective changes, and occlusion (random erasing). All are off (0) by
default so older configs keep their meaning.
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
    perspective: float = 0.0
    """Largest projective distortion (share of the half-side a corner moves)."""
    downscale_probability: float = 0.0
    downscale_min: float = 0.35
    """Smallest resolution kept, as a share of the side (0.35: 48 px -> 17 px and back)."""
    blur_probability: float = 0.0
    blur_max_sigma: float = 1.2
    noise_probability: float = 0.0
    noise_max_std: float = 0.06
    jpeg_probability: float = 0.0
    jpeg_min_quality: int = 20
    gamma_probability: float = 0.0
    gamma_max: float = 1.6
    """Gamma drawn log-uniformly from [1/gamma_max, gamma_max]."""
    equalize_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in ("erase_probability", "downscale_probability", "blur_probability", "noise_probability",
                     "jpeg_probability", "gamma_probability", "equalize_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 < self.downscale_min <= 1:
            raise ValueError(f"augment.downscale_min must lie in (0, 1], got {self.downscale_min}")
        if not 1 <= self.jpeg_min_quality <= 100:
            raise ValueError(f"augment.jpeg_min_quality must lie in 1..100, got {self.jpeg_min_quality}")
        if self.gamma_max < 1 or self.perspective < 0 or self.blur_max_sigma < 0 or self.noise_max_std < 0:
            raise ValueError("augment: gamma_max must be >= 1; perspective, blur_max_sigma and noise_max_std >= 0")


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
    if config.perspective > 0:
        # A projective warp: divide the affine grid by a plane 1 + g*x + h*y tilted per image.
        tilt = (_uniform(2 * count, -1, 1, generator).view(count, 1, 1, 2) * config.perspective).to(grid)
        base = F.affine_grid(torch.eye(2, 3).expand(count, 2, 3).to(grid), list(images.shape), align_corners=False)
        grid = grid / (1.0 + (base * tilt).sum(dim=3, keepdim=True))
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if config.downscale_probability > 0:
        out = _downscale(out, config, generator)
    if config.blur_probability > 0:
        out = _blur(out, config, generator)

    brightness = (_uniform(count, -1, 1, generator) * config.brightness).view(count, 1, 1, 1).to(out)
    contrast = (1.0 + _uniform(count, -1, 1, generator) * config.contrast).view(count, 1, 1, 1).to(out)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp(0.0, 1.0)
    if config.gamma_probability > 0:
        gamma = torch.exp(_uniform(count, -1, 1, generator) * math.log(config.gamma_max))
        gamma = torch.where(torch.rand(count, generator=generator) < config.gamma_probability, gamma, torch.ones(count))
        out = out.clamp_min(1e-6).pow(gamma.view(count, 1, 1, 1).to(out))
    if config.equalize_probability > 0:
        chosen = (torch.rand(count, generator=generator) < config.equalize_probability).view(count, 1, 1, 1).to(out.device)
        out = torch.where(chosen, _equalize(out), out)
    if config.noise_probability > 0:
        std = _uniform(count, 0, config.noise_max_std, generator)
        std = torch.where(torch.rand(count, generator=generator) < config.noise_probability, std, torch.zeros(count))
        noise = torch.randn(out.shape, generator=generator).to(out)
        out = (out + noise * std.view(count, 1, 1, 1).to(out)).clamp(0.0, 1.0)
    if config.jpeg_probability > 0:
        out = _jpeg(out, config, generator)
    if config.erase_probability > 0:
        out = _random_erase(out, config, generator)
    return out


def _downscale(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Lose resolution: area-shrink chosen images to a random side, then bilinear back (one call per side)."""
    count, _, height, width = images.shape
    chosen = torch.rand(count, generator=generator) < config.downscale_probability
    sides = (_uniform(count, config.downscale_min, 1.0, generator) * height).round().clamp(4, height).long()
    out = images.clone()
    for side in torch.unique(sides[chosen]).tolist():
        if side >= height:
            continue
        rows = torch.nonzero(chosen & (sides == side)).flatten().to(images.device)
        small = F.interpolate(images[rows], size=(side, max(4, round(side * width / height))), mode="area")
        out[rows] = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return out


def _blur(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator, radius: int = 3) -> torch.Tensor:
    """Separable Gaussian blur with a sigma per image (grouped convolution; sigma ~0 leaves it sharp)."""
    count, channels, height, width = images.shape
    sigma = _uniform(count, 0.1, max(config.blur_max_sigma, 0.1), generator)
    sigma = torch.where(torch.rand(count, generator=generator) < config.blur_probability, sigma, torch.full((count,), 1e-3))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0).to(images)
    flat = F.pad(images.reshape(1, count * channels, height, width), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(-1, 1, 1, 2 * radius + 1), groups=count * channels)
    flat = F.conv2d(flat, kernel.view(-1, 1, 2 * radius + 1, 1), groups=count * channels)
    return flat.view(count, channels, height, width)


def _equalize(images: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Histogram equalisation per image and channel: each grey level maps to its cumulative share."""
    count, channels, height, width = images.shape
    bins = (images.reshape(count * channels, -1) * (levels - 1)).round().long().clamp(0, levels - 1)
    histogram = torch.zeros(count * channels, levels, device=images.device).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.float32))
    cdf = histogram.cumsum(dim=1)
    cdf = (cdf - cdf[:, :1]) / (cdf[:, -1:] - cdf[:, :1]).clamp_min(1)
    return cdf.gather(1, bins).to(images.dtype).view(count, channels, height, width)


# The JPEG standard's luminance quantisation table (ITU-T T.81, Annex K), for quality 50.
_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)


def _dct_matrix(size: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II basis: ``D @ block @ D.T`` is a block's 2-D DCT."""
    k = torch.arange(size, dtype=torch.float64).view(-1, 1)
    n = torch.arange(size, dtype=torch.float64).view(1, -1)
    basis = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis.float()


def _jpeg(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """JPEG artefacts: quantise each 8x8 block's DCT with the standard table at a random quality."""
    count, channels, height, width = images.shape
    quality = _uniform(count, config.jpeg_min_quality, 95, generator)
    chosen = torch.rand(count, generator=generator) < config.jpeg_probability
    # libjpeg's quality scaling of the base table.
    scale = torch.where(quality < 50, 5000 / quality, 200 - 2 * quality) / 100
    table = (_JPEG_LUMA.view(1, 8, 8) * scale.view(-1, 1, 1)).floor().clamp(1, 255).to(images)
    pad_h, pad_w = (-height) % 8, (-width) % 8
    padded = F.pad(images * 255 - 128, (0, pad_w, 0, pad_h), mode="replicate")
    rows, cols = padded.shape[2] // 8, padded.shape[3] // 8
    blocks = padded.view(count, channels, rows, 8, cols, 8).permute(0, 1, 2, 4, 3, 5)
    dct = _dct_matrix().to(images)
    coefficients = dct @ blocks @ dct.T
    step = table.view(count, 1, 1, 1, 8, 8)
    restored = dct.T @ (torch.round(coefficients / step) * step) @ dct
    restored = restored.permute(0, 1, 2, 4, 3, 5).reshape(count, channels, rows * 8, cols * 8)[:, :, :height, :width]
    restored = ((restored + 128) / 255).clamp(0.0, 1.0)
    return torch.where(chosen.view(count, 1, 1, 1).to(images.device), restored, images)


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
