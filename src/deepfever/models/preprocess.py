"""Aligned crops -> the normalised tensor a model expects, as its config says."""
from __future__ import annotations

import numpy as np
import torch

from deepfever.models.config import ModelConfig

# ITU-R BT.601 luma, the conversion PIL's "L" mode uses, so photos match the grey FER+ training data.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def crops_to_tensor(crops: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """uint8 crops (N, S, S) grey or (N, S, S, 3) RGB -> float (N, C, S, S), normalised.

    Raises ValueError when the crop size differs from the model's input size: resizing here
    would hide a face pipeline that used the wrong template.
    """
    array = np.asarray(crops)
    if array.ndim == 4 and array.shape[-1] == 3:
        array = array.astype(np.float32) @ _LUMA if config.in_chans == 1 else array.astype(np.float32)
    elif array.ndim == 3:
        array = array.astype(np.float32)
    else:
        raise ValueError(f"crops_to_tensor: expected crops of shape (N, S, S) or (N, S, S, 3), got {array.shape}")
    if array.shape[1:3] != (config.input_size, config.input_size):
        raise ValueError(
            f"crops_to_tensor: crops are {array.shape[1]}x{array.shape[2]} but {config.arch} expects "
            f"{config.input_size}x{config.input_size}; align faces with the model's template"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array)) / 255.0
    tensor = tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)
    if tensor.shape[1] != config.in_chans:
        tensor = tensor.expand(-1, config.in_chans, -1, -1)  # grey crops for an RGB model
    return normalize(tensor, config)


def normalize(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """[0, 1] images -> model input."""
    return (images - config.mean) / config.std
