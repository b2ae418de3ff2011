"""The training run's configuration tree (loaded with ``deepfever.config.load_config``).

A run trains on the ``data`` section's training split plus any ``sources`` mixed into every batch
by ``ratio``; ``loss`` weighs the terms (a weight of 0 switches a term off) and ``distill`` names
the teacher for self-distillation. ``batch_size`` is the number of images per optimiser step
over all processes and accumulation steps, so a run means the same on 1 CPU or 8 GPUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from deepfever.training.augment import AugmentConfig

CHANNELS = {"grey": 1, "rgb": 3}

MAX_TRIPLETS = 1_000_000
"""Most vote triplets a run samples per set (``eval_triplets``, ``sources[].triplets``): sampling draws 4 candidates
per triplet, so the bound keeps a typo from allocating gigabytes before the first step."""
MAX_BATCH_SIZE = 65_536
MAX_EMBEDDING_DIM = 65_536
MAX_INPUT_SIZE = 1024
MAX_THREADS = 1024
LOSS_TERMS = ("soft_ce", "ccc", "triplet", "distill_kl", "distill_embedding")
"""The weighted terms of the training objective, in the order the run logs them."""
RUN_FILES = ("config.yaml", "environment.json", "metrics.csv", "metrics.json", "curves.png", "checkpoints")
"""What a run writes into ``output_dir`` beside the exported model; ``export_name`` must not collide with them."""


def check_at_most(name: str, value: int, limit: int) -> None:
    """Refuse a count or size that would allocate more than any run needs, before anything is allocated."""
    if value > limit:
        raise ValueError(f"{name} must be at most {limit:,}, got {value:,}; sizes above that only exhaust memory")


def check_export_name(name: str) -> None:
    """``export_name`` is a plain file name, so the model lands inside ``output_dir`` and nowhere else."""
    plain = bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
    if not plain:
        raise ValueError(f"export_name must be a plain file name without folders (e.g. fevernet_s.ferplus), got {name!r}; "
                         "the model is written inside output_dir, so set output_dir to choose the folder")
    taken = [run_file for run_file in RUN_FILES if run_file in (f"{name}.json", f"{name}.safetensors")]
    if taken:
        raise ValueError(f"export_name {name!r} would replace the run's own {taken[0]}; choose another name")


@dataclass(frozen=True)
class ModelSection:
    """``arch_kwargs`` go to the architecture (e.g. ``{name: convnext_tiny}`` for ``timm``).

    ``init_from`` (packaged name or ``.safetensors`` path) starts every weight from a trained model of
    the same architecture, e.g. to fine-tune the bundled model with the recipe. ``backbone_init`` (a
    local ImageNet- or face-pretrained state-dict file; ``resnet*`` and ``timm``) starts the backbone
    only; it is recorded in the run's provenance, not in the exported model, which loads without it.
    ``input_size`` is the crop side (the alignment template is scaled to it) and ``channels`` the
    colour mode (``grey`` or ``rgb``) of the crops the model is trained on and later fed.
    """

    arch: str = "fevernet_s"
    embedding_dim: int = 128
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str = ""
    backbone_init: str = ""
    input_size: int = 48
    channels: str = "grey"

    def __post_init__(self) -> None:
        if self.embedding_dim < 1:
            raise ValueError(f"model.embedding_dim must be at least 1, got {self.embedding_dim}")
        if self.input_size < 16:
            raise ValueError(f"model.input_size must be at least 16 pixels, got {self.input_size}")
        check_at_most("model.embedding_dim", self.embedding_dim, MAX_EMBEDDING_DIM)
        check_at_most("model.input_size", self.input_size, MAX_INPUT_SIZE)
        if self.channels not in CHANNELS:
            raise ValueError(f"model.channels must be one of {', '.join(CHANNELS)}, got {self.channels!r}")

    @property
    def in_chans(self) -> int:
        return CHANNELS[self.channels]


@dataclass(frozen=True)
class FacePathFields:
    """How a dataset's images become crops, the way ``Extractor`` makes them.

    ``detector`` ``none`` takes images as face crops framed like the template and resizes them;
    ``mtcnn``/``yunet`` detect and align each face; ``box`` aligns inside the dataset's own face boxes
    (AffectNet, ExpW). Anything but ``none`` goes through a ``data prepare`` cache built once (and
    resumed if interrupted) under ``$DEEPFEVER_CACHE/prepared``. ``fallback: none`` keeps a crop
    whose detector finds no face as a resize instead of dropping it.
    """

    detector: str = "none"
    fallback: str = ""

    def _check_face_path(self, where: str) -> None:
        from deepfever.data.prepare import DETECTION_MODES, FALLBACKS

        if self.detector not in DETECTION_MODES:
            raise ValueError(f"{where}.detector must be one of {', '.join(DETECTION_MODES)}, got {self.detector!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"{where}.fallback must be '' or 'none', got {self.fallback!r}")


SELECTION = ("holdout", "valid", "last")


@dataclass(frozen=True)
class DataSection(FacePathFields):
    """Which dataset trains and which selects the model; ``limit_*`` > 0 keep the first N (smoke tests).

    ``ratio`` is this training split's share of each batch when ``sources`` are mixed in.
    ``select_on``: ``holdout`` keeps ``holdout`` (a share) of the training split out of training,
    drawn once with ``holdout_seed``, and picks the epoch on it, so ``valid_split`` is scored once on
    the exported model, as a number no choice was made on; ``valid`` picks on ``valid_split``
    (then its score is optimistic); ``last`` exports the last epoch (the held-out slice is then
    only scored per epoch, for the curves).
    ``class_balance`` = q in [0, 1] is class-aware sampling of the training split: an image is drawn
    with weight ``sum_c target_c * prior_c ** -q`` (0: as stored, 0.5: square-root, 1: balanced
    classes), so rare classes are seen more often under more augmentations rather than only weighted
    up; ``loss.logit_adjust`` then adjusts for the prior the sampled batches have.
    """

    format: str = "ferplus"
    root: str = "../shared/data/ferplus"
    train_split: str = "train"
    valid_split: str = "valid"
    keep_ambiguous: bool = True
    limit_train: int = 0
    limit_valid: int = 0
    ratio: float = 1.0
    select_on: str = "valid"
    holdout: float = 0.1
    holdout_seed: int = 0
    class_balance: float = 0.0

    def __post_init__(self) -> None:
        self._check_face_path("data")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"data.class_balance must lie in [0, 1] (0 off, 0.5 square-root, 1 balanced), got {self.class_balance}")
        if self.limit_train < 0 or self.limit_valid < 0:
            raise ValueError(f"data.limit_train and data.limit_valid must be 0 (all) or more, got {self.limit_train}, {self.limit_valid}")
        if self.select_on not in SELECTION:
            raise ValueError(f"data.select_on must be one of {', '.join(SELECTION)}, got {self.select_on!r}")
        if self.select_on != "valid" and not 0 < self.holdout < 0.5:
            raise ValueError(f"data.holdout must lie in (0, 0.5) when select_on is {self.select_on}, got {self.holdout}")
        if not (self.ratio >= 0 and math.isfinite(self.ratio)):
            raise ValueError(f"data.ratio must be a finite number >= 0, got {self.ratio}")


@dataclass(frozen=True)
class SourceSection(FacePathFields):
    """One more dataset mixed into every batch: a ``read_dataset`` format or a ``glob`` of unlabelled faces.

    ``detector``/``fallback`` choose the face path as for ``data`` (a ``glob`` source is resized: use
    ``format: images`` with a ``root`` folder to detect and align unlabelled faces).

    ``triplets`` > 0 turns the source into vote triplets (FER+-style rater distributions): that many
    are sampled once with ``triplet_margin`` and the run's seed, and the source's unit becomes a
    triplet (3 images). ``ratio`` is its share of each batch's images.
    """

    name: str = ""
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
        self._check_face_path(f"sources[{self.name}]")
        if not self.name:
            raise ValueError("SourceSection: every source needs a name")
        if self.glob and self.detector != "none":
            raise ValueError(f"SourceSection {self.name!r}: a glob source is resized; use format: images with root: FOLDER to detect faces")
        if self.limit < 0 or self.triplets < 0 or not (self.ratio >= 0 and math.isfinite(self.ratio)):
            raise ValueError(f"SourceSection {self.name!r}: limit, triplets and ratio must be >= 0 (got {self.limit}, {self.triplets}, {self.ratio})")
        if bool(self.format) == bool(self.glob):
            raise ValueError(f"SourceSection {self.name!r}: set exactly one of format (a dataset format) or glob (image files)")
        if self.triplets and not self.format:
            raise ValueError(f"SourceSection {self.name!r}: triplets need rater votes, so a format, not a glob")
        check_at_most(f"sources[{self.name}].triplets", self.triplets, MAX_TRIPLETS)


@dataclass(frozen=True)
class LossSection:
    """Weight of each loss term (0 = off) and the FEC triplet margins.

    ``logit_adjust`` = tau > 0 trains the emotion head for balanced classes: the cross-entropy (and
    the distillation KL) see ``logits + tau * log(training prior)``, so the raw logits the model
    keeps are those of uniform classes (Menon et al., ICLR 2021). The prior adjusted for is that of
    the sampled batches: the mean soft target of the ``data`` training split, re-weighted by
    ``data.class_balance``. The split's own prior is recorded in the exported model with
    ``output_prior`` as the default prior of its probabilities.
    """

    soft_ce: float = 1.0
    logit_adjust: float = 0.0
    output_prior: str = "uniform"
    ccc: float = 0.0
    triplet: float = 0.0
    distill_kl: float = 0.0
    distill_embedding: float = 0.0
    one_class_margin: float = 0.1
    multi_class_margin: float = 0.2

    def __post_init__(self) -> None:
        for name in ("soft_ce", "logit_adjust", "ccc", "triplet", "distill_kl", "distill_embedding"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} must be a finite number >= 0, got {value}")
        if self.output_prior not in ("train", "uniform"):
            raise ValueError(f"loss.output_prior must be train or uniform, got {self.output_prior!r}")


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

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "min_lr_ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"optim.{name} must be a finite number >= 0, got {value}")
        if self.lr == 0:
            raise ValueError("optim.lr must be > 0")


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
        for name in ("epochs", "batch_size", "accumulate_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps_per_epoch < 0 or self.checkpoint_every_steps < 0 or self.eval_triplets < 0:
            raise ValueError("steps_per_epoch, checkpoint_every_steps and eval_triplets must be 0 (off/auto) or more")
        check_at_most("eval_triplets", self.eval_triplets, MAX_TRIPLETS)
        check_at_most("batch_size", self.batch_size, MAX_BATCH_SIZE)
        check_at_most("num_threads", self.num_threads, MAX_THREADS)
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be 0 (torch's default) or more, got {self.num_threads}")
        if self.select_from_epoch > self.epochs:
            raise ValueError(f"select_from_epoch ({self.select_from_epoch}) is after the last epoch ({self.epochs}), so no model "
                             f"would be exported; set select_from_epoch to at most epochs")
        check_export_name(self.export_name)
        if self.batch_size % self.accumulate_steps:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of accumulate_steps ({self.accumulate_steps}), "
                             "so every micro-batch holds the same number of images")
        if self.data.class_balance and not self.loss.logit_adjust:
            # Resampled batches shift the prior the raw logits learn; only logit adjustment records which one.
            raise ValueError("data.class_balance needs loss.logit_adjust > 0, so the model's raw logits keep a prior its metadata can state")
        self._check_loss_terms()

    def _check_loss_terms(self) -> None:
        """Loss weights that cannot work with the rest of the config, refused before any data is loaded."""
        if not any(getattr(self.loss, name) for name in LOSS_TERMS):
            raise ValueError(f"every loss weight is 0; set at least one of loss.{', loss.'.join(LOSS_TERMS)}")
        distilling = bool(self.loss.distill_kl or self.loss.distill_embedding)
        if distilling != bool(self.distill.teacher):
            raise ValueError("distill.teacher and a distillation weight (loss.distill_kl, loss.distill_embedding) go together; "
                             f"got teacher {self.distill.teacher or 'unset'}, distill_kl={self.loss.distill_kl}, "
                             f"distill_embedding={self.loss.distill_embedding}")
        if self.loss.triplet and not any(source.triplets for source in self.sources):
            raise ValueError("loss.triplet > 0 needs a source of vote triplets (sources[].triplets > 0), or the term never "
                             "sees a triplet; add one or set loss.triplet=0")
