"""Contract tests over every registered architecture, and the model file format."""
import json

import numpy as np
import pytest
import torch

from deepfever.errors import HeadUnavailableError
from deepfever.models import (
    DEFAULT_MODEL, ModelConfig, create_model, list_architectures, list_models, list_pretrained, load_model, save_model,
)


@pytest.mark.parametrize("arch", list_architectures())
def test_every_architecture_honours_the_interface(arch, device):
    torch.manual_seed(0)
    model = create_model(arch).to(device).train()
    images = torch.randn(4, model.config.in_chans, model.config.input_size, model.config.input_size, device=device)
    out = model(images)
    assert out["features"].shape[0] == 4
    assert out["embedding"].shape == (4, model.config.embedding_dim) and model.config.embedding_dim <= 128
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(4, device=device), atol=1e-5)
    assert out["emotion"].shape == (4, 8) and out["valence_arousal"].shape == (4, 2)
    assert all(torch.isfinite(value).all() for value in out.values())
    (out["emotion"].sum() + out["valence_arousal"].sum()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    assert torch.allclose(model.forward_embedding(images), model(images)["embedding"], atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = create_model("fevernet_s", trained_heads=("emotion",)).eval()
    path = save_model(model, tmp_path / "m.safetensors", {"metrics": {"x": 1}})
    assert json.loads(path.with_suffix(".json").read_text())["metrics"] == {"x": 1}
    loaded = load_model(path)
    images = torch.randn(2, 1, 48, 48)
    assert torch.equal(loaded(images)["emotion"], model(images)["emotion"])
    assert loaded.config == model.config


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="fevernet_s"):
        create_model("resnet9000")
    with pytest.raises(ValueError, match="packaged"):
        load_model("nothing.here")


def test_bundled_model_is_listed_and_self_describing():
    assert DEFAULT_MODEL in list_pretrained() and DEFAULT_MODEL in list_models()
    model = load_model(DEFAULT_MODEL)
    config = model.config
    assert config.template is not None and config.template["size"] == config.input_size
    assert config.trained_heads == ("emotion",)
    assert "ferplus" in model.info["training"]["data"]
    assert model.info["metrics"]["ferplus_valid"]["accuracy"] > 0.5


def test_untrained_head_is_not_reported(tiny_model_file):
    from deepfever import Extractor

    extractor = Extractor(model=tiny_model_file)
    crops = np.zeros((2, 48, 48), np.uint8)
    assert "valence_arousal" not in extractor.predict(crops)
    with pytest.raises(HeadUnavailableError, match="without valence/arousal"):
        extractor.valence_arousal(crops)
    assert "valence" not in extractor.columns()


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"arch": "fevernet_s", "colour": "red"})


@pytest.mark.parametrize("arch", list_architectures())
def test_batchnorm_fusion_keeps_the_function(arch):
    from deepfever.models.fuse import fuse_batchnorm

    torch.manual_seed(0)
    model = create_model(arch).train()
    images = torch.randn(8, 1, 48, 48)
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        model(images * 2 + 1)
    model.eval()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    expected, actual = model(images), fused(images)
    for key in ("embedding", "emotion"):
        torch.testing.assert_close(actual[key], expected[key], atol=1e-4, rtol=1e-4)
