"""Aligned crops -> the normalised tensor a model expects, as its config says; one grey conversion for all."""
from __future__ import annotations

import cv2
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from deepfever.io.images import as_uint8_pixels
from deepfever.models.config import ModelConfig

if TYPE_CHECKING:  # the numpy path (ONNX Runtime) must not import torch
    import torch

ArrayOrTensor = TypeVar("ArrayOrTensor")


def to_grey(crops: np.ndarray) -> np.ndarray:
    """RGB uint8 crops (..., S, S, 3) -> grey uint8 (..., S, S): BT.601 luma rounded like OpenCV's.

    The one grey conversion of the toolkit (``defaults.GREY``): dataset caches store crops made by it
    and inference converts RGB crops for one-channel models by it, so a face gives the same pixels
    whether it reaches the model through a cache or through the Extractor.
    """
    array = np.ascontiguousarray(crops, dtype=np.uint8)
    if array.ndim < 3 or array.shape[-1] != 3:
        raise ValueError(f"to_grey: expected RGB crops (..., S, S, 3), got shape {array.shape}")
    flat = array.reshape(-1, array.shape[-2], 3)  # one tall image: one OpenCV call for any number of crops
    return cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(array.shape[:-1])


def crops_to_array(crops: np.ndarray, config: ModelConfig, caller: str = "crops_to_tensor") -> np.ndarray:
    """Crops (N, S, S) grey or (N, S, S, 3) RGB -> float32 (N, C, S, S), normalised: what every backend runs on.

    Pixel values pass the one converter (``as_uint8_pixels``: uint8, uint16 scaled, floats refused), as
    images do, so a crop means the same pixels whichever entry point it reaches. Raises ValueError when
    the crop size differs from the model's input size: resizing here would hide a face pipeline that
    used the wrong template. ``caller`` names the entry point in errors.
    """
    array = as_uint8_pixels(np.asarray(crops), caller)
    if array.ndim == 4 and array.shape[-1] == 3:
        array = to_grey(array) if config.in_chans == 1 else array
    elif array.ndim != 3:
        raise ValueError(f"crops_to_tensor: expected crops of shape (N, S, S) or (N, S, S, 3), got {array.shape}")
    if array.shape[1:3] != (config.input_size, config.input_size):
        raise ValueError(
            f"crops_to_tensor: crops are {array.shape[1]}x{array.shape[2]} but {config.arch} expects "
            f"{config.input_size}x{config.input_size}; align faces with the model's template"
        )
    images = np.asarray(array, dtype=np.float32) / 255.0
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    if images.shape[1] != config.in_chans:
        images = np.broadcast_to(images, (len(images), config.in_chans, *images.shape[2:]))  # grey crops for an RGB model
    return np.ascontiguousarray(normalize(images, config))


def crops_to_tensor(crops: np.ndarray, config: ModelConfig, caller: str = "crops_to_tensor") -> torch.Tensor:
    """``crops_to_array`` as a torch tensor (the torch backend's and training's input)."""
    import torch

    return torch.from_numpy(crops_to_array(crops, config, caller))


def normalize(images: ArrayOrTensor, config: ModelConfig) -> ArrayOrTensor:
    """[0, 1] images (a float32 array or tensor) -> model input, in float32 either way."""
    return (images - config.mean) / config.std
