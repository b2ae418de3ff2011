"""Training checkpoints for exact resume, in safetensors + JSON (no pickle anywhere).

Tensors (model, optimiser buffers, RNG states) go into the ``.safetensors`` file; everything
else (epoch, scheduler counters, optimiser hyper-parameters, config) into the JSON sidecar.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepfever._version import __version__
from deepfever.io.atomic import atomic_write


def save_training_state(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator, extra: dict[str, Any]
) -> None:
    """Write ``path`` (.safetensors) and ``path.json``; both are replaced atomically."""
    tensors = {f"model.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for index, buffers in optimizer_state["state"].items():
        for name, value in buffers.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    document = {
        "deepfever_version": __version__,
        "param_groups": optimizer_state["param_groups"],
        "scheduler": scheduler.state_dict(),
        **extra,
    }
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp))
    with atomic_write(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(document, indent=2))


def load_training_state(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator
) -> dict[str, Any]:
    """Restore everything ``save_training_state`` wrote; returns the JSON document."""
    tensors = load_file(str(path))
    document = json.loads(path.with_suffix(".json").read_text())
    model.load_state_dict({name[6:]: value for name, value in tensors.items() if name.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": document["param_groups"]})
    scheduler.load_state_dict(document["scheduler"])
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    return document
