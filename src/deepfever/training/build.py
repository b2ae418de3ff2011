"""Everything a run is built from before its first step: output checks, data, sampler, optimiser, schedule.

``Trainer`` calls these in a fixed order (the order is part of the numerics: the seeded model
initialisation comes after the data), then hands the pieces to its hooks.
"""
from __future__ import annotations

import json
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from deepfever._version import __version__, source_revision
from deepfever.config import config_to_dict
from deepfever.errors import OVERWRITE, RESUME, OptionMessage
from deepfever.data.formats import NO_LABEL
from deepfever.data.sampling import MixingSampler, allocate
from deepfever.data.splits import SplitArrays, load_split
from deepfever.models import HEADS, ExpressionModel, ModelConfig
from deepfever.training.config import ModelSection, OptimSection, TrainConfig
from deepfever.training.data import (SourceArrays, class_balanced_weights, class_prior, load_primary, load_source,
                                     steps_per_epoch)
from deepfever.models.distributed import DistributedContext
from deepfever.training.state import read_training_document
from deepfever.training.task import build_initial_model, trained_heads


def environment_report(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """The code and machine a run started on, recorded beside its outputs and in the exported model."""
    return {
        "deepfever": __version__,
        "deepfever_revision": source_revision(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "world_size": world_size,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {key: value for name, child in tree.items() for key, value in _flatten(child, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): tree}


def check_output_dir(config: TrainConfig, checkpoint: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a run that would mix with or replace another one in ``output_dir``."""
    output = Path(config.output_dir)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"train: output_dir {output} is a file, not a folder; set output_dir to a new or existing run folder")
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(OptionMessage("train: ", RESUME, f" asked for {checkpoint}, which does not exist"))
    if resume:
        _check_same_config(config, checkpoint)
    if not resume and output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(OptionMessage(f"train: {output} already holds a run; pass ", RESUME, " to continue it or ", OVERWRITE,
                                            " to replace it"))


def _check_same_config(config: TrainConfig, checkpoint: Path) -> None:
    """``--resume`` continues the run the checkpoint belongs to; another config would silently mix two runs."""
    recorded = read_training_document(checkpoint).get("config")
    if recorded is None:
        return  # checkpoints written before configs were recorded in them
    mine, theirs = _flatten(config_to_dict(config)), _flatten(json.loads(json.dumps(recorded)))
    differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
    if differing:
        raise ValueError(f"train: --resume with a config that differs from the checkpoint's in {', '.join(differing)}; "
                         "resume with the run's own config.yaml, or start a new output_dir")


@dataclass(frozen=True)
class RunData:
    """The run's training sources, the split that picks the epoch and the split reported once."""

    sources: list[SourceArrays]
    valid: SplitArrays
    selection_name: str
    """``holdout`` (the held-out slice of the training split) or ``valid_split`` itself."""
    selection: SplitArrays
    balance: np.ndarray | None
    """Class-aware sampling weights of the primary source's images, or None."""
    batch_prior: np.ndarray | None
    """The class distribution of the primary source's draws: the prior the emotion terms see."""
    model_config: ModelConfig


def load_run_data(config: TrainConfig) -> RunData:
    """Load every source and the validation split, and derive the model config (priors included) from them."""
    size, in_chans = config.model.input_size, config.model.in_chans
    primary, held_out = load_primary(config.data, size, in_chans)
    sources = [primary] + [load_source(source, size, config.seed, in_chans) for source in config.sources]
    prior = class_prior(primary.soft) if config.loss.logit_adjust else None
    balance = class_balanced_weights(primary.soft, config.data.class_balance) if config.data.class_balance else None
    batch_prior = None
    if not np.isnan(primary.soft[:, 0]).all():
        batch_prior = class_prior(primary.soft, balance)
    model_config = ModelConfig(
        arch=config.model.arch, embedding_dim=config.model.embedding_dim, arch_kwargs=dict(config.model.arch_kwargs),
        trained_heads=trained_heads(config.loss), input_size=size, in_chans=in_chans,
        class_prior=tuple(float(p) for p in prior) if prior is not None else None,
        logit_adjustment=config.loss.logit_adjust, output_prior=config.loss.output_prior if prior is not None else "train",
    )
    valid = _load_valid(config, size, in_chans)
    selection_name = "holdout" if held_out is not None else config.data.valid_split
    return RunData(sources, valid, selection_name, held_out if held_out is not None else valid, balance, batch_prior,
                   model_config)


def _load_valid(config: TrainConfig, size: int, in_chans: int) -> SplitArrays:
    """The validation split's majority-labelled crops, through the training data's face path."""
    data = config.data
    options = {"keep_ambiguous": data.keep_ambiguous} if data.format == "ferplus" else {}
    valid = load_split(data.format, data.root, options, data.valid_split, data.detector, data.fallback, size, in_chans,
                       data.limit_valid)
    return valid.take(np.flatnonzero(valid.labels != NO_LABEL))


def micro_batch_size(config: TrainConfig, context: DistributedContext) -> int:
    """Images in each process's micro-batch; ``batch_size`` must split evenly over processes and accumulation steps."""
    per_micro_batch, remainder = divmod(config.batch_size, context.world_size * config.accumulate_steps)
    if remainder or per_micro_batch < 1:
        raise ValueError(
            f"train: batch_size {config.batch_size} must be a multiple of processes x accumulate_steps "
            f"({context.world_size} x {config.accumulate_steps})"
        )
    return per_micro_batch


def build_sampler(config: TrainConfig, data: RunData, context: DistributedContext) -> tuple[MixingSampler, int]:
    """This process's sampler of mixed micro-batches, and the optimiser steps per epoch."""
    per_micro_batch = micro_batch_size(config, context)
    ratios = [config.data.ratio] + [source.ratio for source in config.sources]
    counts = allocate(per_micro_batch, ratios, [source.unit_size for source in data.sources])
    sampler = MixingSampler([source.units for source in data.sources], counts, config.seed, context.rank, context.world_size,
                            weights=[data.balance] + [None] * len(config.sources))
    steps = steps_per_epoch(data.sources[0], counts[0] * context.world_size * config.accumulate_steps, config.steps_per_epoch)
    return sampler, steps


def build_student(model_config: ModelConfig, section: ModelSection, device: torch.device) -> tuple[ExpressionModel, dict[str, Any] | None]:
    """The model to train (seeded by the caller), channels-last on ``device``; returns it and where its weights came from."""
    model, initialised_from = build_initial_model(model_config, section)
    model = model.to(device).to(memory_format=torch.channels_last)
    for head in HEADS:  # an untrained head gets no gradient; freezing it also keeps DDP from waiting for one
        getattr(model, head).requires_grad_(head in model_config.trained_heads)
    return model, initialised_from


def wrap_for_training(model: torch.nn.Module, context: DistributedContext, compile: bool) -> torch.nn.Module:
    """What the task calls: the model in DDP when there are several processes, compiled if asked; hooks use ``model``."""
    if context.distributed:
        device = next(model.parameters()).device
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile else model


def build_optimizer(model: torch.nn.Module, optim: OptimSection) -> torch.optim.SGD:
    """Nesterov SGD; weight decay on weight matrices and kernels only, not on biases and norms."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=optim.lr, momentum=optim.momentum, nesterov=True)


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate multiplier of each optimiser step: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    warmup = max(1, int(config.optim.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, config.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return config.optim.min_lr_ratio + (1 - config.optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
