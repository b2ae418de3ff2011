"""The model config that travels with the weights, so inference never guesses preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepfever.data.labels import EMOTIONS

HEADS = ("emotion", "valence_arousal")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it the crops it was trained on.

    ``template`` is the 5-point alignment template (``{"size": S, "landmarks": [[x, y] * 5]}``) that
    the face pipeline must warp faces to; ``trained_heads`` lists the heads whose outputs mean
    something (an untrained head is never reported).
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        values = dict(data)
        values["class_names"] = tuple(values.get("class_names", EMOTIONS))
        values["trained_heads"] = tuple(values.get("trained_heads", ()))
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)
