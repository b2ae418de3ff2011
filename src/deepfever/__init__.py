"""DeepFEVER: faces in, expression vectors out.

Importing this package is cheap; heavy modules load on first use.

Example:
    >>> from deepfever import Extractor  # doctest: +SKIP
    >>> table = Extractor().extract(["photo.jpg"])  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

from deepfever._version import __version__

__all__ = ["Extractor", "__version__", "create_model", "list_models", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "Extractor":
        from deepfever.api import Extractor

        return Extractor
    if name in ("create_model", "list_models", "load_model"):
        from deepfever import models

        return getattr(models, name)
    raise AttributeError(f"module 'deepfever' has no attribute {name!r}")
