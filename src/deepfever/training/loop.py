"""The supervised training loop: soft-label cross-entropy, augmentation, cosine schedule, selection.

One function, ``train(config)``, writes everything a run produces into ``config.output_dir``:
``config.yaml`` (resolved), ``environment.json`` (versions, device), ``metrics.csv`` and
``curves.png`` (per epoch), ``checkpoints/last.safetensors`` (exact resume) and the selected
model ``<export_name>.safetensors`` + ``.json`` with its validation metrics.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from deepfever._version import __version__
from deepfever.config import config_to_dict
from deepfever.data.arrays import load_grey_array
from deepfever.data.formats import read_dataset
from deepfever.data.labels import EMOTIONS
from deepfever.evaluation.metrics import classification_summary
from deepfever.evaluation.predict import predict_arrays
from deepfever.io.atomic import atomic_write
from deepfever.models import ModelConfig, build_model, save_model
from deepfever.models.preprocess import normalize
from deepfever.training.augment import augment_batch
from deepfever.training.config import TrainConfig
from deepfever.training.losses import SoftCrossEntropy
from deepfever.training.state import load_training_state, save_training_state

logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "valid_accuracy", "valid_macro_f1", "seconds", "images_per_second")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and every loss term."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def environment_report(device: torch.device) -> dict[str, Any]:
    import numpy

    return {
        "deepfever": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }


def _load_split(config: TrainConfig, split: str, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, S, S) uint8, soft targets (N, 8), majority labels (N,) of one split."""
    options = {"keep_ambiguous": config.data.keep_ambiguous} if split == config.data.train_split else {}
    samples = read_dataset(config.data.format, config.data.root, **options)[split].samples
    if limit:
        samples = samples[:limit]
    images = load_grey_array(samples, 48)
    soft = np.stack([s.soft_label if s.soft_label is not None else np.eye(8, dtype=np.float32)[s.label] for s in samples])
    labels = np.array([s.label for s in samples], dtype=np.int64)
    return images, soft.astype(np.float32), labels


