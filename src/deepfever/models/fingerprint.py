"""The fingerprint every output row and export carries: which weights, which template, which crop size."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deepfever.io.hashing import file_sha256
from deepfever.models.config import ModelConfig


def model_fingerprint(weights: str | os.PathLike, config: ModelConfig) -> dict[str, Any]:
    """``model_id`` (file stem and weights sha256), ``template_id`` (hash of the alignment template) and ``crop_size``.

    Two tables, classifiers or ONNX files agree on their vectors exactly when their fingerprints agree.

    Example:
        >>> model_fingerprint(weights, model.config)  # doctest: +SKIP
        {'model_id': 'fevernet_s.ferplus@ebafce4e3c11', 'template_id': '3f2a...', 'crop_size': 48}
    """
    return {
        "model_id": f"{Path(weights).stem}@{file_sha256(weights)[:12]}",
        "template_id": hashlib.sha256(json.dumps(config.template, sort_keys=True).encode()).hexdigest()[:12],
        "crop_size": config.input_size,
    }
