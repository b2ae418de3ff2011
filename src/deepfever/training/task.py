"""The training task: owns the model, the weighted losses and the (frozen) teacher.

``task(batch)`` returns ``({"loss": total, term: value, ...}, model outputs)``; the loop logs
every term. The teacher, when there is one, stays in eval mode with gradients off and is never
wrapped in DDP: it sees the same augmented images as the student ("consistent teaching"), so the
student learns the teacher's function rather than its answers on clean images only.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfever.io.hashing import file_sha256
from deepfever.models import ExpressionModel, ModelConfig, load_model
from deepfever.models.checkpoint import build_model, resolve_weights
from deepfever.models.prior import PRIOR_FLOOR
from deepfever.models.registry import architecture_entrypoint
from deepfever.training.config import LOSS_TERMS as TERMS, DistillSection, LossSection, ModelSection
from deepfever.training.data import has_labels
from deepfever.training.losses import ConcordanceLoss, EmbeddingDistillation, FecTripletLoss, SoftCrossEntropy, SoftenedKLDivergence

def active_terms(loss: LossSection) -> tuple[str, ...]:
    """Terms with a non-zero weight, in a fixed order."""
    return tuple(name for name in TERMS if getattr(loss, name) != 0)


def trained_heads(loss: LossSection) -> tuple[str, ...]:
    """Heads whose outputs a run with these weights teaches the model."""
    heads = ("emotion",) if loss.soft_ce or loss.distill_kl else ()
    return heads + (("valence_arousal",) if loss.ccc else ())


class ExpressionTask(nn.Module):
    """Weighted sum of the active loss terms on one mixed batch.

    Args:
        model: the student (possibly DDP-wrapped or compiled); ``model(images)`` returns the output dict.
        loss: term weights and triplet margins.
        distill: temperature and embedding distance for the teacher terms.
        teacher: frozen model that provides distillation targets (needed when a distill weight is set).
        student_config: the student's preprocessing, to re-normalise images for a teacher that differs.
        batch_prior: class distribution of the training batches (the data's, or class-aware sampling's). The
            emotion terms see the student's logits, and the teacher's, moved from the prior their raw logits
            assume to this one (logit adjustment: a student with ``loss.logit_adjust`` = 1 learns raw
            logits for balanced classes).
    """

    def __init__(self, model: nn.Module, loss: LossSection, distill: DistillSection, student_config: ModelConfig,
                 teacher: ExpressionModel | None = None, batch_prior: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.weights = {name: getattr(loss, name) for name in active_terms(loss)}
        if not self.weights:
            raise ValueError("ExpressionTask: every loss weight is 0; set at least one of " + ", ".join(TERMS))
        needs_teacher = bool(loss.distill_kl or loss.distill_embedding)
        if needs_teacher != (teacher is not None):
            raise ValueError(
                "ExpressionTask: distillation weights need a teacher (set distill.teacher) and a teacher needs a distill weight; "
                f"got distill_kl={loss.distill_kl}, distill_embedding={loss.distill_embedding}, teacher={'yes' if teacher else 'no'}"
            )
        self.soft_ce = SoftCrossEntropy()
        self.ccc = ConcordanceLoss()
        self.triplet = FecTripletLoss({1: loss.one_class_margin, 2: loss.multi_class_margin, 3: loss.multi_class_margin})
        self.distill_kl = SoftenedKLDivergence(distill.temperature)
        self.distill_embedding = EmbeddingDistillation(distill.embedding_distance)
        self.student_config = student_config
        self.teacher = teacher
        if loss.logit_adjust and (batch_prior is None or student_config.class_prior is None):
            raise ValueError("ExpressionTask: loss.logit_adjust needs the batch prior and the student's recorded training prior")
        self.register_buffer("logit_offset", _offset_to(batch_prior, student_config), persistent=False)
        self.register_buffer("teacher_offset", _offset_to(batch_prior, teacher.config if teacher is not None else None), persistent=False)
        if teacher is not None:
            if teacher.config.input_size != student_config.input_size or teacher.config.in_chans != student_config.in_chans:
                raise ValueError(
                    f"ExpressionTask: teacher takes {teacher.config.in_chans}x{teacher.config.input_size}px crops, the student "
                    f"{student_config.in_chans}x{student_config.input_size}px; distil between models with the same input"
                )
            teacher.requires_grad_(False)
            teacher.eval()

    def train(self, mode: bool = True) -> "ExpressionTask":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher's BatchNorm and dropout never switch to training behaviour
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images = batch["images"]
        outputs = self.model(images)
        terms: dict[str, torch.Tensor] = {}
        emotion = outputs["emotion"] + self.logit_offset.to(outputs["emotion"].device)
        if "soft_ce" in self.weights:
            rows = has_labels(batch["soft"])
            terms["soft_ce"] = self.soft_ce(emotion[rows], batch["soft"][rows])
        if "ccc" in self.weights:
            terms["ccc"] = self.ccc(outputs["valence_arousal"], batch["valence_arousal"])
        if "triplet" in self.weights:
            terms["triplet"] = self.triplet(outputs["embedding"], batch["triplets"], batch["types"])
        if self.teacher is not None:
            with torch.no_grad():
                targets = self.teacher(self._teacher_inputs(images))
            if "distill_kl" in self.weights:
                terms["distill_kl"] = self.distill_kl(emotion, targets["emotion"] + self.teacher_offset.to(emotion.device))
            if "distill_embedding" in self.weights:
                terms["distill_embedding"] = self.distill_embedding(outputs["embedding"], targets["embedding"])
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms}, outputs

    def _teacher_inputs(self, images: torch.Tensor) -> torch.Tensor:
        student, teacher = self.student_config, self.teacher.config
        if (student.mean, student.std) == (teacher.mean, teacher.std):
            return images
        return (images * student.std + student.mean - teacher.mean) / teacher.std


def _offset_to(batch_prior: torch.Tensor | None, config: ModelConfig | None) -> torch.Tensor:
    """What moves a model's raw logits to ``batch_prior`` by Bayes' rule: ``log(batch_prior) - log(native)``,
    where the raw logits assume ``class_prior ** (1 - tau)`` (tau = its logit adjustment). Zero when either
    prior is unknown: the model is then taken to have learnt the batches' prior."""
    if batch_prior is None or config is None or config.class_prior is None:
        return torch.zeros(())
    native = torch.tensor(config.class_prior).clamp_min(PRIOR_FLOOR)
    return torch.log(batch_prior.float().clamp_min(PRIOR_FLOOR)) - (1.0 - config.logit_adjustment) * torch.log(native)


