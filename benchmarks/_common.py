"""Shared bits of the benchmark scripts: where the shared data lives and how results are saved."""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

from deepfever._version import source_revision
from deepfever.models import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "benchmarks" / "results"


def result_name(base: str, model: str) -> str:
    """``base`` for the bundled default model, ``base__<model>`` otherwise: one model's results never replace another's."""
    tag = Path(model).stem if str(model).endswith(".safetensors") else str(model)
    return base if tag == DEFAULT_MODEL else f"{base}__{tag}"


def save_result(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the source revision and machine it was measured on."""
    result = {**result, "deepfever_revision": source_revision(), "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
