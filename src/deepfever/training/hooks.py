"""Hooks the training loop calls after each optimiser step and each epoch (rank 0 writes files).

``EvaluationHook`` scores the validation split, exports the best model and writes ``metrics.csv``
and ``curves.png``; ``CheckpointHook`` writes ``checkpoints/last`` every N steps and every epoch;
``GpuUtilisationHook`` adds each epoch's mean GPU utilisation to its metrics row.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from deepfever.io.atomic import atomic_write
from deepfever.training.monitor import UtilisationMeter

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from deepfever.training.loop import Trainer


class Hook:
    def after_step(self, trainer: "Trainer") -> None:
        """Called on every process after each optimiser step."""

    def after_epoch(self, trainer: "Trainer") -> None:
        """Called on every process after the last step of an epoch."""


class EvaluationHook(Hook):
    def after_epoch(self, trainer: "Trainer") -> None:
        if trainer.context.is_main:
            row = trainer.evaluate_and_select()
            trainer.rows.append(row)
            write_metrics(trainer.rows, trainer.output / "metrics.csv")
            plot_curves(trainer.rows, trainer.output / "curves.png")
        trainer.best_accuracy = trainer.context.broadcast(trainer.best_accuracy)


class CheckpointHook(Hook):
    def __init__(self, every_steps: int) -> None:
        self.every_steps = every_steps

    def after_step(self, trainer: "Trainer") -> None:
        if self.every_steps and trainer.step % self.every_steps == 0 and trainer.step % trainer.steps_per_epoch:
            trainer.save_checkpoint()

    def after_epoch(self, trainer: "Trainer") -> None:
        trainer.save_checkpoint()


class GpuUtilisationHook(Hook):
    """Samples utilisation during the epoch's steps; must run before ``EvaluationHook``.

    The first step of an epoch is skipped: NVML's last sample period then still covers evaluation.
    """

    def __init__(self, meter: UtilisationMeter) -> None:
        self.meter = meter

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.steps_per_epoch == 1 or trainer.step % trainer.steps_per_epoch != 1:
            self.meter.maybe_sample()

    def after_epoch(self, trainer: "Trainer") -> None:
        mean = self.meter.take_mean()
        if mean is not None:  # no answer from NVML or nvidia-smi: leave the column out
            trainer.epoch_extras["gpu_utilisation_percent"] = mean


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv``; a column an older run did not write reads as NaN."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = [{key: float(value) if value not in ("", None) else math.nan for key, value in row.items()} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows


def write_metrics(rows: list[dict[str, float]], path: Path) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    """Every training loss term, and train/valid accuracy, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key in rows[-1]:
        if key.startswith("train_") and key != "train_accuracy":
            loss_axis.plot(epochs, [row.get(key, math.nan) for row in rows], marker="o", label=key[6:])
    loss_axis.set(title="training loss terms", xlabel="epoch")
    loss_axis.legend()
    accuracy_axis.plot(epochs, [row["train_accuracy"] for row in rows], marker="o", label="train (augmented)")
    for key in rows[-1]:  # the epoch-scoring split: valid, or the held-out slice of the training split
        if key.endswith("_accuracy") and not key.startswith("train_"):
            accuracy_axis.plot(epochs, [row.get(key, math.nan) for row in rows], marker="o", label=key[: -len("_accuracy")])
    accuracy_axis.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    accuracy_axis.legend()
    figure.tight_layout()
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
