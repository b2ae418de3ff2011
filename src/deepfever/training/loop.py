"""The training loop: mixed batches, a multi-task objective, hooks, exact resume, 1..N processes.

``train(config)`` writes everything a run produces into ``config.output_dir`` (rank 0 only):
``config.yaml`` (resolved), ``environment.json`` (versions, device, world size), ``metrics.csv``
and ``curves.png`` (per epoch, every loss term), ``checkpoints/last.safetensors`` (exact resume,
also mid-epoch) and the selected model ``<export_name>.safetensors`` + ``.json`` with its
validation metrics and training lineage. Under ``torchrun`` the same call trains with DDP.

``Trainer`` only runs optimiser steps; the hooks in ``training.hooks`` and ``training.selection``
own the rest (schedule, checkpoints and resume, evaluation, selection, export, logs, GPU monitoring).

Example (one process, or ``torchrun --nproc-per-node 4 -m deepfever train ...``):
    >>> from deepfever.config import load_config                       # doctest: +SKIP
    >>> train(load_config(TrainConfig, "configs/ferplus.yaml", ["epochs=1"]))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfever.models.preprocess import normalize
from deepfever.training.augment import augment_batch
from deepfever.training.build import (build_optimizer, build_sampler, build_student, check_output_dir, environment_report,
                                      load_run_data, lr_factor, micro_batch_size, wrap_for_training)
from deepfever.training.config import TrainConfig
from deepfever.training.data import assemble, has_labels
from deepfever.models.distributed import DistributedContext, init_distributed
from deepfever.training.hooks import CheckpointHook, GpuUtilisationHook, Hook, RunLogHook, ScheduleHook
from deepfever.training.monitor import UtilisationMeter, read_gpu_utilisation
from deepfever.training.selection import EvaluationHook, ExportHook
from deepfever.training.task import ExpressionTask, active_terms, load_teacher

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and every loss term."""


def step_seed(seed: int, slot: int) -> int:
    """Seed of the random numbers (augmentation, dropout) of one slot of micro-batches.

    ``slot = sampler position x world size + rank`` numbers the per-process slices of the data
    stream, so N processes draw what one process with N accumulation steps draws, and seeding
    by position instead of carrying generator state makes resuming exact for free.
    """
    return int(np.random.SeedSequence([seed, slot]).generate_state(1, np.uint64)[0] >> 1)


