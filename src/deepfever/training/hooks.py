"""Hooks: the work around the training steps, each piece owned by one hook (detectron2's idea).

``Trainer`` calls every hook at ``before_train``, ``after_step``, ``after_epoch`` and ``after_train``,
in list order. Here: ``ScheduleHook`` steps the learning rate, ``CheckpointHook`` writes (and
restores) ``checkpoints/last``, ``RunLogHook`` writes ``config.yaml``, ``environment.json``, ``metrics.csv``,
``curves.png`` and ``metrics.json``, ``GpuUtilisationHook`` adds each epoch's mean GPU utilisation.
Evaluation, epoch selection and export are in ``training.selection``. Only rank 0 writes files.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deepfever.config import config_to_dict
from deepfever.io.atomic import atomic_write
from deepfever.io.figures import save_figure
from deepfever.training.monitor import UtilisationMeter
from deepfever.training.state import TrainingStateError, load_training_state, save_training_state

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from deepfever.training.loop import Trainer

logger = logging.getLogger(__name__)


class Hook:
    """Does nothing at every call; a hook overrides the calls it has work for."""

    def before_train(self, trainer: "Trainer") -> None:
        """Called on every process once the run is built, before the first step of this call."""

    def after_step(self, trainer: "Trainer") -> None:
        """Called on every process after each optimiser step."""

    def after_epoch(self, trainer: "Trainer") -> None:
        """Called on every process after the last step of an epoch."""

    def after_train(self, trainer: "Trainer") -> None:
        """Called on every process when this call's steps are done (the run may go on after a resume)."""


class ScheduleHook(Hook):
    """Steps the learning-rate scheduler after every optimiser step; must come before ``CheckpointHook``."""

    def after_step(self, trainer: "Trainer") -> None:
        trainer.scheduler.step()


class CheckpointHook(Hook):
    """Writes ``checkpoints/last`` every N steps, every epoch and where a call stops mid-epoch; ``restore`` resumes.

    Comes last: a checkpoint never gets ahead of the metrics rows and the export it follows.
    """

    def __init__(self, every_steps: int) -> None:
        self.every_steps = every_steps

    def after_step(self, trainer: "Trainer") -> None:
        if self.every_steps and trainer.step % self.every_steps == 0 and trainer.step % trainer.steps_per_epoch:
            self.save(trainer)

    def after_epoch(self, trainer: "Trainer") -> None:
        self.save(trainer)

    def after_train(self, trainer: "Trainer") -> None:
        if trainer.step % trainer.steps_per_epoch:
            self.save(trainer)  # stopped mid-epoch: resume continues from exactly here

    @staticmethod
    def save(trainer: "Trainer") -> None:
        if trainer.context.is_main:
            save_training_state(trainer.last_checkpoint, trainer.model, trainer.optimizer, trainer.scheduler, {
                "step": trainer.step, "epoch": trainer.epoch, "best_accuracy": trainer.best_accuracy,
                "epoch_totals": trainer.epoch_totals, "sampler": trainer.sampler.state_dict(),
                "rng": {"scheme": "per micro-batch seeds from (seed, sampler position x world size + rank)", "seed": trainer.config.seed},
                "world_size": trainer.context.world_size, "config": config_to_dict(trainer.config),
            })
        trainer.context.barrier()

    @staticmethod
    def restore(trainer: "Trainer") -> None:
        """Continue the run from ``checkpoints/last``: weights, optimiser, schedule, sampler, step, selection."""
        document = load_training_state(trainer.last_checkpoint, trainer.model, trainer.optimizer, trainer.scheduler)
        # Checkpoints from before mid-epoch resume hold neither step nor sampler: they end an epoch.
        trainer.step = document.get("step", document["epoch"] * trainer.steps_per_epoch)
        last_step = trainer.config.epochs * trainer.steps_per_epoch
        if trainer.step > last_step:
            raise TrainingStateError(f"train: {trainer.last_checkpoint.with_suffix('.json')}: step {trainer.step} is after "
                                     f"this run's last step ({last_step}); restore the file the run wrote")
        trainer.sampler.load_state_dict(document.get("sampler", {"position": trainer.step * trainer.config.accumulate_steps}))
        trainer.best_accuracy = document["best_accuracy"]
        totals = document.get("epoch_totals", trainer.epoch_totals)
        if set(totals) != set(trainer.epoch_totals):
            raise TrainingStateError(f"train: {trainer.last_checkpoint.with_suffix('.json')}: epoch_totals must hold "
                                     f"{sorted(trainer.epoch_totals)}, got {sorted(totals)}; restore the file the run wrote")
        if trainer.step % trainer.steps_per_epoch:  # at an epoch's end the saved totals are the finished epoch's
            trainer.epoch_totals = totals
        logger.info("resumed from %s at step %d (epoch %d + %d steps)", trainer.last_checkpoint, trainer.step, trainer.epoch,
                    trainer.step % trainer.steps_per_epoch)


