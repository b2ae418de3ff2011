"""Training checkpoints for exact resume, in safetensors + JSON (no pickle anywhere).

Tensors (model, optimiser buffers) go into the ``.safetensors`` file; everything else (step,
epoch, sampler position, scheduler counters, optimiser hyper-parameters, config, version, the RNG
scheme) into the JSON sidecar. Random numbers are drawn from generators seeded by the seed and
the micro-batch's slot (see ``loop.step_seed``), so the sampler position is the RNG state.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepfever._version import __version__
from deepfever.io.atomic import atomic_write


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, extra: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and ``path.json``; both are replaced atomically, weights first."""
    tensors = {f"model.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for index, buffers in optimizer_state["state"].items():
        for name, value in buffers.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
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


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restore what ``save_training_state`` wrote (onto the model's device); returns the JSON document.

    Checkpoints of version 0.1 (epoch boundaries only, ``rng.*`` tensors) load too; their RNG
    tensors are ignored.
    """
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
    return document


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model inside a training checkpoint (e.g. a run still in progress), in eval mode.

    Its config comes from the checkpoint's run config; the alignment template is not part of a
    checkpoint, so use the result on aligned crops or arrays, not through the face pipeline.
    """
    from deepfever.models import ModelConfig, build_model

    path = Path(path)
    document = json.loads(path.with_suffix(".json").read_text())
    section = document["config"]["model"]
    model = build_model(ModelConfig(arch=section["arch"], embedding_dim=section["embedding_dim"], trained_heads=("emotion",)))
    model.load_state_dict({name[6:]: value for name, value in load_file(str(path)).items() if name.startswith("model.")})
    return model.eval().to(device)
