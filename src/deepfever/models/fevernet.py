"""FeverNet: a small residual CNN sized for fast CPU inference on 48x48 grey face crops."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from deepfever.models.config import ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.registry import register_model


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_channels)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels, stride), nn.ReLU(inplace=True), *_conv_bn(out_channels, out_channels)
        )
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, stride, 1)) if needs_projection else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class FeverNetBackbone(nn.Module):
    """Stem at full resolution, then one stage per width, each halving the resolution."""

    def __init__(self, in_chans: int, stem_width: int, widths: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(in_chans, stem_width), nn.ReLU(inplace=True)]
        channels = stem_width
        for width, depth in zip(widths, depths):
            for index in range(depth):
                layers.append(BasicBlock(channels, width, 2 if index == 0 else 1))
                channels = width
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)


def _fevernet(config: ModelConfig, stem_width: int, widths: Sequence[int], depths: Sequence[int]) -> ExpressionModel:
    backbone = FeverNetBackbone(config.in_chans, stem_width, widths, depths)
    return ExpressionModel(backbone, backbone.num_features, config)


@register_model
def fevernet_s(config: ModelConfig) -> ExpressionModel:
    """Default CPU model: stem 24, 4 stages (32-64-128-256) of 1-2-2-1 residual blocks, 128-d embedding."""
    return _fevernet(config, 24, (32, 64, 128, 256), (1, 2, 2, 1))


@register_model
def fevernet_m(config: ModelConfig) -> ExpressionModel:
    """Twice the depth of ``fevernet_s``, for GPU training or slower, more accurate CPU use."""
    return _fevernet(config, 32, (48, 96, 192, 384), (2, 2, 2, 2))
