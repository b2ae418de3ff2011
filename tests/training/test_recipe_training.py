"""Multi-task training with mixed sources, self-distillation lineage, and exact mid-epoch resume."""
import csv
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_same_checkpoints, FALLBACK_TEMPLATE, write_ferplus_fixture
from deepfever.config import load_config
from deepfever.models import ModelConfig, build_model, save_model
from deepfever.training.config import DistillSection, LossSection, TrainConfig
from deepfever.training.loop import train
from deepfever.training.task import ExpressionTask


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    ferplus = write_ferplus_fixture(root / "ferplus", per_split=48)
    faces = root / "faces"
    faces.mkdir()
    rng = np.random.default_rng(1)
    for index in range(10):
        size = 60 + 10 * index  # unlabelled crops come in any size up to 160 px
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(faces / f"u{index:05d}.jpg")
    torch.manual_seed(0)
    teacher = build_model(ModelConfig(arch="fevernet_s", template=FALLBACK_TEMPLATE, trained_heads=("emotion",)))
    teacher_file = save_model(teacher.eval(), root / "teacher.safetensors", {"training": {"data": "none (random init)"}})
    return {"ferplus": ferplus, "faces": faces, "teacher": teacher_file, "cache": root / "cache"}


def recipe(data, output, *extra):
    sources = (f"sources=[{{name: vote_triplets, format: ferplus, root: {data['ferplus']}, options: {{keep_ambiguous: true}}, "
               f"ratio: 0.5, triplets: 60, triplet_margin: 0.2}}, {{name: unlabelled, glob: '{data['faces']}/u*.jpg', ratio: 0.25}}]")
    return load_config(TrainConfig, None, [
        f"data.root={data['ferplus']}", f"output_dir={output}", sources, "data.ratio=0.25", "batch_size=12",
        "epochs=2", "steps_per_epoch=3", "optim.lr=0.05", "optim.warmup_epochs=0", "eval_flip_tta=false", "eval_triplets=40",
        "augment.erase_probability=0", "num_threads=1", "loss.triplet=1.0", "loss.distill_kl=0.5",
        "loss.distill_embedding=0.5", f"distill.teacher={data['teacher']}", *extra,
    ])


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_recipe_logs_every_term_and_chains_teacher_lineage(data, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(data["cache"]))
    first = tmp_path / "generation1"
    train(recipe(data, first, "epochs=1"))
    rows = read_rows(first / "metrics.csv")
    for column in ("train_loss", "train_soft_ce", "train_triplet", "train_distill_kl", "train_distill_embedding",
                   "valid_accuracy", "valid_triplet_accuracy"):
        assert np.isfinite(float(rows[-1][column])), column
    info = json.loads((first / "model.json").read_text())
    assert info["training"]["generation"] == 1
    assert info["training"]["lineage"][0]["sha256"] == hashlib.sha256(data["teacher"].read_bytes()).hexdigest()
    assert info["metrics"]["ferplus_valid_vote_triplets"]["n"] == 40

    second = tmp_path / "generation2"
    train(recipe(data, second, "epochs=1", f"distill.teacher={first / 'model.safetensors'}"))
    lineage = json.loads((second / "model.json").read_text())["training"]["lineage"]
    assert [entry["generation"] for entry in lineage] == [0, 1]
    assert lineage[1]["model"] == str((first / "model.safetensors").resolve())


def test_interrupted_mid_epoch_and_resumed_equals_uninterrupted(data, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(data["cache"]))
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(recipe(data, straight, "steps_per_epoch=2"))
    train(recipe(data, interrupted, "steps_per_epoch=2"), stop_after_steps=1)  # inside epoch 1
    assert json.loads((interrupted / "checkpoints" / "last.json").read_text())["sampler"] == {"position": 1}
    train(recipe(data, interrupted, "steps_per_epoch=2"), resume=True, stop_after_steps=1)  # end of epoch 1
    state = interrupted / "checkpoints" / "last.json"
    legacy = {k: v for k, v in json.loads(state.read_text()).items() if k not in ("step", "sampler", "epoch_totals")}
    state.write_text(json.dumps(legacy))  # what checkpoints written before mid-epoch resume held
    train(recipe(data, interrupted, "steps_per_epoch=2"), resume=True, stop_after_steps=1)  # inside epoch 2
    train(recipe(data, interrupted, "steps_per_epoch=2"), resume=True)
    assert_same_checkpoints(straight, interrupted)
    timing = ("seconds", "images_per_second")
    strip = lambda rows: [{k: v for k, v in row.items() if k not in timing} for row in rows]  # noqa: E731
    assert strip(read_rows(straight / "metrics.csv")) == strip(read_rows(interrupted / "metrics.csv"))


def test_non_finite_loss_names_the_step_and_every_term(data, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(data["cache"]))
    with pytest.raises(FloatingPointError, match=r"epoch 1, step \d+: .*'distill_kl'"):
        train(recipe(data, tmp_path / "nan", "optim.lr=1.0e+30"))


def test_teacher_stays_frozen_in_eval_mode_and_weights_are_checked():
    torch.manual_seed(0)
    config = ModelConfig(arch="fevernet_s")
    student, teacher = build_model(config), build_model(config)
    before = {name: value.clone() for name, value in teacher.state_dict().items()}
    loss = LossSection(distill_kl=1.0, distill_embedding=1.0)
    task = ExpressionTask(student, loss, DistillSection(temperature=2.0), config, teacher).train()
    assert student.training and not teacher.training
    batch = {"images": torch.randn(6, 1, 48, 48), "soft": torch.full((6, 8), float("nan")),
             "valence_arousal": torch.full((6, 2), float("nan")), "triplets": torch.zeros(0, 3, dtype=torch.long),
             "types": torch.zeros(0, dtype=torch.long)}
    terms, _ = task(batch)
    assert set(terms) == {"loss", "soft_ce", "distill_kl", "distill_embedding"}
    terms["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[name], value) for name, value in teacher.state_dict().items())
    with pytest.raises(ValueError, match="distill.teacher"):
        ExpressionTask(student, loss, DistillSection(), config, None)
