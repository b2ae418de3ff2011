"""Shared fixtures: where ../shared is, a random-init model file, generated FER+-layout data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FALLBACK_TEMPLATE = {"size": 48, "landmarks": [[15.5, 19.5], [32.5, 19.5], [24.0, 27.5], [17.5, 36.5], [30.5, 36.5]]}


@pytest.fixture
def device() -> str:
    """Tests run on CPU; a GPU machine can override this fixture."""
    return "cpu"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """A random-init fevernet_s with the packaged template, saved in the model file format."""
    import torch

    from deepfever.faces.template import load_default_template
    from deepfever.models import create_model, save_model

    torch.manual_seed(0)
    model = create_model("fevernet_s", template=load_default_template().to_dict(), trained_heads=("emotion",))
    return save_model(model.eval(), tmp_path_factory.mktemp("model") / "tiny.safetensors", {"training": {"data": "none (random init)"}})


def write_random_crops(folder: Path, count: int, prefix: str, seed: int = 0) -> list[Path]:
    """``count`` random 48x48 RGB 'face crops' named ``{prefix}{i}.png`` (for detector ``none``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"{prefix}{index}.png" for index in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(path)
    return paths


def write_ferplus_fixture(root: Path, per_split: int = 48, seed: int = 0) -> Path:
    """A FERPlus-layout dataset: FER2013Train/Valid with label.csv vote counts and 48x48 PNGs.

    Images of class c carry a bright bar at a class-specific height, so a model can learn them.
    """
    rng = np.random.default_rng(seed)
    for folder in ("FER2013Train", "FER2013Valid"):
        directory = root / folder
        directory.mkdir(parents=True)
        lines = []
        for index in range(per_split):
            emotion_column = index % 4  # neutral, happiness, surprise, sadness
            image = rng.integers(0, 60, (48, 48), dtype=np.uint8)
            image[6 + 10 * emotion_column : 12 + 10 * emotion_column] = 230
            name = f"fer{index:07d}.png"
            Image.fromarray(image, mode="L").save(directory / name)
            votes = [0] * 10
            votes[emotion_column] = 8
            votes[(emotion_column + 1) % 8] = 2
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (directory / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def assert_same_checkpoints(run_a: Path, run_b: Path) -> None:
    """Two runs' ``checkpoints/last.safetensors`` hold the same tensors, bit for bit (resume is exact)."""
    import torch
    from safetensors.torch import load_file

    a = load_file(str(run_a / "checkpoints" / "last.safetensors"))
    b = load_file(str(run_b / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
