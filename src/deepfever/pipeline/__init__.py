"""The face pipeline: the face stage a model records (``FaceStage``) and the one engine from image to row.

Layer 3 (issue 17): built on ``faces`` and ``models``; ``data``, ``video``, ``api``, ``extraction`` and
``serve`` use it, never the other way round. Names load on first use, so reading ``ExtractionReport``
(``deepfever extract --help``) imports no torch.
"""
from __future__ import annotations

from deepfever._lazy import lazy_attributes

_LAZY = {
    "ExtractionReport": "deepfever.pipeline.report",
    "FaceEngine": "deepfever.pipeline.engine",
    "FacePath": "deepfever.pipeline.path",
    "FaceStage": "deepfever.pipeline.stage",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
