"""Model files: weights in ``.safetensors`` (never pickle) plus a JSON sidecar with the config.

The sidecar holds the ``ModelConfig`` (architecture, crop template and size, classes, trained
heads) and provenance (training data, command, metrics, versions), so a model file is self-describing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepfever._version import __version__
from deepfever.io.atomic import atomic_write
from deepfever.models.config import ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.registry import DEFAULT_MODEL, WEIGHTS_DIR, architecture_entrypoint, list_architectures, list_pretrained


def sidecar_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_model(model: ExpressionModel, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the weights path."""
    weights = Path(path).with_suffix(".safetensors")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_write(weights) as tmp:
        save_file(state, str(tmp))
    document = {"model": model.config.to_dict(), "deepfever_version": __version__, **(info or {})}
    with atomic_write(sidecar_path(weights)) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    return weights


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The sidecar document of a weights file."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"read_model_info: {sidecar} is missing; every .safetensors model needs its .json sidecar")
    return json.loads(sidecar.read_text())


def build_model(config: ModelConfig) -> ExpressionModel:
    """Instantiate the architecture ``config.arch`` with random weights."""
    return architecture_entrypoint(config.arch)(config, **config.arch_kwargs)


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


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> ExpressionModel:
    """Load weights and config; the model comes back in eval mode on ``device``."""
    weights = resolve_weights(name_or_path)
    info = read_model_info(weights)
    model = build_model(ModelConfig.from_dict(info["model"]))
    model.load_state_dict(load_file(str(weights)))
    model.info = info  # provenance travels with the loaded model
    return model.eval().to(device)


def create_model(name: str, **config_overrides: Any) -> ExpressionModel:
    """A model by registry name: an architecture (random init) or packaged ``arch.tag`` weights."""
    if name in list_architectures():
        return build_model(ModelConfig(arch=name, **config_overrides))
    if name not in list_pretrained():
        raise ValueError(
            f"create_model: unknown model {name!r}; architectures: {', '.join(list_architectures())}; "
            f"pretrained: {', '.join(list_pretrained()) or 'none'}"
        )
    if config_overrides:
        raise ValueError(f"create_model: pretrained {name!r} carries its own config; got overrides {sorted(config_overrides)}")
    return load_model(name)
