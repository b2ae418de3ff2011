"""ResNet-18 and ResNet-50 sized for face crops, optionally initialised from a local weights file.

ImageNet's stem (7x7 stride-2 convolution, then max-pooling) shrinks a 224 px image 4x before the
first residual stage; on a 48 px face that leaves the last stage a 2x2 map. Here the stem follows
the crop instead, so the last stage always sees roughly a 6x6 or 7x7 map:

* ``input_size`` <= 64: 3x3 stride-1 stem, no pooling (48 px -> 6x6 at the last stage);
* ``input_size`` < 128: 3x3 stride-2 stem, no pooling (112 px -> 7x7);
* larger crops: ImageNet's stem (224 px -> 7x7).

``init_weights`` (an ``arch_kwargs`` entry) starts from a torchvision-style state dict (``conv1``,
``bn1``, ``layer1.0.conv1``, ... ``fc``), e.g. ImageNet or face-recognition weights, in a
``.safetensors`` or torch file. Names are mapped to this module's layout, the classifier ``fc`` is
skipped, RGB filters are summed for grey input and the 7x7 ImageNet stem kernel is resampled to 3x3 (keeping each filter's sum);
missing and unexpected keys are logged.

Example:
    >>> from deepfever.models import create_model
    >>> create_model("resnet18").config.input_size
    48
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepfever.models.config import ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.registry import register_model

logger = logging.getLogger(__name__)


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    # Conv and BatchNorm side by side in a Sequential, so fuse_batchnorm can fold them.
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_channels)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (torchvision's ``conv1``/``bn1``, ``conv2``/``bn2`` = ``body.0/1``, ``body.3/4``)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(in_channels, width, 3, stride), nn.ReLU(inplace=True), *_conv_bn(width, width, 3))
        self.shortcut = _shortcut(in_channels, width * self.expansion, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's ResNet v1.5), 1x1 expand: ``body.0/1``, ``body.3/4``, ``body.6/7``."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(in_channels, width, 1), nn.ReLU(inplace=True),
            *_conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
            *_conv_bn(width, out_channels, 1),
        )
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))


def make_stem(in_chans: int, input_size: int, width: int = 64) -> nn.Sequential:
    """The stem for ``input_size`` px crops (see the module docstring); ``stem.0`` is the convolution."""
    if input_size >= 128:
        return nn.Sequential(*_conv_bn(in_chans, width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*_conv_bn(in_chans, width, 3, 1 if input_size <= 64 else 2), nn.ReLU(inplace=True))


class ResNetBackbone(nn.Module):
    """Stem and four stages of residual blocks (widths 64-128-256-512), then global average pooling."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: Sequence[int], in_chans: int, input_size: int) -> None:
        super().__init__()
        self.stem = make_stem(in_chans, input_size)
        channels = 64
        stages = []
        for index, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for position in range(depth):
                blocks.append(block(channels, width, 2 if index > 0 and position == 0 else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)


_BLOCK_LAYER = re.compile(r"^layer([1-4])\.(\d+)\.(conv|bn)([1-3])\.(.+)$")
_DOWNSAMPLE = re.compile(r"^layer([1-4])\.(\d+)\.downsample\.([01])\.(.+)$")
_WRAPPER_PREFIXES = ("module.", "backbone.")


def torchvision_to_local(name: str) -> str | None:
    """Map a torchvision/timm ResNet key to this backbone's key; None for the classifier and unknown keys.

    Example:
        >>> torchvision_to_local("layer2.0.bn2.running_var")
        'stages.1.0.body.4.running_var'
    """
    for prefix in _WRAPPER_PREFIXES:
        name = name.removeprefix(prefix)
    if name.startswith(("stem.", "stages.")):
        return name
    if name.startswith("conv1."):
        return "stem.0." + name.removeprefix("conv1.")
    if name.startswith("bn1."):
        return "stem.1." + name.removeprefix("bn1.")
    match = _BLOCK_LAYER.match(name)
    if match:
        stage, block, kind, number, rest = match.groups()
        position = 3 * (int(number) - 1) + (kind == "bn")  # conv k at 3(k-1), its BatchNorm right after
        return f"stages.{int(stage) - 1}.{block}.body.{position}.{rest}"
    match = _DOWNSAMPLE.match(name)
    if match:
        stage, block, position, rest = match.groups()
        return f"stages.{int(stage) - 1}.{block}.shortcut.{position}.{rest}"
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a torch file (read with ``weights_only=True``, never unpickling code)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"read_state_dict: no weights file at {file}; pass init_weights=<.safetensors or .pth path>")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    loaded = torch.load(file, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):  # training checkpoints often nest the weights one level down
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict):
        raise ValueError(f"read_state_dict: {file} holds a {type(loaded).__name__}, expected a dict of tensors (a state dict)")
    return {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}


