"""The label space every dataset is mapped into: AffectNet's 8 categories, in AffectNet's order."""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
"""Index i is AffectNet expression code i."""

EMOTIONS_7: tuple[str, ...] = EMOTIONS[:7]
"""The 7-class protocol drops contempt."""

EMOTION_INDEX: dict[str, int] = {name: index for index, name in enumerate(EMOTIONS)}
