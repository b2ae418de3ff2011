"""Training checkpoints for exact resume, in safetensors + JSON (no pickle anywhere).

Tensors (model, optimiser buffers) go into the ``.safetensors`` file; everything else (step,
epoch, sampler position, scheduler counters, optimiser hyper-parameters, config, version, the RNG
scheme) into the JSON sidecar. Random numbers are drawn from generators seeded by the seed and
the micro-batch's slot (see ``loop.step_seed``), so the sampler position is the RNG state.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepfever._version import __version__
from deepfever.errors import DeepFeverError
from deepfever.io.atomic import atomic_write


class TrainingStateError(DeepFeverError, ValueError):
    """A training checkpoint is damaged or was edited into something a run cannot continue from."""


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


def read_training_document(path: Path) -> dict[str, Any]:
    """The JSON half of the checkpoint ``path``, checked field by field before anything is restored from it."""
    sidecar = Path(path).with_suffix(".json")

    def refuse(problem: str) -> TrainingStateError:
        return TrainingStateError(f"train: {sidecar}: {problem}; restore the file the run wrote, or start the run again "
                                  "without --resume (--overwrite)")

    try:
        document = json.loads(sidecar.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise refuse(f"not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise refuse("expected a JSON object")
    counts = {"epoch": document.get("epoch"), "step": document.get("step", 0),
              "sampler.position": (document.get("sampler") or {"position": 0}).get("position")}
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise refuse(f"{name} must be a whole number >= 0, got {value!r}")
    best = document.get("best_accuracy")
    if not isinstance(best, (int, float)) or isinstance(best, bool) or not (best == -1 or 0 <= best <= 1):
        raise refuse(f"best_accuracy must be -1 (nothing exported yet) or an accuracy in [0, 1], got {best!r}")
    totals = document.get("epoch_totals", {})
    if not isinstance(totals, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in totals.values()):
        raise refuse(f"epoch_totals must map names to finite numbers, got {totals!r}")
    groups = document.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        raise refuse(f"param_groups must be the optimiser's list of parameter groups, got {groups!r}")
    for key in ("scheduler", "config"):
        if not isinstance(document.get(key, {}), dict):
            raise refuse(f"{key} must be a JSON object, got {document[key]!r}")
    return document


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restore what ``save_training_state`` wrote (onto the model's device); returns the JSON document.

    Checkpoints of version 0.1 (epoch boundaries only, ``rng.*`` tensors) load too; their RNG
    tensors are ignored. A damaged or mismatched checkpoint raises ``TrainingStateError`` naming the file.
    """
    document = read_training_document(path)
    _check_like(document["param_groups"], optimizer.state_dict()["param_groups"], "param_groups", path.with_suffix(".json"))
    _check_like(document.get("scheduler", {}), scheduler.state_dict(), "scheduler", path.with_suffix(".json"))
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError (or OSError) for damaged files
        raise TrainingStateError(f"train: {path} is not a readable .safetensors checkpoint ({error}); restore it, "
                                 "or start the run again without --resume (--overwrite)") from error
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    try:
        model.load_state_dict({name[6:]: value for name, value in tensors.items() if name.startswith("model.")})
        optimizer.load_state_dict({"state": state, "param_groups": document["param_groups"]})
        scheduler.load_state_dict(document["scheduler"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:
        message = " ".join(str(error).split())[:300]
        raise TrainingStateError(f"train: {path} does not fit this run's model and optimiser ({message}); restore the "
                                 "checkpoint the run wrote, or start again without --resume (--overwrite)") from error
    return document


def _check_like(stored: Any, fresh: Any, where: str, source: Path) -> None:
    """``stored`` has the structure of what this run's optimiser or scheduler writes: objects where it has
    objects, lists of the same length, finite numbers where it has numbers, the same kinds elsewhere; else
    ``TrainingStateError`` naming the field. Keys only one side has are left to torch (versions differ).

    The optimiser and scheduler take their state without looking at it, so an edited value would only
    fail (or turn the loss into NaN) steps later, far from the file that caused it.
    """
    def refuse(problem: str) -> TrainingStateError:
        return TrainingStateError(f"train: {source}: {where} {problem}; restore the file the run wrote, or start the run "
                                  "again without --resume (--overwrite)")

    if isinstance(fresh, dict):
        if not isinstance(stored, dict):
            raise refuse(f"must be an object, got {stored!r}"[:300])
        for key, value in fresh.items():
            if key in stored:
                _check_like(stored[key], value, f"{where}.{key}", source)
    elif isinstance(fresh, (list, tuple)):
        if not isinstance(stored, (list, tuple)) or len(stored) != len(fresh):
            raise refuse(f"must be a list of {len(fresh)} values, got {stored!r}"[:300])
        for position, (item, value) in enumerate(zip(stored, fresh)):
            _check_like(item, value, f"{where}[{position}]", source)
    elif isinstance(fresh, bool) or fresh is None:
        if not isinstance(stored, bool) and stored is not None:
            raise refuse(f"must be true, false or null, got {stored!r}")
    elif isinstance(fresh, (int, float)):
        if isinstance(stored, bool) or not isinstance(stored, (int, float)) or not math.isfinite(stored):
            raise refuse(f"must be a finite number, got {stored!r}")
    elif isinstance(fresh, str) and not isinstance(stored, str):
        raise refuse(f"must be a string, got {stored!r}")


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model inside a training checkpoint (e.g. a run still in progress), in eval mode.

    Its config comes from the checkpoint's run config; the alignment template is not part of a
    checkpoint, so use the result on aligned crops or arrays, not through the face pipeline.
    """
    from deepfever.models import ModelConfig, build_model

    path = Path(path)
    section = read_training_document(path)["config"]["model"]
    model = build_model(ModelConfig(arch=section["arch"], embedding_dim=section["embedding_dim"], trained_heads=("emotion",)))
    model.load_state_dict({name[6:]: value for name, value in load_file(str(path)).items() if name.startswith("model.")})
    return model.eval().to(device)
