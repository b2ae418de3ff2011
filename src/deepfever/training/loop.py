"""The training loop: mixed batches, a multi-task objective, hooks, exact resume, 1..N processes.

``train(config)`` writes everything a run produces into ``config.output_dir`` (rank 0 only):
``config.yaml`` (resolved), ``environment.json`` (versions, device, world size), ``metrics.csv``
and ``curves.png`` (per epoch, every loss term), ``checkpoints/last.safetensors`` (exact resume,
also mid-epoch) and the selected model ``<export_name>.safetensors`` + ``.json`` with its
validation metrics and training lineage. Under ``torchrun`` the same call trains with DDP.

Example (one process, or ``torchrun --nproc-per-node 4 -m deepfever train ...``):
    >>> from deepfever.config import load_config                       # doctest: +SKIP
    >>> train(load_config(TrainConfig, "configs/ferplus.yaml", ["epochs=1"]))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from deepfever._version import __version__, source_revision
from deepfever.config import config_to_dict
from deepfever.data.formats import NO_LABEL
from deepfever.labels import EMOTIONS
from deepfever.data.sampling import MixingSampler, allocate
from deepfever.data.triplets import vote_triplets
from deepfever.evaluation.metrics import classification_summary
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.triplets import triplet_accuracy
from deepfever.io.atomic import atomic_write
from deepfever.models import HEADS, ModelConfig, load_model, save_model
from deepfever.models.preprocess import normalize
from deepfever.training.augment import augment_batch
from deepfever.training.config import TrainConfig
from deepfever.data.splits import SplitArrays, load_split
from deepfever.training.data import (assemble, class_balanced_weights, class_prior, has_labels, load_primary, load_source,
                                     steps_per_epoch)
from deepfever.models.distributed import DistributedContext, init_distributed
from deepfever.training.hooks import CheckpointHook, EvaluationHook, GpuUtilisationHook, Hook, read_metrics
from deepfever.training.monitor import UtilisationMeter, read_gpu_utilisation
from deepfever.training.state import load_training_state, save_training_state
from deepfever.training.task import ExpressionTask, active_terms, build_initial_model, load_teacher, trained_heads

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and every loss term."""


def environment_report(device: torch.device, world_size: int = 1) -> dict[str, Any]:
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


def step_seed(seed: int, slot: int) -> int:
    """Seed of the random numbers (augmentation, dropout) of one slot of micro-batches.

    ``slot = sampler position x world size + rank`` numbers the per-process slices of the data
    stream, so N processes draw what one process with N accumulation steps draws, and seeding
    by position instead of carrying generator state makes resuming exact for free.
    """
    return int(np.random.SeedSequence([seed, slot]).generate_state(1, np.uint64)[0] >> 1)


