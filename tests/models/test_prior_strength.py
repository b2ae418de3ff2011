"""The output prior as a strength tau in [0, 1] (issue 22): 0 is the training prior, 1 uniform, end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, write_random_crops
from deepfever.api import Extractor
from deepfever.cli import main
from deepfever.io.tables import read_table
from deepfever.models.config import ModelConfig
from deepfever.models.prior import prior_offset

TRAIN_PRIOR = (0.32, 0.3, 0.12, 0.1, 0.05, 0.016, 0.08, 0.014)
RAREST, COMMONEST = int(np.argmin(TRAIN_PRIOR)), int(np.argmax(TRAIN_PRIOR))


@pytest.fixture(scope="module")
def prior_model_file(tmp_path_factory) -> Path:
    """A random-init fevernet_s that records a training class prior (what makes strengths possible)."""
    import torch

    from deepfever.faces.template import load_default_template
    from deepfever.models import create_model, save_model

    torch.manual_seed(0)
    model = create_model("fevernet_s", template=load_default_template().to_dict(), trained_heads=("emotion",), class_prior=TRAIN_PRIOR)
    return save_model(model.eval(), tmp_path_factory.mktemp("prior_model") / "prior.safetensors")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (8, 48, 48), dtype=np.uint8)


def probabilities(model_file: Path, crops: np.ndarray, prior, backend: str = "torch", model=None) -> np.ndarray:
    return Extractor(model=model or model_file, device="cpu", prior=prior, backend=backend).predict(crops)["probabilities"]


def test_strength_zero_is_train_one_is_uniform_and_between_moves_monotonically(prior_model_file, crops):
    train, uniform = probabilities(prior_model_file, crops, "train"), probabilities(prior_model_file, crops, "uniform")
    assert not np.allclose(train, uniform, atol=1e-3)
    np.testing.assert_allclose(probabilities(prior_model_file, crops, 0), train, atol=1e-6)
    np.testing.assert_allclose(probabilities(prior_model_file, crops, 1.0), uniform, atol=1e-6)
    steps = [probabilities(prior_model_file, crops, tau) for tau in (0.0, 0.25, 0.5, 0.75, 1.0)]
    rare = np.stack([step[:, RAREST] for step in steps])
    common = np.stack([step[:, COMMONEST] for step in steps])
    assert (np.diff(rare, axis=0) > 0).all() and (np.diff(common, axis=0) < 0).all()
    # p ∝ p_train · prior^(−tau), the stated formula, at tau = 0.5:
    expected = train * np.asarray(TRAIN_PRIOR) ** -0.5
    np.testing.assert_allclose(steps[2], expected / expected.sum(1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("adjustment", [0.0, 0.5, 1.0])
def test_strength_interpolates_between_the_models_own_train_and_uniform(adjustment):
    """A logit-adjusted model (raw logits uniform) keeps its own distance between the two priors."""
    config = ModelConfig("fevernet_s", class_prior=TRAIN_PRIOR, logit_adjustment=adjustment,
                         output_prior="uniform" if adjustment else "train")
    train, uniform = (prior_offset(config, name) for name in ("train", "uniform"))
    train = np.zeros(8, np.float32) if train is None else train
    uniform = np.zeros(8, np.float32) if uniform is None else uniform
    for tau in (0.2, 0.5, 0.9):
        np.testing.assert_allclose(prior_offset(config, tau), (1 - tau) * train + tau * uniform, atol=1e-6)
    np.testing.assert_allclose(train - uniform, (adjustment or 1.0) * np.log(TRAIN_PRIOR), atol=1e-5)


def test_cli_prior_strength_is_applied_recorded_and_resume_refuses_a_change(prior_model_file, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "crops"
    write_random_crops(folder, 3, "face")
    output = tmp_path / "out.parquet"
    arguments = ["extract", str(folder), "-o", str(output), "--model", str(prior_model_file), "--detector", "none", "--batch-size", "1"]
    assert main([*arguments, "--prior", "0.5"]) == 0
    table = read_table(output).sort_values("path")
    assert table.attrs["metadata"]["prior"] == 0.5
    columns = [column for column in table.columns if column.startswith("p_")]
    train = cli_table(arguments, tmp_path, "train", "train")[columns].to_numpy()
    cli_table(arguments, tmp_path, "1", "uniform")  # strength 1 is recorded as uniform
    expected = train * np.asarray(TRAIN_PRIOR) ** -0.5
    np.testing.assert_allclose(table[columns].to_numpy(), expected / expected.sum(1, keepdims=True), atol=1e-5)

    # An interrupted run at strength 0.5 cannot be resumed at another strength.
    resumable = tmp_path / "resumable.parquet"
    resume_arguments = [*arguments[:3], str(resumable), *arguments[4:], "--chunk-size", "1", "--resume"]
    original = Extractor.iter_extract
    calls = []

    def interrupted(self, *args, **kwargs):
        if calls:
            raise RuntimeError("simulated interruption")
        calls.append(1)
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Extractor, "iter_extract", interrupted)
        with pytest.raises(RuntimeError, match="simulated"):
            main([*resume_arguments, "--prior", "0.5"])
    capsys.readouterr()
    assert main([*resume_arguments, "--prior", "uniform"]) == 2
    message = capsys.readouterr().err
    assert "cannot resume" in message and "different prior" in message and "0.5" in message
    assert main([*resume_arguments, "--prior", "0.50"]) == 0  # the same strength, spelt otherwise, resumes
    assert read_table(resumable).attrs["metadata"]["prior"] == 0.5


def cli_table(arguments: list[str], tmp_path: Path, prior: str, recorded: str):
    """The table ``extract --prior PRIOR`` writes, after checking its metadata records ``recorded``."""
    output = tmp_path / f"prior_{prior}.parquet"
    assert main([*arguments[:3], str(output), *arguments[4:], "--prior", prior]) == 0
    table = read_table(output).sort_values("path")
    assert table.attrs["metadata"]["prior"] == recorded
    return table


@pytest.mark.parametrize("value", ["1.5", "-0.1", "balanced", "nan"])
def test_cli_refuses_an_invalid_prior_in_one_line_naming_the_flag(value, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["extract", "x.jpg", "-o", "out.parquet", "--prior", value])
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--prior" in error and "strength in [0, 1]" in error and repr(value) in error


@pytest.mark.parametrize("value", [1.5, "balanced", True, float("nan")])
def test_python_refuses_an_invalid_prior_naming_the_argument(prior_model_file, value):
    with pytest.raises(ValueError, match=r"Extractor: prior must be 'train', 'uniform' or a strength in \[0, 1\]"):
        Extractor(model=prior_model_file, device="cpu", prior=value).load()
    with pytest.raises(ValueError, match="ModelConfig: output_prior"):
        ModelConfig("fevernet_s", output_prior=value)


def test_a_strength_needs_a_recorded_training_prior(tiny_model_file):
    with pytest.raises(ValueError, match="does not record its training class prior"):
        Extractor(model=tiny_model_file, device="cpu", prior=0.5).load()


def test_onnx_backend_applies_the_strength_like_torch(prior_model_file, crops, tmp_path):
    pytest.importorskip("onnxruntime")
    from deepfever.models.onnx_export import export_onnx

    extractor = Extractor(model=prior_model_file, device="cpu", backend="torch").load()
    onnx_file = export_onnx(extractor.model_, extractor.fingerprint_, tmp_path / "prior.onnx")
    for tau in (0.0, 0.35, 1.0):
        np.testing.assert_allclose(probabilities(None, crops, tau, "onnxruntime", model=onnx_file),
                                   probabilities(prior_model_file, crops, tau), atol=1e-5)


def test_packaged_models_record_the_strength_the_benchmark_chose():
    """The default output prior of each packaged model is the one benchmarks/prior_strength.py measured and chose."""
    result = json.loads((REPO / "benchmarks" / "results" / "prior_strength.json").read_text())
    for name, curve in result["curves"].items():
        recorded = json.loads((REPO / "src" / "deepfever" / "weights" / f"{name}.json").read_text())["model"]["output_prior"]
        chosen = {0.0: "train", 1.0: "uniform"}.get(curve["chosen_tau"], curve["chosen_tau"])
        assert recorded == chosen, f"{name}: metadata output_prior {recorded!r}, benchmark chose {chosen!r}"
        best = max(point["score"] for point in curve["points"])
        assert next(point["score"] for point in curve["points"] if point["tau"] == curve["chosen_tau"]) == best
