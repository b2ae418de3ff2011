"""The training run's configuration tree (loaded with ``deepfever.config.load_config``).

A run trains on the ``data`` section's training split plus any ``sources`` mixed into every batch
by ``ratio``; ``loss`` weighs the terms (a weight of 0 switches a term off) and ``distill`` names
the teacher for self-distillation. ``batch_size`` is the number of images per optimiser step
over all processes and accumulation steps, so a run means the same on 1 CPU or 8 GPUs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deepfever.training.augment import AugmentConfig


@dataclass(frozen=True)
class ModelSection:
    """``arch_kwargs`` go to the architecture (e.g. ``{name: convnext_tiny}`` for ``timm``).

    ``init_from`` (packaged name or ``.safetensors`` path) starts every weight from a trained model of
    the same architecture, e.g. to fine-tune the bundled model with the recipe. ``backbone_init`` (a
    local ImageNet- or face-pretrained state-dict file; ``resnet*`` and ``timm``) starts the backbone
    only; it is recorded in the run's provenance, not in the exported model, which loads without it.
    """

    arch: str = "fevernet_s"
    embedding_dim: int = 128
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str = ""
    backbone_init: str = ""


@dataclass(frozen=True)
class DataSection:
    """Which dataset trains and which selects the model; ``limit_*`` > 0 keep the first N (smoke tests).

    ``ratio`` is this training split's share of each batch when ``sources`` are mixed in.
    """

    format: str = "ferplus"
    root: str = "../shared/data/ferplus"
    train_split: str = "train"
    valid_split: str = "valid"
    keep_ambiguous: bool = True
    limit_train: int = 0
    limit_valid: int = 0
    ratio: float = 1.0


@dataclass(frozen=True)
class SourceSection:
    """One more dataset mixed into every batch: a ``read_dataset`` format or a ``glob`` of unlabelled faces.

    ``triplets`` > 0 turns the source into vote triplets (FER+-style rater distributions): that many
    are sampled once with ``triplet_margin`` and the run's seed, and the source's unit becomes a
    triplet (3 images). ``ratio`` is its share of each batch's images.
    """

    name: str
    ratio: float = 1.0
    format: str = ""
    root: str = ""
    split: str = "train"
    options: dict[str, Any] = field(default_factory=dict)
    glob: str = ""
    limit: int = 0
    triplets: int = 0
    triplet_margin: float = 0.2

    def __post_init__(self) -> None:
        if bool(self.format) == bool(self.glob):
            raise ValueError(f"SourceSection {self.name!r}: set exactly one of format (a dataset format) or glob (image files)")
        if self.triplets and not self.format:
            raise ValueError(f"SourceSection {self.name!r}: triplets need rater votes, so a format, not a glob")


@dataclass(frozen=True)
class LossSection:
    """Weight of each loss term (0 = off) and the FEC triplet margins."""

    soft_ce: float = 1.0
    ccc: float = 0.0
    triplet: float = 0.0
    distill_kl: float = 0.0
    distill_embedding: float = 0.0
    one_class_margin: float = 0.1
    multi_class_margin: float = 0.2


@dataclass(frozen=True)
class DistillSection:
    """Self-distillation: ``teacher`` is a ``.safetensors`` model file or a packaged model name."""

    teacher: str = ""
    temperature: float = 4.0
    embedding_distance: str = "cosine"


@dataclass(frozen=True)
class OptimSection:
    """SGD with Nesterov momentum, linear warm-up then cosine decay, stepped every batch."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    sources: tuple[SourceSection, ...] = ()
    loss: LossSection = field(default_factory=LossSection)
    distill: DistillSection = field(default_factory=DistillSection)
    optim: OptimSection = field(default_factory=OptimSection)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    steps_per_epoch: int = 0
    """0 = one pass over the ``data`` training split at its share of the batch."""
    batch_size: int = 64
    accumulate_steps: int = 1
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    compile: bool = False
    checkpoint_every_steps: int = 0
    """> 0 also writes ``checkpoints/last`` every N optimiser steps (resume mid-epoch)."""
    eval_flip_tta: bool = True
    eval_triplets: int = 0
    """> 0 also reports triplet accuracy on that many vote triplets of the validation split."""
    select_from_epoch: int = 1
    """Epochs before this one are evaluated but never exported (early epochs are never the best)."""
    output_dir: str = "runs/ferplus"
    export_name: str = "model"

    def __post_init__(self) -> None:
        # load_config leaves list items as plain mappings; build them here so a bad key names itself.
        known = {item.name for item in fields(SourceSection)}
        built = []
        for index, source in enumerate(self.sources):
            if isinstance(source, dict):
                unknown = sorted(set(source) - known)
                if unknown or "name" not in source:
                    raise ValueError(
                        f"TrainConfig.sources[{index}]: unknown key(s) {unknown} or no name; valid keys: {sorted(known)}"
                    )
                source = SourceSection(**source)
            built.append(source)
        object.__setattr__(self, "sources", tuple(built))
