from dataclasses import FrozenInstanceError

import pytest

from deepfever.config import config_to_dict, load_config
from deepfever.training.config import TrainConfig


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 5\noptim:\n  lr: 0.2\naugment:\n  flip: false\n")
    config = load_config(TrainConfig, path, ["optim.lr=0.05", "data.root=/data/fer", "batch_size=32"])
    assert config.epochs == 5 and config.optim.lr == 0.05 and config.batch_size == 32
    assert config.data.root == "/data/fer" and config.augment.flip is False
    assert config_to_dict(config)["optim"]["lr"] == 0.05


def test_int_accepted_for_float_and_result_is_frozen():
    config = load_config(TrainConfig, None, ["optim.lr=1"])
    assert isinstance(config.optim.lr, float)
    with pytest.raises(FrozenInstanceError):
        config.epochs = 3


@pytest.mark.parametrize(
    "override, message",
    [("optim.lrr=0.1", "unknown key"), ("epochs=many", "expects int"), ("epochs", "key.subkey=value")],
)
def test_bad_overrides_say_what_is_wrong(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(TrainConfig, None, [override])


def test_shipped_config_loads():
    from conftest import REPO

    config = load_config(TrainConfig, REPO / "configs" / "ferplus.yaml")
    assert config.model.arch == "fevernet_s" and config.export_name == "fevernet_s.ferplus"


def test_every_shipped_training_config_loads():
    from conftest import REPO

    paths = [path for path in sorted((REPO / "configs").glob("*.yaml")) if "\nepochs:" in path.read_text()]
    assert len(paths) >= 5
    for path in paths:
        load_config(TrainConfig, path)


@pytest.mark.parametrize("override, message", [
    ("eval_triplets=100000000", "eval_triplets must be at most 1,000,000"),
    ("sources=[{name: votes, format: ferplus, root: x, triplets: 100000000}]", r"sources\[votes\].triplets must be at most"),
    ("batch_size=100000000", "batch_size must be at most"),
    ("model.embedding_dim=100000000", "model.embedding_dim must be at most"),
    ("model.input_size=100000", "model.input_size must be at most"),
    ("num_threads=100000000", "num_threads must be at most"),
    ("select_from_epoch=31", r"select_from_epoch \(31\) is after the last epoch \(30\)"),
    ("loss.distill_kl=1.0", "distill.teacher and a distillation weight"),
    ("distill.teacher=teacher.safetensors", "distill.teacher and a distillation weight"),
    ("loss.soft_ce=0", "every loss weight is 0"),
    ("loss.triplet=1.0", "loss.triplet > 0 needs a source of vote triplets"),
    ("accumulate_steps=5", r"batch_size \(64\) must be a multiple of accumulate_steps \(5\)"),
])
def test_sizes_and_impossible_combinations_are_refused_at_load(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(TrainConfig, None, [override])


@pytest.mark.parametrize("name", ["/tmp/model", "../model", "sub/model", "..", ".", "", "a\\b", "metrics", "environment"])
def test_export_name_must_be_a_plain_name_that_stays_inside_output_dir(name):
    with pytest.raises(ValueError, match="export_name"):
        load_config(TrainConfig, None, [f"export_name='{name}'"])
    assert load_config(TrainConfig, None, ["export_name=fevernet_s.tiny"]).export_name == "fevernet_s.tiny"