class Trainer:
    """One run on one process: builds the run, then ``run`` takes optimiser steps and calls the hooks around them.

    Run state the hooks share: ``step``, ``epoch_totals`` (the epoch's summed loss terms, accuracy counts
    and seconds), ``epoch_scores`` and ``epoch_extras`` (metrics-row values hooks add during ``after_epoch``),
    ``best_accuracy`` (the selection score of the exported epoch) and ``result`` (what ``run`` returns).
    """

    def __init__(self, config: TrainConfig, context: DistributedContext, resume: bool, overwrite: bool) -> None:
        self.config, self.context = config, context
        self.output = Path(config.output_dir)
        self.last_checkpoint = self.output / "checkpoints" / "last.safetensors"
        check_output_dir(config, self.last_checkpoint, resume, overwrite)
        micro_batch_size(config, context)  # refused before any data is loaded
        context.barrier()  # every rank has checked the output folder before rank 0 writes into it
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)  # model initialisation: identical on every rank
        self.device = context.device
        self.environment = environment_report(self.device, context.world_size)  # the code and machine this run started on

        data = load_run_data(config)
        self.sources, self.model_config = data.sources, data.model_config
        if data.balance is not None:
            logger.info("class_balance %s: batches draw classes %s (data %s)", config.data.class_balance,
                        np.round(data.batch_prior.astype(float), 3).tolist(), np.round(self.model_config.class_prior, 3).tolist())
        for source in self.sources:
            logger.info("train source %s", source.describe())
        logger.info("select on %s (%d images), report %s (%d images); device %s; %d process(es)", data.selection_name,
                    len(data.selection.images), config.data.valid_split, len(data.valid.images), self.device, context.world_size)
        self.sampler, self.steps_per_epoch = build_sampler(config, data, context)

        self.model, self.initialised_from = build_student(self.model_config, config.model, self.device)
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config, self.steps_per_epoch))
        teacher, self.lineage = (None, {"lineage": [], "generation": 0})
        if config.distill.teacher:
            teacher, self.lineage = load_teacher(config.distill.teacher, self.device)
        forward_model = wrap_for_training(self.model, context, config.compile)
        batch_prior = torch.from_numpy(data.batch_prior) if data.batch_prior is not None else None
        self.task = ExpressionTask(forward_model, config.loss, config.distill, self.model_config, teacher, batch_prior)
        self.terms = ("loss", *active_terms(config.loss))

        self.step, self.best_accuracy = 0, -1.0
        self.epoch_totals = self._empty_totals()
        self.epoch_scores: dict[str, float] = {}
        self.epoch_extras: dict[str, float] = {}
        self.result: dict[str, Any] = {}
        evaluation = EvaluationHook(data.selection_name, data.selection, config)
        # Order matters: the schedule steps before a checkpoint records it; selection reads the evaluation;
        # the log row collects what evaluation and monitoring added; the checkpoint, written last, records
        # the selection and never gets ahead of metrics.csv.
        checkpoint = CheckpointHook(config.checkpoint_every_steps)
        self.hooks: list[Hook] = [ScheduleHook(), evaluation, ExportHook(evaluation, data.valid, config), RunLogHook(resume),
                                  checkpoint]
        if self.device.type == "cuda":
            self.hooks.insert(0, GpuUtilisationHook(UtilisationMeter(lambda: read_gpu_utilisation(self.device))))
        if resume:
            checkpoint.restore(self)

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    def _empty_totals(self) -> dict[str, float]:
        return {**{term: 0.0 for term in self.terms}, "steps": 0, "correct": 0, "labelled": 0, "seconds": 0.0}

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next micro-batch of this process: mixed, augmented, normalised, on the device."""
        slot = self.sampler.position * self.context.world_size + self.context.rank
        generator = torch.Generator().manual_seed(step_seed(self.config.seed, slot))
        torch.manual_seed(step_seed(self.config.seed + 1, slot))  # dropout
        batch = assemble(self.sources, next(self.sampler))
        # uint8 to the device first: a quarter of the bytes to copy, and the GPU does the augmentation.
        images = batch.pop("images").to(self.device, non_blocking=True)
        images = (images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)).float().div_(255.0)
        images = augment_batch(images, self.config.augment, generator)
        batch["images"] = normalize(images, self.model_config).contiguous(memory_format=torch.channels_last)
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def train_step(self) -> dict[str, float]:
        """One optimiser step over ``accumulate_steps`` micro-batches; returns the process-averaged terms."""
        accumulate = self.config.accumulate_steps
        sums = torch.zeros(len(self.terms) + 2, dtype=torch.float64)
        self.optimizer.zero_grad(set_to_none=True)
        for micro in range(accumulate):
            batch = self.next_batch()
            last = micro == accumulate - 1
            no_sync = getattr(self.task.model, "no_sync", None)
            with (contextlib.nullcontext() if last or no_sync is None else no_sync()):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    terms, outputs = self.task(batch)
                (terms["loss"] / accumulate).backward()
            rows = has_labels(batch["soft"])
            correct = (outputs["emotion"][rows].argmax(1) == batch["soft"][rows].argmax(1)).sum()
            values = torch.stack([terms[name].detach().float() / accumulate for name in self.terms]).cpu().double()
            sums += torch.cat([values, torch.stack([correct, rows.sum()]).cpu().double()])
        sums = self.context.mean(sums.to(self.device)).cpu()  # NCCL reduces device tensors only
        result = {name: float(value) for name, value in zip(self.terms, sums)}
        if not all(math.isfinite(value) for value in result.values()):
            raise NonFiniteLossError(
                f"train: loss is {result['loss']} at epoch {self.epoch + 1}, step {self.step % self.steps_per_epoch}: {result}"
            )
        self.optimizer.step()
        self.step += 1
        totals = self.epoch_totals
        for name in self.terms:
            totals[name] += result[name]
        totals["steps"] += 1
        totals["correct"] += float(sums[-2]) * self.context.world_size
        totals["labelled"] += float(sums[-1]) * self.context.world_size
        return result

    def run(self, stop_after_epochs: int = 0, stop_after_steps: int = 0) -> dict[str, Any]:
        """Train up to ``config.epochs`` (or this call's stop), calling the hooks; returns the run's summary."""
        for hook in self.hooks:
            hook.before_train(self)
        end = self.config.epochs * self.steps_per_epoch
        if stop_after_epochs:
            end = min(end, (self.epoch + stop_after_epochs) * self.steps_per_epoch)
        if stop_after_steps:
            end = min(end, self.step + stop_after_steps)
        self.task.train()
        while self.step < end:
            started = time.perf_counter()
            self.train_step()
            self.epoch_totals["seconds"] += time.perf_counter() - started
            for hook in self.hooks:
                hook.after_step(self)
            if self.step % self.steps_per_epoch == 0:
                for hook in self.hooks:
                    hook.after_epoch(self)
                self.epoch_totals, self.epoch_scores, self.epoch_extras = self._empty_totals(), {}, {}
                self.task.train()
        self.result = {"best_valid_accuracy": self.best_accuracy, "epochs_done": self.epoch, "epochs": self.config.epochs,
                       "steps_done": self.step, "output_dir": str(self.output)}
        for hook in self.hooks:
            hook.after_train(self)
        return self.result


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, stop_after_epochs: int = 0,
          stop_after_steps: int = 0) -> dict[str, Any]:
    """Train, select on the validation split, export the best model; returns the final metrics.

    ``stop_after_epochs`` / ``stop_after_steps`` > 0 end this call early (a time-boxed job); the
    schedule still follows ``config.epochs``, so ``resume=True`` later continues exactly, also from
    the middle of an epoch. Runs as one process, or as one rank of a ``torchrun`` job.
    """
    if stop_after_epochs < 0 or stop_after_steps < 0:
        raise ValueError(f"train: stop_after_epochs and stop_after_steps must be 0 (run to the end) or more, "
                         f"got {stop_after_epochs}, {stop_after_steps}")
    context = init_distributed(config.device)
    try:
        return Trainer(config, context, resume, overwrite).run(stop_after_epochs, stop_after_steps)
    finally:
        context.close()