def _adapt(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """``source`` reshaped for ``target`` where the change keeps the filter's meaning, else None."""
    if source.shape == target.shape:
        return source
    if source.ndim != 4 or source.shape[0] != target.shape[0]:
        return None
    if source.shape[1] != target.shape[1]:
        if target.shape[1] == 1:
            # Summing RGB filters gives exactly the response the RGB network had to a grey image
            # (R = G = B); a mean would shrink activations 3x against the pretrained BatchNorm statistics.
            source = source.sum(dim=1, keepdim=True)
        elif source.shape[1] == 1:
            source = source.repeat(1, target.shape[1], 1, 1) / target.shape[1]
        else:
            return None
    if source.shape[2:] != target.shape[2:]:
        # ImageNet's 7x7 stem kernel on a 3x3 stem: resample its shape (antialiased), then shift each
        # filter so its taps keep their sum, i.e. a flat patch gives the response BatchNorm expects.
        source = source.float()
        resized = F.interpolate(source, size=tuple(target.shape[2:]), mode="bilinear", antialias=True, align_corners=False)
        taps = target.shape[2] * target.shape[3]
        source = resized + (source.sum(dim=(2, 3), keepdim=True) - resized.sum(dim=(2, 3), keepdim=True)) / taps
    return source.to(target.dtype)


def load_pretrained_backbone(backbone: ResNetBackbone, path: str | Path) -> dict[str, list[str]]:
    """Copy every usable tensor of the state dict at ``path`` into ``backbone``; returns what did not fit.

    Returns ``{"loaded", "missing", "unexpected", "mismatched"}`` key lists (``unexpected`` holds the
    source keys with no counterpart, the classifier ``fc`` among them). Raises ValueError when nothing
    matched, which means the file is not a ResNet of this kind.
    """
    source = read_state_dict(path)
    target = backbone.state_dict()
    adapted: dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    for name, tensor in source.items():
        local = torchvision_to_local(name)
        if local is None or local not in target:
            unexpected.append(name)
            continue
        value = _adapt(tensor, target[local])
        if value is None:
            mismatched.append(f"{name}: {tuple(tensor.shape)} vs {tuple(target[local].shape)}")
        else:
            adapted[local] = value
    if not adapted:
        raise ValueError(
            f"load_pretrained_backbone: no tensor of {path} fits the backbone; expected torchvision-style ResNet keys "
            f"(conv1.weight, layer1.0.conv1.weight, ...), got e.g. {sorted(source)[:5]}"
        )
    backbone.load_state_dict(adapted, strict=False)
    report = {"loaded": sorted(adapted), "missing": sorted(set(target) - set(adapted)), "unexpected": unexpected, "mismatched": mismatched}
    logger.info("init from %s: %d of %d backbone tensors loaded", path, len(adapted), len(target))
    for kind in ("missing", "unexpected", "mismatched"):
        if report[kind]:
            logger.info("init from %s: %d %s: %s", path, len(report[kind]), kind, ", ".join(report[kind][:8]))
    return report


def _resnet(config: ModelConfig, block: type[BasicBlock | Bottleneck], depths: Sequence[int], init_weights: str | None) -> ExpressionModel:
    backbone = ResNetBackbone(block, depths, config.in_chans, config.input_size)
    if init_weights is not None:
        load_pretrained_backbone(backbone, init_weights)
    return ExpressionModel(backbone, backbone.num_features, config)


@register_model
def resnet18(config: ModelConfig, init_weights: str | None = None) -> ExpressionModel:
    """ResNet-18 (basic blocks 2-2-2-2, 512 features) with the crop-sized stem; ``init_weights``: optional state dict file."""
    return _resnet(config, BasicBlock, (2, 2, 2, 2), init_weights)


@register_model
def resnet50(config: ModelConfig, init_weights: str | None = None) -> ExpressionModel:
    """ResNet-50 (bottlenecks 3-4-6-3, 2048 features) with the crop-sized stem; ``init_weights``: optional state dict file."""
    return _resnet(config, Bottleneck, (3, 4, 6, 3), init_weights)
