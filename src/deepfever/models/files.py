"""The model file format without torch: which file a name means, its JSON sidecar and its errors.

What a run needs to know about a model before it decides how to run it (its config and fingerprint),
so a run served by ONNX Runtime from its cache starts without importing torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepfever.errors import DeepFeverError
from deepfever.models.registry import WEIGHTS_DIR, list_pretrained


ONNX_OUTPUTS = ("embedding", "emotion", "valence_arousal")
"""The outputs of an exported ``.onnx`` model, in order (``onnx_export`` writes them, ``onnx_runtime`` reads them)."""


class ModelFileError(DeepFeverError, ValueError):
    """A model file (weights or sidecar) is not what it claims: wrong shapes, non-finite values, bad metadata."""


def sidecar_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def resolve_weights(name_or_path: str | Path) -> Path:
    """Packaged model name (``arch.tag``) or a path to a ``.safetensors`` file -> weights path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".safetensors":
        if not candidate.is_file():
            raise FileNotFoundError(f"load_model: no model file at {candidate}")
        return candidate
    packaged = WEIGHTS_DIR / f"{name_or_path}.safetensors"
    if packaged.is_file():
        return packaged
    raise ValueError(
        f"load_model: {name_or_path!r} is neither a .safetensors path nor a packaged model; "
        f"packaged: {', '.join(list_pretrained()) or 'none'}"
    )


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The sidecar document of a weights file."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"read_model_info: {sidecar} is missing; every .safetensors model needs its .json sidecar")
    try:
        document = json.loads(sidecar.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"read_model_info: {sidecar} is not valid JSON ({error}); copy the sidecar written with the weights") from error
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise ModelFileError(f"read_model_info: {sidecar} has no 'model' object; expected the sidecar written by save_model")
    return document
