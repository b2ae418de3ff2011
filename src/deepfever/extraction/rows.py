"""The row builder moved to ``deepfever.pipeline.rows`` (one engine, issue 16); this name stays while
``deepfever.serve`` still imports it here, and goes once the server calls ``FaceEngine.row``."""
from deepfever.pipeline.rows import SMOOTH_SUFFIX, PendingBatch, face_row, prediction_columns, prediction_fields

__all__ = ["SMOOTH_SUFFIX", "PendingBatch", "face_row", "prediction_columns", "prediction_fields"]