def _schedule(config: TrainConfig, steps_per_epoch: int):
    warmup = max(1, int(config.optim.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, config.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return config.optim.min_lr_ratio + (1 - config.optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _export(model: torch.nn.Module, model_config: ModelConfig, path: Path, info: dict[str, Any]) -> None:
    """Save the selected model with the alignment template (scaled to its input) that framed its training crops."""
    from deepfever.faces.template import load_default_template

    model.config = replace(model_config, template=load_default_template().scaled(model_config.input_size).to_dict())
    save_model(model, path, info)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {key: value for name, child in tree.items() for key, value in _flatten(child, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): tree}


def _check_same_config(config: TrainConfig, checkpoint: Path) -> None:
    """``--resume`` continues the run the checkpoint belongs to; another config would silently mix two runs."""
    recorded = json.loads(checkpoint.with_suffix(".json").read_text()).get("config")
    if recorded is None:
        return  # checkpoints written before configs were recorded in them
    mine, theirs = _flatten(config_to_dict(config)), _flatten(json.loads(json.dumps(recorded)))
    differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
    if differing:
        raise ValueError(f"train: --resume with a config that differs from the checkpoint's in {', '.join(differing)}; "
                         "resume with the run's own config.yaml, or start a new output_dir")


class Trainer:
    """State of one run on one process; ``train`` builds it and calls ``run``."""

    def __init__(self, config: TrainConfig, context: DistributedContext, resume: bool, overwrite: bool) -> None:
        self.config, self.context = config, context
        self.output = Path(config.output_dir)
        self.last_checkpoint = self.output / "checkpoints" / "last.safetensors"
        if resume and not self.last_checkpoint.is_file():
            raise FileNotFoundError(f"train: --resume asked for {self.last_checkpoint}, which does not exist")
        if resume:
            _check_same_config(config, self.last_checkpoint)
        if not resume and self.output.exists() and any(self.output.iterdir()) and not overwrite:
            raise FileExistsError(f"train: {self.output} already holds a run; pass --resume to continue it or --overwrite to replace it")
        context.barrier()  # every rank has checked the output folder before rank 0 writes into it
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)  # model initialisation: identical on every rank
        self.device = context.device
        self.environment = environment_report(self.device, context.world_size)  # the code and machine this run started on

        size, in_chans = config.model.input_size, config.model.in_chans
        primary, held_out = load_primary(config.data, size, in_chans)
        self.sources = [primary] + [load_source(source, size, config.seed, in_chans) for source in config.sources]
        prior = class_prior(primary.soft) if config.loss.logit_adjust else None
        balance = class_balanced_weights(primary.soft, config.data.class_balance) if config.data.class_balance else None
        # The class distribution of the primary source's draws: the prior the emotion terms see.
        batch_prior = None
        if not np.isnan(primary.soft[:, 0]).all():
            batch_prior = class_prior(primary.soft, balance)
        if balance is not None:
            logger.info("class_balance %s: batches draw classes %s (data %s)", config.data.class_balance,
                        np.round(batch_prior.astype(float), 3).tolist(), np.round(prior.astype(float), 3).tolist())
        self.model_config = ModelConfig(
            arch=config.model.arch, embedding_dim=config.model.embedding_dim, arch_kwargs=dict(config.model.arch_kwargs),
            trained_heads=trained_heads(config.loss), input_size=size, in_chans=in_chans,
            class_prior=tuple(float(p) for p in prior) if prior is not None else None,
            logit_adjustment=config.loss.logit_adjust, output_prior=config.loss.output_prior if prior is not None else "train",
        )
        self.valid = self._load_valid(size, in_chans)
        # The split that picks the epoch: the held-out slice of the training split, or valid_split itself.
        self.selection_name = "holdout" if held_out is not None else config.data.valid_split
        self.selection = held_out if held_out is not None else self.valid
        self.selection_triplets = self._triplets(self.selection)
        for source in self.sources:
            logger.info("train source %s", source.describe())
        logger.info("select on %s (%d images), report %s (%d images); device %s; %d process(es)", self.selection_name,
                    len(self.selection.images), config.data.valid_split, len(self.valid.images), self.device, context.world_size)

        per_micro_batch, remainder = divmod(config.batch_size, context.world_size * config.accumulate_steps)
        if remainder or per_micro_batch < 1:
            raise ValueError(
                f"train: batch_size {config.batch_size} must be a multiple of processes x accumulate_steps "
                f"({context.world_size} x {config.accumulate_steps})"
            )
        ratios = [config.data.ratio] + [source.ratio for source in config.sources]
        counts = allocate(per_micro_batch, ratios, [source.unit_size for source in self.sources])
        self.sampler = MixingSampler([source.units for source in self.sources], counts, config.seed, context.rank, context.world_size,
                                     weights=[balance] + [None] * len(config.sources))
        self.steps_per_epoch = steps_per_epoch(self.sources[0], counts[0] * context.world_size * config.accumulate_steps,
                                               config.steps_per_epoch)

        self.model, self.initialised_from = build_initial_model(self.model_config, config.model)
        self.model = self.model.to(self.device).to(memory_format=torch.channels_last)
        for head in HEADS:  # an untrained head gets no gradient; freezing it also keeps DDP from waiting for one
            getattr(self.model, head).requires_grad_(head in self.model_config.trained_heads)
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.optim.lr, momentum=config.optim.momentum, nesterov=True,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(config, self.steps_per_epoch))
        teacher, self.lineage = (None, {"lineage": [], "generation": 0})
        if config.distill.teacher:
            teacher, self.lineage = load_teacher(config.distill.teacher, self.device)
        forward_model: torch.nn.Module = self.model
        if context.distributed:
            forward_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            forward_model = torch.compile(forward_model)
        self.task = ExpressionTask(forward_model, config.loss, config.distill, self.model_config, teacher,
                                   torch.from_numpy(batch_prior) if batch_prior is not None else None)
        self.terms = ("loss", *active_terms(config.loss))
        self.hooks: list[Hook] = [EvaluationHook(), CheckpointHook(config.checkpoint_every_steps)]
        if self.device.type == "cuda":
            self.hooks.insert(0, GpuUtilisationHook(UtilisationMeter(lambda: read_gpu_utilisation(self.device))))
        self.epoch_extras: dict[str, Any] = {}  # per-epoch values hooks add to the metrics row

        self.step, self.best_accuracy = 0, -1.0
        self.rows = read_metrics(self.output / "metrics.csv") if resume else []
        self.epoch_totals = self._empty_totals()
        if resume:
            self._restore()
        if context.is_main:
            # Only now that data, model and teacher loaded: a run that cannot start leaves no folder behind.
            self.output.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.output / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
            with atomic_write(self.output / "environment.json") as tmp:
                tmp.write_text(json.dumps(self.environment, indent=2))

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    def _empty_totals(self) -> dict[str, float]:
        return {**{term: 0.0 for term in self.terms}, "steps": 0, "correct": 0, "labelled": 0, "seconds": 0.0}

    def _load_valid(self, size: int, in_chans: int) -> SplitArrays:
        """The validation split's majority-labelled crops, through the training data's face path."""
        data = self.config.data
        options = {"keep_ambiguous": data.keep_ambiguous} if data.format == "ferplus" else {}
        valid = load_split(data.format, data.root, options, data.valid_split, data.detector, data.fallback, size, in_chans,
                           data.limit_valid)
        return valid.take(np.flatnonzero(valid.labels != NO_LABEL))

    def _triplets(self, split: SplitArrays):
        """Vote triplets over a split's rater distributions (``eval_triplets`` of them), or None."""
        if not self.config.eval_triplets:
            return None
        return vote_triplets(split.soft, self.config.eval_triplets, seed=self.config.seed)

    def score(self, model: torch.nn.Module, split: SplitArrays, triplets) -> dict[str, Any]:
        """Majority-label accuracy, macro-F1 (and vote-triplet accuracy) of ``model`` on ``split``."""
        prediction = predict_arrays(model, split.images, flip_tta=self.config.eval_flip_tta, device=self.device)
        summary = classification_summary(split.labels, prediction["probabilities"].argmax(1), EMOTIONS)
        result: dict[str, Any] = {key: summary[key] for key in ("n", "accuracy", "macro_f1")}
        if triplets is not None:
            result["vote_triplets"] = triplet_accuracy(prediction["embedding"], triplets)
        return result

    def _restore(self) -> None:
        document = load_training_state(self.last_checkpoint, self.model, self.optimizer, self.scheduler)
        # Checkpoints from before mid-epoch resume hold neither step nor sampler: they end an epoch.
        self.step = document.get("step", document["epoch"] * self.steps_per_epoch)
        self.sampler.load_state_dict(document.get("sampler", {"position": self.step * self.config.accumulate_steps}))
        self.best_accuracy = document["best_accuracy"]
        self.epoch_totals = document.get("epoch_totals", self._empty_totals())
        self.rows = [row for row in self.rows if row["epoch"] <= self.epoch]
        logger.info("resumed from %s at step %d (epoch %d + %d steps)", self.last_checkpoint, self.step, self.epoch,
                    self.step % self.steps_per_epoch)

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
        self.scheduler.step()
        self.step += 1
        totals = self.epoch_totals
        for name in self.terms:
            totals[name] += result[name]
        totals["steps"] += 1
        totals["correct"] += float(sums[-2]) * self.context.world_size
        totals["labelled"] += float(sums[-1]) * self.context.world_size
        return result

    def evaluate_and_select(self) -> dict[str, float]:
        """Score the epoch's model on the selection split; export it if it is the best so far (or the last)."""
        config, totals = self.config, self.epoch_totals
        scores = self.score(self.model, self.selection, self.selection_triplets)
        prefix = self.selection_name
        row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update({f"train_{name}": totals[name] / max(1, totals["steps"]) for name in self.terms})
        row.update({"train_accuracy": totals["correct"] / max(1, totals["labelled"]),
                    f"{prefix}_accuracy": scores["accuracy"], f"{prefix}_macro_f1": scores["macro_f1"]})
        metrics: dict[str, Any] = {f"{config.data.format}_{prefix}": {k: scores[k] for k in ("n", "accuracy", "macro_f1")}}
        if "vote_triplets" in scores:
            row[f"{prefix}_triplet_accuracy"] = scores["vote_triplets"]["accuracy"]
            metrics[f"{config.data.format}_{prefix}_vote_triplets"] = scores["vote_triplets"]
        row.update({"seconds": totals["seconds"],
                    "images_per_second": totals["steps"] * config.batch_size / max(totals["seconds"], 1e-9), **self.epoch_extras})
        logger.info("epoch %d/%d %s", self.epoch, config.epochs, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
        take_last = config.data.select_on == "last"
        if self.epoch >= config.select_from_epoch and (take_last or scores["accuracy"] > self.best_accuracy):
            self.best_accuracy = scores["accuracy"]
            data = [f"{source.describe()}" for source in self.sources]
            _export(self.model, self.model_config, self.output / f"{config.export_name}.safetensors", {
                "training": {
                    "data": "; ".join(data),
                    "losses": {name: getattr(config.loss, name) for name in self.terms[1:]},
                    "initialised_from": self.initialised_from,
                    "teacher": config.distill.teacher or None,
                    "generation": self.lineage["generation"],
                    "lineage": self.lineage["lineage"],
                    "selected_on": (f"last epoch ({self.epoch} of {config.epochs})" if take_last else
                                    f"{config.data.format}:{prefix}, epoch {self.epoch} of {config.epochs}"),
                    "face_path": {source.name: source.face_path for source in self.sources},
                    "config": config_to_dict(config),
                    "command": self.environment["command"],
                    "environment": self.environment,
                },
                "metrics": {**metrics, "flip_tta": config.eval_flip_tta},
            })
        return row

    def save_checkpoint(self) -> None:
        if self.context.is_main:
            save_training_state(self.last_checkpoint, self.model, self.optimizer, self.scheduler, {
                "step": self.step, "epoch": self.epoch, "best_accuracy": self.best_accuracy,
                "epoch_totals": self.epoch_totals, "sampler": self.sampler.state_dict(),
                "rng": {"scheme": "per micro-batch seeds from (seed, sampler position x world size + rank)", "seed": self.config.seed},
                "world_size": self.context.world_size, "config": config_to_dict(self.config),
            })
        self.context.barrier()

    def run(self, stop_after_epochs: int = 0, stop_after_steps: int = 0) -> dict[str, Any]:
        config = self.config
        end = config.epochs * self.steps_per_epoch
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
                self.epoch_totals, self.epoch_extras = self._empty_totals(), {}
                self.task.train()
        if self.step % self.steps_per_epoch:
            self.save_checkpoint()  # stopped mid-epoch: resume continues from exactly here
        result = {"best_valid_accuracy": self.best_accuracy, "epochs_done": self.epoch, "epochs": config.epochs,
                  "steps_done": self.step, "output_dir": str(self.output)}
        if self.context.is_main:
            if self.epoch == config.epochs and config.data.select_on != "valid":
                result["reported"] = self.report_valid_once()
            with atomic_write(self.output / "metrics.json") as tmp:
                tmp.write_text(json.dumps({"final": self.rows[-1] if self.rows else None, **result}, indent=2))
        return result

    def report_valid_once(self) -> dict[str, Any]:
        """Score the exported model on ``valid_split`` (never used to choose anything) and record it in its JSON."""
        exported = self.output / f"{self.config.export_name}.safetensors"
        model = load_model(exported, device=self.device)
        scores = self.score(model, self.valid, self._triplets(self.valid))
        key = f"{self.config.data.format}_{self.config.data.valid_split}"
        info = json.loads(exported.with_suffix(".json").read_text())
        info.setdefault("metrics", {})[f"{key}_reported"] = scores
        with atomic_write(exported.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
        logger.info("reported once on %s (no choice was made on it): %s", key, scores)
        return {key: scores}


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, stop_after_epochs: int = 0,
          stop_after_steps: int = 0) -> dict[str, Any]:
    """Train, select on the validation split, export the best model; returns the final metrics.

    ``stop_after_epochs`` / ``stop_after_steps`` > 0 end this call early (a time-boxed job); the
    schedule still follows ``config.epochs``, so ``resume=True`` later continues exactly, also from
    the middle of an epoch. Runs as one process, or as one rank of a ``torchrun`` job.
    """
    context = init_distributed(config.device)
    try:
        return Trainer(config, context, resume, overwrite).run(stop_after_epochs, stop_after_steps)
    finally:
        context.close()
