"""Detector registry contract, NMS, ordering and the weights cache (no photos needed)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfever.errors import WeightsUnavailableError
from deepfever.faces import Detector, Face, create_detector, list_detectors, load_default_template
from deepfever.faces import _mtcnn_weights
from deepfever.errors import ImageReadError
from deepfever.faces.detect import as_rgb_uint8, sort_faces
from deepfever.faces.boxes import batched_nms, nms
from deepfever.io.hashing import file_sha256


def test_registry_lists_all_detectors() -> None:
    assert list_detectors() == ["mtcnn", "none", "yunet"]


def test_unknown_detector_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"valid choices are \['mtcnn', 'none', 'yunet'\]"):
        create_detector("retinaface")


def test_yunet_is_bundled_with_its_recorded_sha256(tmp_path: Path) -> None:
    from deepfever.faces.yunet import BUNDLED_MODEL

    assert file_sha256(BUNDLED_MODEL) == "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
    assert create_detector("yunet").model_path == BUNDLED_MODEL
    with pytest.raises(FileNotFoundError, match="is not a file"):
        create_detector("yunet", model_path=tmp_path / "missing.onnx")


def test_default_detector_is_yunet() -> None:
    detector = create_detector()
    assert isinstance(detector, Detector) and detector.name == "yunet"


def test_device_reaches_the_detectors_that_can_use_it(device: str) -> None:
    mtcnn = create_detector("mtcnn", device=device)
    assert mtcnn.device == torch.device(device)
    assert all(next(net.parameters()).device.type == torch.device(device).type for net in mtcnn._load())
    yunet = create_detector("yunet", device=device)
    assert yunet.device == device and yunet.engine in ("opencv", "onnxruntime")
    assert create_detector("none", device=device).name == "none"


def test_yunet_engines_agree_and_blank_images_have_no_faces(device: str) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'deepfever[onnx]')")
    blank = np.full((200, 300, 3), 90, np.uint8)
    assert create_detector("yunet", device=device, engine="onnxruntime").detect(blank) == []
    with pytest.raises(ValueError, match="engine must be one of"):
        create_detector("yunet", engine="tensorrt")


def test_none_detector_returns_whole_image_with_template_landmarks() -> None:
    detector = create_detector("none")
    image = np.zeros((96, 96, 3), np.uint8)
    [face] = detector.detect(image)
    np.testing.assert_allclose(face.box, [0, 0, 96, 96])
    np.testing.assert_allclose(face.landmarks, load_default_template().scaled(96).array, atol=1e-4)
    assert [len(found) for found in detector.detect_batch([image, image])] == [1, 1]


def test_faces_sort_left_to_right_then_top_to_bottom() -> None:
    def face(x: float, y: float) -> Face:
        return Face(np.array([x, y, x + 10, y + 10], np.float32), np.zeros((5, 2), np.float32), 1.0)

    faces = [face(50, 0), face(0, 40), face(0, 5)]
    assert [(f.box[0], f.box[1]) for f in sort_faces(faces)] == [(0, 5), (0, 40), (50, 0)]


@pytest.mark.parametrize("image", [
    np.zeros((8, 9), np.uint8), np.zeros((8, 9, 4), np.uint8), np.full((8, 9, 3), 65535, np.uint16),
])
def test_inputs_are_converted_to_rgb_uint8(image: np.ndarray) -> None:
    rgb = as_rgb_uint8(image, "test")
    assert rgb.shape == (8, 9, 3) and rgb.dtype == np.uint8


def test_float_images_are_refused_with_a_fix() -> None:
    # The detectors use the one converter of io.images, which says how to turn floats into uint8.
    with pytest.raises(ImageReadError, match="Floats are ambiguous"):
        as_rgb_uint8(np.zeros((8, 8, 3), np.float32), "test")


def _naive_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        suppressed = False
        for j in keep:
            iw = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            ih = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = iw * ih
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            overlap = inter / (area_i + area_j - inter) if mode == "union" else inter / min(area_i, area_j)
            suppressed = suppressed or overlap > threshold
        if not suppressed:
            keep.append(i)
    return keep


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_naive_float64_loop(mode: str, threshold: float) -> None:
    rng = np.random.default_rng(7)
    corner = rng.uniform(0, 100, size=(300, 2))
    boxes = np.hstack([corner, corner + rng.uniform(5, 40, size=(300, 2))])
    scores = rng.uniform(size=300)
    expected = _naive_nms(boxes, scores, threshold, mode)
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold, mode)
    assert kept.tolist() == expected


def test_batched_nms_never_suppresses_across_groups() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    groups = torch.tensor([0, 1, 0])
    assert sorted(batched_nms(boxes, scores, groups, 0.5).tolist()) == [0, 1]


def test_cold_cache_with_bad_wheel_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPFEVER_MTCNN_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(WeightsUnavailableError, match="pip download --no-deps"):
        _mtcnn_weights.ensure_weights()
    fake = tmp_path / "facenet_pytorch-2.6.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("facenet_pytorch/data/pnet.pt", b"not weights")
    monkeypatch.setenv("DEEPFEVER_MTCNN_WHEEL", str(fake))
    with pytest.raises(WeightsUnavailableError, match="does not match the pinned"):
        _mtcnn_weights.ensure_weights()
    assert not (tmp_path / "cache" / "mtcnn" / "pnet.pt").exists()


def test_failing_pip_raises_weights_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def fail(*args: object, **kwargs: object) -> None:
        raise subprocess.CalledProcessError(1, "pip", stderr="No matching distribution (offline)")

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path))
    monkeypatch.delenv("DEEPFEVER_MTCNN_WHEEL", raising=False)
    monkeypatch.setattr(_mtcnn_weights.subprocess, "run", fail)
    with pytest.raises(WeightsUnavailableError, match=str(tmp_path / "mtcnn")):
        _mtcnn_weights.ensure_weights()


def test_importing_faces_does_not_load_torch_or_opencv() -> None:
    import subprocess
    import sys

    code = "import sys, deepfever.faces; print('torch' in sys.modules, 'cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_extractor_puts_its_detectors_on_its_device(device: str, tiny_model_file: Path) -> None:
    """``extract --device cuda`` (and each torchrun rank's ``cuda:k``) reaches the detector, not only the embedder."""
    from deepfever import Extractor

    extractor = Extractor(model=tiny_model_file, device=device).load()
    assert extractor.detector_for("mtcnn").device == torch.device(device)
    assert extractor.detector_for().name == "yunet" and extractor.detector_for().device == str(extractor.device_)
