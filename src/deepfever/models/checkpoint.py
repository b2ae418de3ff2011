"""Model files: weights in ``.safetensors`` (never pickle) plus a JSON sidecar with the config.

The sidecar holds the ``ModelConfig`` (architecture, crop template and size, classes, trained
heads) and provenance (training data, command, metrics, versions), so a model file is self-describing.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from deepfever._version import __version__
from deepfever.labels import EMOTIONS
from deepfever.io.atomic import atomic_write
from deepfever.models.config import HEADS, ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.files import ModelFileError, read_model_info, resolve_weights, sidecar_path
from deepfever.models.registry import DEFAULT_MODEL, architecture_entrypoint, list_architectures, list_pretrained


def save_model(model: ExpressionModel, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the weights path."""
    weights = Path(path).with_suffix(".safetensors")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_write(weights) as tmp:
        save_file(state, str(tmp))
    _write_sidecar(weights, {"model": model.config.to_dict(), "deepfever_version": __version__, **(info or {})})
    return weights


def update_model_info(path: str | Path, section: str, values: dict[str, Any]) -> None:
    """Merge ``values`` into one provenance section of a saved model's sidecar, e.g. a score measured after export.

    The weights and the ``model`` config stay as ``save_model`` wrote them; the sidecar is replaced atomically.
    """
    if section == "model":
        raise ValueError("update_model_info: the 'model' config is written with the weights only; save the model again")
    document = read_model_info(path)
    document.setdefault(section, {}).update(values)
    _write_sidecar(path, document)


def _write_sidecar(weights: str | Path, document: dict[str, Any]) -> None:
    with atomic_write(sidecar_path(weights)) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def check_model_config(data: dict[str, Any], source: str | Path) -> ModelConfig:
    """The config of a sidecar, or ``ModelFileError`` naming the first field that is not what a model needs.

    Class names must be distinct strings, and the 8 AffectNet emotions only in AffectNet order (a
    permuted list would silently swap labels); heads must be known; the template needs 5 (x, y) points.
    """
    def refuse(problem: str) -> ModelFileError:
        return ModelFileError(f"load_model: {source}: {problem}; use a model file written by `deepfever train` or save_model")

    names = data.get("class_names", list(EMOTIONS))
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise refuse(f"class_names must be a non-empty list of names, got {names!r}")
    if len(set(names)) != len(names):
        raise refuse(f"class_names repeats a name: {names}")
    if set(names) == set(EMOTIONS) and list(names) != list(EMOTIONS):
        raise refuse(f"class_names are the AffectNet emotions in another order ({names}); deepfever models use {list(EMOTIONS)}")
    heads = data.get("trained_heads", [])
    if not isinstance(heads, list) or not set(heads) <= set(HEADS):
        raise refuse(f"trained_heads must be a list drawn from {list(HEADS)}, got {heads!r}")
    for key in ("input_size", "embedding_dim", "in_chans"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 1):
            raise refuse(f"{key} must be a positive integer, got {data[key]!r}")
    template = data.get("template")
    if template is not None:
        landmarks = template.get("landmarks") if isinstance(template, dict) else None
        points = np.asarray(landmarks if isinstance(landmarks, list) else None, dtype=object)
        if points.shape != (5, 2) or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in points.ravel()):
            raise refuse(f"template landmarks must be 5 finite (x, y) points, got {template!r}")
    try:
        config = ModelConfig.from_dict(data)
        entrypoint = architecture_entrypoint(config.arch)
    except (TypeError, ValueError) as error:
        raise refuse(str(error)) from error
    try:
        inspect.signature(entrypoint).bind(config, **config.arch_kwargs)
    except TypeError as error:
        raise refuse(f"arch_kwargs {config.arch_kwargs!r} do not fit architecture {config.arch} ({error})") from error
    return config


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a ``.safetensors`` file, read from its header without loading a tensor."""
    try:
        with safe_open(str(weights), "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own SafetensorError (or OSError) for damaged files
        raise ModelFileError(f"load_model: {weights} is not a readable .safetensors file ({error})") from error


def _check_state(config: ModelConfig, expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor | tuple[int, ...]],
                 source: Path) -> None:
    """Every tensor present, of the architecture's shape, and finite (NaN weights give NaN probabilities).

    ``state`` holds tensors, or only their shapes (from the file's header) for the check made before
    the model is allocated, so a sidecar edited to a huge size is refused without allocating it.
    """
    shapes = {name: tuple(value.shape) if torch.is_tensor(value) else value for name, value in state.items()}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{name} {shapes[name]} (expected {shape})" for name, shape in expected.items() if name in state and shapes[name] != shape]
    nonfinite = [name for name, tensor in state.items()
                 if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    problems = [f"{label}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''}" for label, items in
                (("missing tensors", missing), ("unexpected tensors", unexpected), ("wrong shapes", wrong),
                 ("non-finite values in", nonfinite)) if items]
    if problems:
        raise ModelFileError(f"load_model: {source} does not match its sidecar's {config.arch} "
                             f"({'; '.join(problems)}); the weights are damaged or belong to another model")


def build_model(config: ModelConfig) -> ExpressionModel:
    """Instantiate the architecture ``config.arch`` with random weights."""
    return architecture_entrypoint(config.arch)(config, **config.arch_kwargs)


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> ExpressionModel:
    """Load weights and config; the model comes back in eval mode on ``device``."""
    weights = resolve_weights(name_or_path)
    info = read_model_info(weights)
    config = check_model_config(info["model"], sidecar_path(weights))
    with torch.device("meta"):  # shapes only: nothing the sidecar sizes is allocated before it matches the file
        expected = {name: tuple(tensor.shape) for name, tensor in build_model(config).state_dict().items()}
    _check_state(config, expected, _stored_shapes(weights), weights)
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises its own SafetensorError (or OSError) for damaged files
        raise ModelFileError(f"load_model: {weights} is not a readable .safetensors file ({error})") from error
    _check_state(config, expected, state, weights)
    model = build_model(config)
    model.load_state_dict(state)
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
