"""The face stage a model's crops come from, read from the model file: what turns a photo into its input.

A model only sees faces framed like its training crops. How a face is found (detector), what its
landmarks mean (convention), where they go (template, crop size), how pixels are resampled
(interpolation) and how colour becomes grey are therefore part of the model, not of the caller: the
model file records them (``ModelConfig.template``, ``input_size``, ``in_chans``, ``face_stage``) and
``FaceStage.of(config)`` reads them back. Callers may choose another detector; everything else is fixed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from deepfever import defaults
from deepfever.faces.align import AlignmentTemplate
from deepfever.models.config import ModelConfig

CHANNELS = {1: "grey", 3: "rgb"}
INTERPOLATIONS = (defaults.INTERPOLATION,)
GREY_CONVERSIONS = (defaults.GREY,)


@dataclass(frozen=True)
class FaceStage:
    """Photo -> aligned crop, as a model expects it.

    Args:
        detector: face detector for photos (``yunet``, ``mtcnn``; ``none`` for images that are crops).
        landmarks: convention of the five points the template was measured with (``mtcnn``).
        template: the five landmark positions in the ``template.size`` square crop.
        channels: ``grey`` or ``rgb`` crops reach the model.
        interpolation: how a face is resampled onto the crop (``defaults.INTERPOLATION``).
        grey: RGB -> grey conversion for ``grey`` models (``defaults.GREY``).

    Example:
        >>> from deepfever.models import ModelConfig
        >>> from deepfever.faces import load_default_template
        >>> stage = FaceStage.of(ModelConfig("fevernet_s", template=load_default_template().to_dict()))
        >>> stage.detector, stage.crop_size, stage.channels
        ('yunet', 48, 'grey')
    """

    detector: str
    landmarks: str
    template: AlignmentTemplate
    channels: str
    interpolation: str = defaults.INTERPOLATION
    grey: str = defaults.GREY

    def __post_init__(self) -> None:
        if self.detector not in defaults.DETECTORS:
            raise ValueError(f"FaceStage: detector must be one of {', '.join(defaults.DETECTORS)}, got {self.detector!r}")
        if self.channels not in CHANNELS.values():
            raise ValueError(f"FaceStage: channels must be 'grey' or 'rgb', got {self.channels!r}")
        if self.interpolation not in INTERPOLATIONS or self.grey not in GREY_CONVERSIONS:
            raise ValueError(f"FaceStage: this version of deepfever implements interpolation {INTERPOLATIONS[0]!r} and grey "
                             f"conversion {GREY_CONVERSIONS[0]!r}, got {self.interpolation!r} and {self.grey!r}; "
                             "upgrade deepfever to use this model")

    @classmethod
    def of(cls, config: ModelConfig, detector: str | None = None) -> FaceStage:
        """The stage recorded in a model config; ``detector`` replaces the recorded detector.

        Raises ValueError when the config has no template or one of another size than its input.
        """
        if config.template is None:
            raise ValueError(f"FaceStage.of: the {config.arch} model has no alignment template in its metadata; "
                             "it cannot align faces (save it with save_model after training)")
        template = AlignmentTemplate.from_dict(config.template)
        if template.size != config.input_size:
            raise ValueError(f"FaceStage.of: template size {template.size} != model input size {config.input_size}")
        if config.in_chans not in CHANNELS:
            raise ValueError(f"FaceStage.of: in_chans must be 1 (grey) or 3 (RGB), got {config.in_chans}")
        recorded = config.face_stage
        return cls(detector=detector or recorded["detector"], landmarks=recorded["landmarks"], template=template,
                   channels=CHANNELS[config.in_chans], interpolation=recorded["interpolation"], grey=recorded["grey"])

    @property
    def crop_size(self) -> int:
        return self.template.size

    @property
    def template_id(self) -> str:
        """Short hash of the template: part of every row's fingerprint."""
        return hashlib.sha256(json.dumps(self.template.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def with_detector(self, detector: str) -> FaceStage:
        return replace(self, detector=detector)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, recorded by what stores vectors (classifiers, indexes, run metadata)."""
        return {"detector": self.detector, "landmarks": self.landmarks, "template": self.template.to_dict(),
                "crop_size": self.crop_size, "channels": self.channels, "interpolation": self.interpolation, "grey": self.grey}

    def mismatch(self, recorded: dict[str, Any]) -> str | None:
        """One line naming what differs from a recorded stage (``to_dict`` form), or None when they agree."""
        mine = self.to_dict()
        differing = [f"{key} {recorded[key]!r} (now {mine[key]!r})" for key in sorted(mine)
                     if key in recorded and recorded[key] != mine[key]]
        return f"face stage differs: {'; '.join(differing)}" if differing else None