class RunLogHook(Hook):
    """The run's record: resolved config and environment at the start, one metrics row per epoch, the final summary.

    Must come after the hooks that fill ``trainer.epoch_scores`` and ``trainer.epoch_extras``. On resume it
    keeps the rows up to the epoch the trainer was restored to.
    """

    def __init__(self, resume: bool) -> None:
        self.resume = resume
        self.rows: list[dict[str, float]] = []

    def before_train(self, trainer: "Trainer") -> None:
        if self.resume:
            self.rows = [row for row in read_metrics(trainer.output / "metrics.csv") if row["epoch"] <= trainer.epoch]
            self.resume = False
        if trainer.context.is_main:
            # Only now that data, model and teacher loaded: a run that cannot start leaves no folder behind.
            trainer.output.mkdir(parents=True, exist_ok=True)
            with atomic_write(trainer.output / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(config_to_dict(trainer.config), sort_keys=False))
            with atomic_write(trainer.output / "environment.json") as tmp:
                tmp.write_text(json.dumps(trainer.environment, indent=2))

    def after_epoch(self, trainer: "Trainer") -> None:
        if not trainer.context.is_main:
            return
        totals = trainer.epoch_totals
        row: dict[str, Any] = {"epoch": trainer.epoch, "lr": trainer.optimizer.param_groups[0]["lr"]}
        row.update({f"train_{name}": totals[name] / max(1, totals["steps"]) for name in trainer.terms})
        row["train_accuracy"] = totals["correct"] / max(1, totals["labelled"])
        row.update(trainer.epoch_scores)
        row.update({"seconds": totals["seconds"],
                    "images_per_second": totals["steps"] * trainer.config.batch_size / max(totals["seconds"], 1e-9),
                    **trainer.epoch_extras})
        logger.info("epoch %d/%d %s", trainer.epoch, trainer.config.epochs, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
        self.rows.append(row)
        write_metrics(self.rows, trainer.output / "metrics.csv")
        plot_curves(self.rows, trainer.output / "curves.png")

    def after_train(self, trainer: "Trainer") -> None:
        if trainer.context.is_main:
            with atomic_write(trainer.output / "metrics.json") as tmp:
                tmp.write_text(json.dumps({"final": self.rows[-1] if self.rows else None, **trainer.result}, indent=2))


class GpuUtilisationHook(Hook):
    """Samples utilisation during the epoch's steps into ``trainer.epoch_extras``.

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
    try:
        with open(path, newline="") as handle:
            rows = [{key: float(value) if value not in ("", None) else math.nan for key, value in row.items()}
                    for row in csv.DictReader(handle)]
        for row in rows:
            row["epoch"] = int(row["epoch"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise TrainingStateError(f"train: {path} is not the metrics table a run writes ({type(error).__name__}: {error}); "
                                 "restore it, or start the run again without --resume (--overwrite)") from error
    return rows


def write_metrics(rows: list[dict[str, float]], path: Path) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    """Every training loss term, and train/valid accuracy, per epoch (drawn without pyplot's global backend)."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(10, 4))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
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
    save_figure(figure, path)
