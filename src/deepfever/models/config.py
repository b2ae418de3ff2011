"""The model config that travels with the weights, so inference never guesses preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepfever import defaults
from deepfever.labels import EMOTIONS

HEADS = ("emotion", "valence_arousal")
OUTPUT_PRIORS = ("train", "uniform")
FACE_STAGE_KEYS = ("detector", "landmarks", "interpolation", "grey")
"""What ``ModelConfig.face_stage`` records beside ``template``, ``input_size`` and ``in_chans``."""


def default_face_stage() -> dict[str, str]:
    """The face stage of models written before it was recorded, and of new ones unless told otherwise."""
    return {"detector": defaults.DETECTOR, "landmarks": defaults.LANDMARKS, "interpolation": defaults.INTERPOLATION,
            "grey": defaults.GREY}


def normalize_prior(value: str | float, owner: str = "prior") -> str | float:
    """The one spelling of an output prior: ``train`` (strength 0), ``uniform`` (1) or a strength between.

    Accepts the names, a number in [0, 1] or its text (``"0.5"``, as the CLI passes it), so equal
    priors compare equal in run identities and metadata. ``owner`` names the argument in the error.
    """
    if value in OUTPUT_PRIORS:
        return value
    try:
        strength = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        strength = float("nan")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"{owner} must be 'train', 'uniform' or a strength in [0, 1] (0 = train, 1 = uniform), got {value!r}")
    return "train" if strength == 0.0 else "uniform" if strength == 1.0 else strength


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it the crops it was trained on.

    ``template`` is the 5-point alignment template (``{"size": S, "landmarks": [[x, y] * 5]}``) that
    the face pipeline must warp faces to; ``trained_heads`` lists the heads whose outputs mean
    something (an untrained head is never reported).

    ``class_prior`` is the emotion distribution of the training data. A model trained with a
    logit-adjusted loss (``logit_adjustment`` = tau > 0) has raw logits for *uniform* classes; one
    trained without it has logits for the training prior. ``output_prior`` (``train``, ``uniform`` or
    a strength between them, see ``normalize_prior``) is what probabilities report by default;
    ``deepfever.models.prior`` converts between them.

    ``face_stage`` completes ``template``, ``input_size`` and ``in_chans`` into the whole face stage
    the crops come from (``deepfever.pipeline.FaceStage``): the detector for photos, the landmark
    convention the template was measured in, the interpolation and the grey conversion.
    """

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: int = 48
    in_chans: int = 1
    mean: float = 0.5
    std: float = 0.25
    embedding_dim: int = 128
    class_names: tuple[str, ...] = EMOTIONS
    trained_heads: tuple[str, ...] = ()
    template: dict[str, Any] | None = None
    class_prior: tuple[float, ...] | None = None
    logit_adjustment: float = 0.0
    output_prior: str | float = "train"
    face_stage: dict[str, str] = field(default_factory=default_face_stage)

    def __post_init__(self) -> None:
        if not isinstance(self.face_stage, dict) or set(self.face_stage) != set(FACE_STAGE_KEYS):
            raise ValueError(f"ModelConfig: face_stage must have exactly the keys {', '.join(FACE_STAGE_KEYS)}, "
                             f"got {self.face_stage!r}")
        object.__setattr__(self, "output_prior", normalize_prior(self.output_prior, "ModelConfig: output_prior"))
        if self.class_prior is not None and len(self.class_prior) != len(self.class_names):
            raise ValueError(f"ModelConfig: class_prior has {len(self.class_prior)} values for {len(self.class_names)} classes")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "input_size": self.input_size,
            "in_chans": self.in_chans,
            "mean": self.mean,
            "std": self.std,
            "embedding_dim": self.embedding_dim,
            "class_names": list(self.class_names),
            "trained_heads": list(self.trained_heads),
            "template": self.template,
            "class_prior": list(self.class_prior) if self.class_prior is not None else None,
            "logit_adjustment": self.logit_adjustment,
            "output_prior": self.output_prior,
            "face_stage": dict(self.face_stage),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        values = dict(data)
        values["class_names"] = tuple(values.get("class_names", EMOTIONS))
        values["trained_heads"] = tuple(values.get("trained_heads", ()))
        values["face_stage"] = {**default_face_stage(), **(values.get("face_stage") or {})}
        if values.get("class_prior") is not None:
            values["class_prior"] = tuple(float(value) for value in values["class_prior"])
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)
