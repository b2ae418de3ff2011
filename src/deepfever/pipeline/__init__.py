"""The face pipeline: the face stage a model records (``FaceStage``) and the one engine from image to row.

Layer 3 (issue 17): built on ``faces`` and ``models``; ``data``, ``video``, ``api``, ``extraction`` and
``serve`` use it, never the other way round.
"""
from deepfever.pipeline.engine import FaceEngine
from deepfever.pipeline.path import FacePath
from deepfever.pipeline.report import ExtractionReport
from deepfever.pipeline.stage import FaceStage

__all__ = ["ExtractionReport", "FaceEngine", "FacePath", "FaceStage"]
