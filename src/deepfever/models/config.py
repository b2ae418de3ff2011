"""The model config that travels with the weights, so inference never guesses preprocessing."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from deepfever import defaults
from deepfever.labels import EMOTIONS

HEADS = ("emotion", "valence_arousal")
OUTPUT_PRIORS = ("train", "uniform")
FACE_STAGE_KEYS = ("detector", "landmarks", "interpolation", "grey")
"""What ``ModelConfig.face_stage`` records beside ``template``, ``input_size`` and ``in_chans``."""
MAX_INPUT_SIZE = 1024
"""Largest crop side a model may take: beyond it a typo in a config only exhausts memory."""
MAX_EMBEDDING_DIM = 65_536
"""Largest expression vector a model may produce, for the same reason."""


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
        for name in ("class_names", "trained_heads", "class_prior"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        problem = self._problem()
        if problem:
            raise ValueError(f"ModelConfig: {problem}")
        object.__setattr__(self, "output_prior", normalize_prior(self.output_prior, "ModelConfig: output_prior"))

    def _problem(self) -> str | None:
        """The first field whose value would build a model that cannot work, or make NaN or nonsense outputs."""
        if not isinstance(self.arch, str) or not self.arch:
            return f"arch must be an architecture name, got {self.arch!r}"
        if not isinstance(self.arch_kwargs, dict) or not all(isinstance(key, str) for key in self.arch_kwargs):
            return f"arch_kwargs must map argument names to values, got {self.arch_kwargs!r}"
        for name, limit in (("input_size", MAX_INPUT_SIZE), ("embedding_dim", MAX_EMBEDDING_DIM)):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= limit:
                return f"{name} must be an integer in [1, {limit:,}], got {value!r}"
        if self.in_chans not in (1, 3) or not _is_int(self.in_chans):
            return f"in_chans must be 1 (grey) or 3 (RGB), got {self.in_chans!r}"
        if not _is_number(self.mean):
            return f"mean must be a finite number (the input normalisation), got {self.mean!r}"
        if not _is_number(self.std) or self.std <= 0:
            return f"std must be a finite number > 0 (inputs are divided by it), got {self.std!r}"
        if not isinstance(self.class_names, tuple) or not self.class_names or not all(isinstance(n, str) and n for n in self.class_names):
            return f"class_names must be a non-empty list of names, got {self.class_names!r}"
        if not isinstance(self.trained_heads, tuple) or not set(self.trained_heads) <= set(HEADS):
            return f"trained_heads must be a list drawn from {list(HEADS)}, got {self.trained_heads!r}"
        if self.template is not None and not isinstance(self.template, dict):
            return f"template must be an object with size and landmarks (or null), got {self.template!r}"
        if self.class_prior is not None:
            prior = self.class_prior
            if not isinstance(prior, tuple) or not all(_is_number(value) and value >= 0 for value in prior) or not sum(prior) > 0:
                return f"class_prior must be finite numbers >= 0 with a positive sum (class frequencies), got {prior!r}"
            if len(prior) != len(self.class_names):
                return f"class_prior has {len(prior)} values for {len(self.class_names)} classes"
        if not _is_number(self.logit_adjustment) or self.logit_adjustment < 0:
            return f"logit_adjustment must be a finite number >= 0, got {self.logit_adjustment!r}"
        stage = self.face_stage
        if not isinstance(stage, dict) or set(stage) != set(FACE_STAGE_KEYS) or not all(isinstance(v, str) and v for v in stage.values()):
            return f"face_stage must map exactly {', '.join(FACE_STAGE_KEYS)} to names, got {stage!r}"
        if stage["detector"] not in defaults.DETECTORS:
            return f"face_stage.detector must be one of {', '.join(defaults.DETECTORS)}, got {stage['detector']!r}"
        return None

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
        """The config of a sidecar's ``model`` section; ``ValueError`` names the first field of the wrong type or value."""
        values = dict(data)
        for name in ("class_names", "trained_heads", "class_prior"):
            if name in values and values[name] is not None and not isinstance(values[name], (list, tuple)):
                raise ValueError(f"ModelConfig: {name} must be a list, got {values[name]!r}")
        if not isinstance(values.get("face_stage") or {}, dict):
            raise ValueError(f"ModelConfig: face_stage must be an object with the keys {', '.join(FACE_STAGE_KEYS)}, "
                             f"got {values['face_stage']!r}")
        values["class_names"] = tuple(values.get("class_names", EMOTIONS))
        values["trained_heads"] = tuple(values.get("trained_heads", ()))
        values["face_stage"] = {**default_face_stage(), **(values.get("face_stage") or {})}
        if values.get("class_prior") is not None:
            values["class_prior"] = tuple(values["class_prior"])
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite real number (JSON's ``NaN`` and ``Infinity`` and booleans excluded)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
