"""CPU smoke test of the training loop: it learns, writes every artefact, and resumes exactly."""
import json

import pytest
import torch

from conftest import assert_same_checkpoints, write_ferplus_fixture
from deepfever.cli import main
from deepfever.config import load_config
from deepfever.training.config import TrainConfig
from deepfever.training.hooks import read_metrics
from deepfever.training.loop import train

OVERRIDES = ["epochs=3", "batch_size=16", "optim.lr=0.05", "optim.warmup_epochs=0", "eval_flip_tta=false",
             "augment.erase_probability=0", "num_threads=1"]


def _config(root, output, extra=()):
    return load_config(TrainConfig, None, [f"data.root={root}", f"output_dir={output}", *OVERRIDES, *extra])


@pytest.fixture(scope="module")
def ferplus_root(tmp_path_factory):
    return write_ferplus_fixture(tmp_path_factory.mktemp("ferplus"), per_split=64)


def test_training_writes_every_artefact_and_learns(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    status = main(["train", "--config", "/dev/null", f"data.root={ferplus_root}", f"output_dir={output}", *OVERRIDES])
    assert status == 0
    for name in ("config.yaml", "environment.json", "metrics.csv", "metrics.json", "curves.png",
                 "model.safetensors", "model.json", "checkpoints/last.safetensors"):
        assert (output / name).is_file(), name
    info = json.loads((output / "model.json").read_text())
    assert info["model"]["template"]["size"] == 48 and info["model"]["trained_heads"] == ["emotion"]
    assert info["metrics"]["ferplus_valid"]["accuracy"] >= 0.75  # four easy synthetic classes
    environment = json.loads((output / "environment.json").read_text())
    assert environment["torch"] == torch.__version__ and "deepfever_revision" in environment


def test_refuses_to_overwrite_a_run(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train(_config(ferplus_root, output))


def test_output_dir_that_is_a_file_is_refused_even_with_overwrite(ferplus_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    output.write_text("mine")
    status = main(["train", "--config", "/dev/null", "--overwrite", f"data.root={ferplus_root}", f"output_dir={output}", *OVERRIDES])
    assert status == 2 and "is a file, not a folder" in capsys.readouterr().err and output.read_text() == "mine"


def test_interrupted_and_resumed_equals_uninterrupted(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(_config(ferplus_root, straight))
    train(_config(ferplus_root, interrupted), stop_after_epochs=1)
    train(_config(ferplus_root, interrupted), resume=True)
    assert_same_checkpoints(straight, interrupted)
    timing = ("seconds", "images_per_second")
    rows = [[{k: v for k, v in row.items() if k not in timing} for row in read_metrics(run / "metrics.csv")]
            for run in (straight, interrupted)]
    assert rows[0] == rows[1]  # the epoch after the resume logs its own losses, not the previous epoch's added in


def test_non_finite_loss_names_the_step(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FloatingPointError, match="epoch 1, step"):
        train(_config(ferplus_root, tmp_path / "nan", ["optim.lr=1e30"]))


def test_init_from_starts_at_the_trained_model_and_records_it(ferplus_root, tmp_path, monkeypatch, tiny_model_file):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    train(_config(ferplus_root, tmp_path / "base"))
    base = tmp_path / "base" / "model.safetensors"
    frozen_lr = ["epochs=1", "optim.lr=1e-12", "select_from_epoch=1"]
    train(_config(ferplus_root, tmp_path / "fine", [f"model.init_from={base}", *frozen_lr]))
    train(_config(ferplus_root, tmp_path / "scratch", frozen_lr))
    fine = json.loads((tmp_path / "fine" / "model.json").read_text())
    scratch = json.loads((tmp_path / "scratch" / "model.json").read_text())
    assert fine["metrics"]["ferplus_valid"]["accuracy"] >= 0.75 > scratch["metrics"]["ferplus_valid"]["accuracy"]
    assert fine["training"]["initialised_from"]["model"] == str(base.resolve())
    assert scratch["training"]["initialised_from"] is None
    with pytest.raises(ValueError, match="init_from"):
        train(_config(ferplus_root, tmp_path / "bad", [f"model.init_from={tiny_model_file}", "model.embedding_dim=64"]))


def test_backbone_init_starts_resnet_from_a_file_and_the_export_loads_without_it(ferplus_root, tmp_path, monkeypatch):
    from deepfever.models import create_model, load_model

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(3)
    pretrained = create_model("resnet18").backbone.state_dict()
    init_file = tmp_path / "imagenet_like.pth"
    torch.save(pretrained, init_file)
    frozen = ["model.arch=resnet18", "model.embedding_dim=32", f"model.backbone_init={init_file}", "epochs=1",
              "optim.lr=1e-12", "data.limit_train=32", "data.limit_valid=16"]
    train(_config(ferplus_root, tmp_path / "run", frozen))
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["training"]["initialised_from"]["backbone"]["model"] == str(init_file.resolve())
    assert "init_weights" not in info["model"]["arch_kwargs"]
    init_file.unlink()
    exported = load_model(tmp_path / "run" / "model.safetensors")
    conv = "conv1.weight" if "conv1.weight" in pretrained else next(iter(pretrained))
    assert torch.allclose(exported.backbone.state_dict()[conv], pretrained[conv])
    with pytest.raises(ValueError, match="backbone_init"):
        train(_config(ferplus_root, tmp_path / "bad", [f"model.backbone_init={tmp_path / 'x.pth'}"]))


@pytest.mark.parametrize("override, flag", [("eval_triplets=100000000", "eval_triplets"), ("select_from_epoch=4", "select_from_epoch"),
                                            ("export_name=../outside", "export_name"), ("export_name=ABSOLUTE", "export_name")])
def test_cli_refuses_impossible_runs_before_work_in_one_line(ferplus_root, tmp_path, monkeypatch, capsys, override, flag):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"someone else's model")
    output = tmp_path / "run"
    override = override.replace("ABSOLUTE", str(tmp_path / "outside"))
    status = main(["train", "--config", "/dev/null", f"data.root={ferplus_root}", f"output_dir={output}", *OVERRIDES, override])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error.startswith("deepfever train: error:") and flag in error and "\n" not in error
    assert not output.exists() and not (tmp_path / "cache").exists()  # refused before any work
    assert outside.read_bytes() == b"someone else's model"
