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