def load_teacher(name_or_path: str, device: torch.device) -> tuple[ExpressionModel, dict[str, Any]]:
    """The frozen teacher and its lineage entry (file, sha256, what it was trained on, its own lineage)."""
    weights = resolve_weights(name_or_path)
    teacher = load_model(weights, device=device)
    training = teacher.info.get("training", {})
    entry = {
        **_provenance(Path(weights)),
        "data": training.get("data"),
        "generation": training.get("generation", 0),
    }
    return teacher, {"lineage": [*training.get("lineage", []), entry], "generation": entry["generation"] + 1}


def build_initial_model(model_config: ModelConfig, section: ModelSection) -> tuple[ExpressionModel, dict[str, Any] | None]:
    """The model a run starts from, and where its weights came from (``None``: random init)."""
    if section.init_from and section.backbone_init:
        raise ValueError("model: set init_from (a whole trained model) or backbone_init (a backbone file), not both")
    if not section.backbone_init:
        model = build_model(model_config)
        return model, (_load_initial_weights(model, section.init_from) if section.init_from else None)
    if "init_weights" not in inspect.signature(architecture_entrypoint(model_config.arch)).parameters:
        raise ValueError(f"model.backbone_init: architecture {model_config.arch!r} takes no backbone weights file "
                         "(resnet18, resnet50 and timm do); use model.init_from for a trained DeepFEVER model")
    model = build_model(replace(model_config, arch_kwargs={**model_config.arch_kwargs, "init_weights": section.backbone_init}))
    model.config = model_config  # the exported model must load without the init file
    return model, {"backbone": _provenance(Path(section.backbone_init))}


def _load_initial_weights(model: ExpressionModel, name_or_path: str) -> dict[str, Any]:
    weights = resolve_weights(name_or_path)
    source = load_model(weights)
    mine, theirs = model.config, source.config
    if (mine.arch, mine.embedding_dim, mine.input_size, mine.in_chans) != (theirs.arch, theirs.embedding_dim, theirs.input_size, theirs.in_chans):
        raise ValueError(
            f"model.init_from: {weights} is {theirs.arch} ({theirs.embedding_dim}-d, {theirs.in_chans}x{theirs.input_size}px), "
            f"the run trains {mine.arch} ({mine.embedding_dim}-d, {mine.in_chans}x{mine.input_size}px)"
        )
    model.load_state_dict(source.state_dict())
    return {**_provenance(Path(weights)), "data": source.info.get("training", {}).get("data")}


def _provenance(path: Path) -> dict[str, Any]:
    return {"model": str(path.resolve()), "sha256": file_sha256(path)}
