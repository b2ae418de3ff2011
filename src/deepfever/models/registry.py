"""Model registry: tiny named entrypoints, one builder (the timm pattern).

Architectures register as ``arch`` (random init); pretrained weights as ``arch.tag`` pointing at a
packaged ``.safetensors`` file whose JSON sidecar carries the model config.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # annotations only: reading the registry's names must not import torch
    from torch import nn

from deepfever.defaults import MODEL as DEFAULT_MODEL

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def register_model(function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register an entrypoint under its function name."""
    if function.__name__ in _ARCHITECTURES:
        raise ValueError(f"model {function.__name__!r} is registered twice")
    _ARCHITECTURES[function.__name__] = function
    return function


def list_architectures() -> list[str]:
    _import_architectures()
    return sorted(_ARCHITECTURES)


def list_pretrained() -> list[str]:
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.safetensors"))


def list_models() -> list[str]:
    """Every name ``create_model`` accepts: architectures and packaged pretrained weights."""
    return sorted(set(list_architectures()) | set(list_pretrained()))


def architecture_entrypoint(name: str) -> Callable[..., nn.Module]:
    _import_architectures()
    if name not in _ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[name]


def _import_architectures() -> None:
    import deepfever.models.fevernet  # noqa: F401  (registration side effect)
    import deepfever.models.resnet  # noqa: F401
    import deepfever.models.timm_backbone  # noqa: F401