def _schedule(config: TrainConfig, steps_per_epoch: int):
    warmup = max(1, int(config.optim.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, config.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return config.optim.min_lr_ratio + (1 - config.optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in rows], marker="o")
    loss_axis.set(title="training loss", xlabel="epoch", ylabel="soft cross-entropy")
    accuracy_axis.plot(epochs, [row["train_accuracy"] for row in rows], marker="o", label="train (augmented)")
    accuracy_axis.plot(epochs, [row["valid_accuracy"] for row in rows], marker="o", label="valid (majority)")
    accuracy_axis.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    accuracy_axis.legend()
    figure.tight_layout()
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _write_metrics(rows: list[dict[str, float]], path: Path) -> None:
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def _export(model: torch.nn.Module, model_config: ModelConfig, path: Path, info: dict[str, Any]) -> None:
    """Save the selected model with the alignment template that matches the training framing."""
    from deepfever.faces.template import load_default_template

    model.config = replace(model_config, template=load_default_template().to_dict())
    save_model(model, path, info)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, stop_after_epochs: int = 0) -> dict[str, Any]:
    """Train, select on the validation split, export the best model; returns the final metrics.

    ``stop_after_epochs`` > 0 ends this call after that many epochs (a time-boxed job); the
    schedule still follows ``config.epochs``, so ``resume=True`` later continues exactly.
    """
    output = Path(config.output_dir)
    last_checkpoint = output / "checkpoints" / "last.safetensors"
    if resume and not last_checkpoint.is_file():
        raise FileNotFoundError(f"train: --resume asked for {last_checkpoint}, which does not exist")
    if not resume and output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"train: {output} already holds a run; pass --resume to continue it or --overwrite to replace it")
    output.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    with atomic_write(output / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    with atomic_write(output / "environment.json") as tmp:
        tmp.write_text(json.dumps(environment_report(device), indent=2))

    train_images, train_soft, _ = _load_split(config, config.data.train_split, config.data.limit_train)
    valid_images, _, valid_labels = _load_split(config, config.data.valid_split, config.data.limit_valid)
    logger.info("train %d images, valid %d images, device %s", len(train_images), len(valid_images), device)

    model_config = ModelConfig(
        arch=config.model.arch,
        embedding_dim=config.model.embedding_dim,
        trained_heads=("emotion",),
    )
    model = build_model(model_config).to(device).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.optim.lr, momentum=config.optim.momentum, nesterov=True,
    )
    steps_per_epoch = len(train_images) // config.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps_per_epoch))
    generator = torch.Generator().manual_seed(config.seed)
    loss_function = SoftCrossEntropy()

    start_epoch, best_accuracy = 0, -1.0
    rows = _read_metrics(output / "metrics.csv")
    if resume:
        document = load_training_state(last_checkpoint, model, optimizer, scheduler, generator)
        start_epoch, best_accuracy = document["epoch"], document["best_accuracy"]
        rows = [row for row in rows if row["epoch"] <= start_epoch]
        logger.info("resumed from %s at epoch %d", last_checkpoint, start_epoch)

    images_all = torch.from_numpy(train_images)
    soft_all = torch.from_numpy(train_soft)
    use_bf16 = device.type == "cuda"
    last_epoch = min(config.epochs, start_epoch + stop_after_epochs) if stop_after_epochs else config.epochs
    for epoch in range(start_epoch, last_epoch):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(images_all), generator=generator)
        total_loss, total_correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            images = images_all[index].unsqueeze(1).float().div_(255.0)
            images = augment_batch(images, config.augment, generator)
            images = normalize(images, model_config).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            target = soft_all[index].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(images)["emotion"]
            loss = loss_function(logits, target)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"train: loss is {loss.item()} at epoch {epoch + 1}, step {step}: {{'soft_ce': {loss.item()}}}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            total_correct += int((logits.argmax(1) == target.argmax(1)).sum())
            seen += len(index)
        seconds = time.perf_counter() - started
        prediction = predict_arrays(model, valid_images, flip_tta=config.eval_flip_tta, device=device)
        summary = classification_summary(valid_labels, prediction["probabilities"].argmax(1), EMOTIONS)
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": total_loss / max(1, seen),
            "train_accuracy": total_correct / max(1, seen),
            "valid_accuracy": summary["accuracy"],
            "valid_macro_f1": summary["macro_f1"],
            "seconds": seconds,
            "images_per_second": seen / seconds,
        }
        rows.append(row)
        logger.info("epoch %d/%d %s", epoch + 1, config.epochs, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
        if epoch + 1 >= config.select_from_epoch and summary["accuracy"] > best_accuracy:
            best_accuracy = summary["accuracy"]
            _export(model, model_config, output / f"{config.export_name}.safetensors", {
                "training": {
                    "data": f"{config.data.format}:{config.data.train_split} ({len(train_images)} images, soft vote targets)",
                    "selected_on": f"{config.data.format}:{config.data.valid_split}, epoch {epoch + 1} of {config.epochs}",
                    "config": config_to_dict(config),
                    "command": environment_report(device)["command"],
                    "environment": environment_report(device),
                },
                "metrics": {f"{config.data.format}_{config.data.valid_split}": {k: summary[k] for k in ("n", "accuracy", "macro_f1")}, "flip_tta": config.eval_flip_tta},
            })
        _write_metrics(rows, output / "metrics.csv")
        _plot_curves(rows, output / "curves.png")
        save_training_state(last_checkpoint, model, optimizer, scheduler, generator, {
            "epoch": epoch + 1, "best_accuracy": best_accuracy, "config": config_to_dict(config),
        })
    result = {"best_valid_accuracy": best_accuracy, "epochs_done": last_epoch, "epochs": config.epochs, "output_dir": str(output)}
    with atomic_write(output / "metrics.json") as tmp:
        tmp.write_text(json.dumps({"final": rows[-1] if rows else None, **result}, indent=2))
    return result
