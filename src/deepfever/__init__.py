"""DeepFEVER: faces in, expression vectors out.

Importing this package is cheap; heavy modules load on first use.

Example:
    >>> from deepfever import Extractor  # doctest: +SKIP
    >>> table = Extractor().extract(["photo.jpg"])  # doctest: +SKIP
"""
from __future__ import annotations

from deepfever._lazy import lazy_attributes
from deepfever._version import __version__

_LAZY = {"Extractor": "deepfever.api", "create_model": "deepfever.models", "list_models": "deepfever.models",
         "load_model": "deepfever.models"}

__all__ = ["Extractor", "__version__", "create_model", "list_models", "load_model"]

__getattr__ = lazy_attributes(__name__, _LAZY)
