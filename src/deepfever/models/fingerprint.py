"""The fingerprint every output row and export carries: which weights and config, which template, which crop size.

``model_id`` is ``<file stem>@<weights sha256, 12 hex>-<config sha256, 8 hex>``. The config part hashes the
sidecar's whole ``model`` section as loaded (normalisation, classes, heads, class prior, output prior,
template, face stage), because editing any of it changes the vectors or probabilities of the same
weights. Provenance (training data, metrics) is not part of it: a score added later changes nothing.

Compatibility rule: model ids written before the config was hashed (``<stem>@<weights hash>``, no
``-`` part) cannot prove which config made their rows, so resume, indexes and classifiers refuse them
like any other model; ``model_id_change`` words why in one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from deepfever.io.hashing import file_sha256
from deepfever.models.config import ModelConfig

_MODEL_ID = re.compile(r"^(?P<weights>.+@[0-9a-f]{12})(?:-(?P<config>[0-9a-f]{8}))?(?P<suffix>\+.*)?$")


def config_digest(config: ModelConfig) -> str:
    """sha256 (hex) of the config as canonical JSON: equal exactly when every field is equal."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def model_fingerprint(weights: str | os.PathLike, config: ModelConfig) -> dict[str, Any]:
    """``model_id`` (file stem, weights and config hashes), ``template_id`` (hash of the alignment template) and ``crop_size``.

    Two tables, classifiers or ONNX files agree on their vectors exactly when their fingerprints agree.

    Example:
        >>> model_fingerprint(weights, model.config)  # doctest: +SKIP
        {'model_id': 'fevernet_s.ferplus@ebafce4e3c11-5f0d2a91', 'template_id': '3f2a...', 'crop_size': 48}
    """
    return {
        "model_id": f"{Path(weights).stem}@{file_sha256(weights)[:12]}-{config_digest(config)[:8]}",
        "template_id": hashlib.sha256(json.dumps(config.template, sort_keys=True).encode()).hexdigest()[:12],
        "crop_size": config.input_size,
    }


def model_id_change(recorded: Any, current: Any) -> str:
    """Why two model ids differ, in words (empty when they are equal or not deepfever ids).

    Example:
        >>> model_id_change("m@0123456789ab-01234567", "m@0123456789ab-89abcdef").startswith("the same weights")
        True
    """
    then, now = _MODEL_ID.match(str(recorded)), _MODEL_ID.match(str(current))
    if recorded == current or not then or not now or then["weights"] != now["weights"]:
        return ""
    if then["config"] is None and now["config"] is not None:
        return (f"model_id {recorded} hashed only the weights (written before model_id covered the model config), so it "
                "cannot show which preprocessing made those vectors; make them again with this model")
    if then["config"] != now["config"]:
        return ("the same weights with another model config: the sidecar's preprocessing, heads or face stage were "
                "edited since; restore that sidecar, or make the vectors again with this one")
    return ""
