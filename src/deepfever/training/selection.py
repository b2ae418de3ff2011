"""Which epoch becomes the model: per-epoch evaluation, selection and export, as hooks.

``EvaluationHook`` scores every epoch on the selection split (the held-out slice of the training
split, or ``valid_split``); ``ExportHook`` exports the best epoch from ``select_from_epoch`` on (or
the last one with ``select_on: last``) through ``models.checkpoint``, and at the end of a
``holdout``/``last`` run scores ``valid_split`` once on the exported model, as a number no choice
was made on.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from deepfever.config import config_to_dict
from deepfever.labels import EMOTIONS
from deepfever.data.splits import SplitArrays
from deepfever.data.triplets import TripletSet, vote_triplets
from deepfever.evaluation.metrics import classification_summary
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.triplets import triplet_accuracy
from deepfever.faces.template import load_default_template
from deepfever.models import ModelConfig, load_model
from deepfever.models.checkpoint import save_model, update_model_info
from deepfever.training.config import TrainConfig
from deepfever.training.hooks import Hook

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from deepfever.training.loop import Trainer

logger = logging.getLogger(__name__)


def evaluation_triplets(split: SplitArrays, config: TrainConfig) -> TripletSet | None:
    """Vote triplets over a split's rater distributions (``eval_triplets`` of them), or None."""
    if not config.eval_triplets:
        return None
    return vote_triplets(split.soft, config.eval_triplets, seed=config.seed)


def score(model: torch.nn.Module, split: SplitArrays, triplets: TripletSet | None, flip_tta: bool,
          device: torch.device) -> dict[str, Any]:
    """Majority-label accuracy, macro-F1 (and vote-triplet accuracy) of ``model`` on ``split``."""
    prediction = predict_arrays(model, split.images, flip_tta=flip_tta, device=device)
    summary = classification_summary(split.labels, prediction["probabilities"].argmax(1), EMOTIONS)
    result: dict[str, Any] = {key: summary[key] for key in ("n", "accuracy", "macro_f1")}
    if triplets is not None:
        result["vote_triplets"] = triplet_accuracy(prediction["embedding"], triplets)
    return result


class EvaluationHook(Hook):
    """Scores each epoch's model on the selection split (rank 0) into ``trainer.epoch_scores`` and the metrics row."""

    def __init__(self, name: str, split: SplitArrays, config: TrainConfig) -> None:
        self.name, self.split, self.config = name, split, config
        self.triplets = evaluation_triplets(split, config)
        self.scores: dict[str, Any] = {}
        """The last epoch's full scores (counts and per-type triplet accuracies included)."""

    def after_epoch(self, trainer: "Trainer") -> None:
        if not trainer.context.is_main:
            return
        self.scores = score(trainer.model, self.split, self.triplets, self.config.eval_flip_tta, trainer.device)
        trainer.epoch_scores[f"{self.name}_accuracy"] = self.scores["accuracy"]
        trainer.epoch_scores[f"{self.name}_macro_f1"] = self.scores["macro_f1"]
        if "vote_triplets" in self.scores:
            trainer.epoch_scores[f"{self.name}_triplet_accuracy"] = self.scores["vote_triplets"]["accuracy"]


class ExportHook(Hook):
    """Exports the selected epoch as ``<export_name>.safetensors`` + ``.json`` inside ``output_dir``.

    Must come after ``EvaluationHook`` (whose scores it selects on) and before ``CheckpointHook`` (which
    records the best accuracy so far).
    """

    def __init__(self, evaluation: EvaluationHook, valid: SplitArrays, config: TrainConfig) -> None:
        self.evaluation, self.valid, self.config = evaluation, valid, config
        self.path = Path(config.output_dir) / f"{config.export_name}.safetensors"

    def after_epoch(self, trainer: "Trainer") -> None:
        config = self.config
        if trainer.context.is_main:
            scores = self.evaluation.scores
            take_last = config.data.select_on == "last"
            if trainer.epoch >= config.select_from_epoch and (take_last or scores["accuracy"] > trainer.best_accuracy):
                trainer.best_accuracy = scores["accuracy"]
                self.export(trainer, take_last)
        trainer.best_accuracy = trainer.context.broadcast(trainer.best_accuracy)

    def after_train(self, trainer: "Trainer") -> None:
        if trainer.context.is_main and trainer.epoch == self.config.epochs and self.config.data.select_on != "valid":
            trainer.result["reported"] = self.report_valid_once(trainer.device)

    def export(self, trainer: "Trainer", take_last: bool) -> None:
        """Save the model with the alignment template (scaled to its input) that framed its training crops."""
        config, name, scores = self.config, self.evaluation.name, self.evaluation.scores
        metrics: dict[str, Any] = {f"{config.data.format}_{name}": {k: scores[k] for k in ("n", "accuracy", "macro_f1")}}
        if "vote_triplets" in scores:
            metrics[f"{config.data.format}_{name}_vote_triplets"] = scores["vote_triplets"]
        trainer.model.config = _with_template(trainer.model_config)
        save_model(trainer.model, self.path, {
            "training": {
                "data": "; ".join(source.describe() for source in trainer.sources),
                "losses": {term: getattr(config.loss, term) for term in trainer.terms[1:]},
                "initialised_from": trainer.initialised_from,
                "teacher": config.distill.teacher or None,
                "generation": trainer.lineage["generation"],
                "lineage": trainer.lineage["lineage"],
                "selected_on": (f"last epoch ({trainer.epoch} of {config.epochs})" if take_last else
                                f"{config.data.format}:{name}, epoch {trainer.epoch} of {config.epochs}"),
                "face_path": {source.name: source.face_path for source in trainer.sources},
                "config": config_to_dict(config),
                "command": trainer.environment["command"],
                "environment": trainer.environment,
            },
            "metrics": {**metrics, "flip_tta": config.eval_flip_tta},
        })

    def report_valid_once(self, device: torch.device) -> dict[str, Any]:
        """Score the exported model on ``valid_split`` (never used to choose anything) and record it in its sidecar."""
        model = load_model(self.path, device=device)
        scores = score(model, self.valid, evaluation_triplets(self.valid, self.config), self.config.eval_flip_tta, device)
        key = f"{self.config.data.format}_{self.config.data.valid_split}"
        update_model_info(self.path, "metrics", {f"{key}_reported": scores})
        logger.info("reported once on %s (no choice was made on it): %s", key, scores)
        return {key: scores}


def _with_template(model_config: ModelConfig) -> ModelConfig:
    return replace(model_config, template=load_default_template().scaled(model_config.input_size).to_dict())
