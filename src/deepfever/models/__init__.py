"""Models: a registry of architectures, packaged pretrained weights and the model file format.

Importing this package is cheap: torch loads on first attribute access, so a light submodule such as
``deepfever.models.vectors`` does not pay for every architecture.
"""
from __future__ import annotations

from deepfever._lazy import lazy_attributes

_LAZY = {
    "build_model": "deepfever.models.checkpoint",
    "create_model": "deepfever.models.checkpoint",
    "load_model": "deepfever.models.checkpoint",
    "read_model_info": "deepfever.models.checkpoint",
    "save_model": "deepfever.models.checkpoint",
    "HEADS": "deepfever.models.config",
    "ModelConfig": "deepfever.models.config",
    "ExpressionModel": "deepfever.models.expression",
    "DEFAULT_MODEL": "deepfever.models.registry",
    "list_architectures": "deepfever.models.registry",
    "list_models": "deepfever.models.registry",
    "list_pretrained": "deepfever.models.registry",
    "register_model": "deepfever.models.registry",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
