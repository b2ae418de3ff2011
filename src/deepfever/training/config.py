"""The training run's configuration tree (loaded with ``deepfever.config.load_config``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from deepfever.training.augment import AugmentConfig


@dataclass(frozen=True)
class ModelSection:
    arch: str = "fevernet_s"
    embedding_dim: int = 128


@dataclass(frozen=True)
class DataSection:
    """Which dataset trains and which selects the model; ``limit_*`` > 0 keep the first N (smoke tests)."""

    format: str = "ferplus"
    root: str = "../shared/data/ferplus"
    train_split: str = "train"
    valid_split: str = "valid"
    keep_ambiguous: bool = True
    limit_train: int = 0
    limit_valid: int = 0


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
    optim: OptimSection = field(default_factory=OptimSection)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    eval_flip_tta: bool = True
    select_from_epoch: int = 1
    """Epochs before this one are evaluated but never exported (early epochs are never the best)."""
    output_dir: str = "runs/ferplus"
    export_name: str = "model"
