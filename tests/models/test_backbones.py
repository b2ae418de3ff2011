"""ResNet backbones: crop-sized stems, torchvision-style initialisation, and the optional timm backbone."""
import logging

import pytest
import torch
from safetensors.torch import save_file

from deepfever.models import create_model, list_architectures
from deepfever.models.resnet import BasicBlock, Bottleneck, ResNetBackbone, load_pretrained_backbone, torchvision_to_local


def _torchvision_names(backbone: ResNetBackbone) -> dict[str, str]:
    """Our key -> the torchvision key naming it, built independently of ``torchvision_to_local``."""
    names = {}
    for local in backbone.state_dict():
        parts = local.split(".")
        if parts[0] == "stem":
            names[local] = {"0": "conv1", "1": "bn1"}[parts[1]] + "." + ".".join(parts[2:])
            continue
        stage, block, kind, position, rest = int(parts[1]), parts[2], parts[3], int(parts[4]), ".".join(parts[5:])
        if kind == "shortcut":
            names[local] = f"layer{stage + 1}.{block}.downsample.{position}.{rest}"
        else:
            layer = ("conv", "bn", None)[position % 3] + str(position // 3 + 1)
            names[local] = f"layer{stage + 1}.{block}.{layer}.{rest}"
    return names


@pytest.mark.parametrize("size, spatial", [(48, 6), (64, 8), (112, 7), (224, 7)])
def test_stem_keeps_the_last_stage_map_near_7x7(size, spatial):
    backbone = ResNetBackbone(BasicBlock, (1, 1, 1, 1), 1, size).eval()
    with torch.no_grad():
        maps = backbone.stages(backbone.stem(torch.zeros(1, 1, size, size)))
    assert maps.shape[-2:] == (spatial, spatial)


def test_bottleneck_backbone_width_and_three_channel_input():
    backbone = ResNetBackbone(Bottleneck, (1, 1, 1, 1), in_chans=3, input_size=48).eval()
    assert backbone.num_features == 2048
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 48, 48)).shape == (2, 2048)


def test_key_mapping_matches_torchvision_names():
    assert torchvision_to_local("conv1.weight") == "stem.0.weight"
    assert torchvision_to_local("module.bn1.running_mean") == "stem.1.running_mean"
    assert torchvision_to_local("layer4.2.conv3.weight") == "stages.3.2.body.6.weight"
    assert torchvision_to_local("layer3.0.downsample.1.bias") == "stages.2.0.shortcut.1.bias"
    assert torchvision_to_local("fc.weight") is None


@pytest.mark.parametrize("block, depths", [(BasicBlock, (2, 2, 2, 2)), (Bottleneck, (1, 1, 1, 1))])
def test_torchvision_state_dict_loads_with_grey_sum_and_stem_resize(tmp_path, caplog, block, depths):
    torch.manual_seed(0)
    imagenet = ResNetBackbone(block, depths, in_chans=3, input_size=224)  # 7x7 RGB stem, as torchvision's
    with torch.no_grad():
        imagenet.stem[0].weight[0] = torch.linspace(-1, 1, 7).expand(3, 7, 7)
    source = {_torchvision_names(imagenet)[key]: value for key, value in imagenet.state_dict().items()}
    source["fc.weight"], source["fc.bias"] = torch.randn(1000, imagenet.num_features), torch.randn(1000)
    path = tmp_path / "imagenet.safetensors"
    save_file(source, str(path))

    face = ResNetBackbone(block, depths, in_chans=1, input_size=48)
    with caplog.at_level(logging.INFO, logger="deepfever.models.resnet"):
        report = load_pretrained_backbone(face, path)
    assert sorted(report["unexpected"]) == ["fc.bias", "fc.weight"] and not report["missing"] and not report["mismatched"]
    assert "unexpected" in caplog.text
    loaded = face.state_dict()
    layer = "stages.1.0.body.0.weight"
    assert torch.equal(loaded[layer], imagenet.state_dict()[layer])
    stem, original = loaded["stem.0.weight"], imagenet.state_dict()["stem.0.weight"]
    assert stem.shape == (64, 1, 3, 3)
    # The grey filter responds to a flat grey patch as the RGB filter did (sum over channels and taps).
    torch.testing.assert_close(stem.sum(dim=(1, 2, 3)), original.sum(dim=(1, 2, 3)), rtol=1e-5, atol=1e-5)
    # ... and keeps the kernel's layout: filter 0 was a left-to-right ramp and still is.
    assert (stem[0, 0].diff(dim=1) > 0).all()


def test_init_weights_from_torch_file_through_arch_kwargs(tmp_path):
    torch.manual_seed(1)
    trained = create_model("resnet18")
    state = {"state_dict": {"module." + key: value for key, value in trained.backbone.state_dict().items()}}
    path = tmp_path / "face.pth"
    torch.save(state, path)
    model = create_model("resnet18", arch_kwargs={"init_weights": str(path)})
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_init_weights_that_match_nothing_is_an_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ValueError, match="conv1.weight"):
        create_model("resnet18", arch_kwargs={"init_weights": str(path)})
    with pytest.raises(FileNotFoundError, match="no weights file"):
        create_model("resnet18", arch_kwargs={"init_weights": str(tmp_path / "absent.pth")})


def test_timm_backbone_when_timm_is_installed():
    pytest.importorskip("timm")
    assert "timm" in list_architectures()
    model = create_model("timm", arch_kwargs={"name": "resnet18"}, input_size=64).eval()
    assert model(torch.randn(2, 1, 64, 64))["embedding"].shape == (2, 128)
