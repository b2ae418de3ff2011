"""Fold BatchNorm into the preceding convolution or linear layer for faster inference.

Inference-only: a fused model computes the same function in eval mode with fewer passes over
memory, which matters most on small CPU models.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def _fold(weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    fused_bias = (bias if bias is not None else torch.zeros_like(norm.running_mean)) - norm.running_mean
    return weight * scale.view(shape), fused_bias * scale + norm.bias


@torch.no_grad()
def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every (Conv2d|Linear, BatchNorm) pair in a Sequential folded."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (name, layer), (next_name, norm) in zip(children, children[1:]):
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and isinstance(norm, (nn.BatchNorm2d, nn.BatchNorm1d)):
                weight, bias = _fold(layer.weight, layer.bias, norm)
                layer.weight = nn.Parameter(weight)
                layer.bias = nn.Parameter(bias)
                module._modules[next_name] = nn.Identity()
    return fused
