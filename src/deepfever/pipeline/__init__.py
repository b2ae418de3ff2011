"""The face pipeline: the face stage a model records (``FaceStage``) and the one engine from image to row.

Layer 3 (issue 17): built on ``faces`` and ``models``; ``data``, ``video``, ``api``, ``extraction`` and
``serve`` use it, never the other way round. Names load on first use, so reading ``ExtractionReport``
(``deepfever extract --help``) imports no torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ExtractionReport": "deepfever.pipeline.report",
    "FaceEngine": "deepfever.pipeline.engine",
    "FacePath": "deepfever.pipeline.path",
    "FaceStage": "deepfever.pipeline.stage",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepfever.pipeline' has no attribute {name!r}")
    return getattr(import_module(module), name)
