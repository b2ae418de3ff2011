"""The one model interface: backbone features -> L2-normalised embedding -> heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepfever.models.config import ModelConfig


class ExpressionModel(nn.Module):
    """Backbone + compact expression embedding + emotion and valence/arousal heads.

    The heads read the embedding (before normalisation), so everything the heads know about
    expression must pass through the vector users get.
    """

    def __init__(self, backbone: nn.Module, num_features: int, config: ModelConfig, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.embed = nn.Sequential(nn.Linear(num_features, config.embedding_dim, bias=False), nn.BatchNorm1d(config.embedding_dim))
        self.dropout = nn.Dropout(dropout)
        self.emotion = nn.Linear(config.embedding_dim, len(config.class_names))
        self.valence_arousal = nn.Linear(config.embedding_dim, 2)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, shape (N, num_features)."""
        return self.backbone(images)

    def forward_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised expression vectors, shape (N, embedding_dim)."""
        return F.normalize(self.embed(self.forward_features(images)), dim=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``features``, ``embedding`` (normalised), ``emotion`` logits and ``valence_arousal`` in [-1, 1]."""
        features = self.forward_features(images)
        raw = self.embed(features)
        hidden = self.dropout(raw)
        return {
            "features": features,
            "embedding": F.normalize(raw, dim=1),
            "emotion": self.emotion(hidden),
            "valence_arousal": torch.tanh(self.valence_arousal(hidden)),
        }
