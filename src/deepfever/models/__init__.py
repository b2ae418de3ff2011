"""Models: a registry of architectures, packaged pretrained weights and the model file format."""
from deepfever.models.checkpoint import build_model, create_model, load_model, read_model_info, save_model
from deepfever.models.config import HEADS, ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.registry import DEFAULT_MODEL, list_architectures, list_models, list_pretrained, register_model

__all__ = [
    "DEFAULT_MODEL", "HEADS", "ExpressionModel", "ModelConfig", "build_model", "create_model", "list_architectures",
    "list_models", "list_pretrained", "load_model", "read_model_info", "register_model", "save_model",
]
