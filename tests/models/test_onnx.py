"""ONNX export and the onnxruntime backend: parity with torch, int8 closeness, metadata, CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfever import Extractor
from deepfever.cli import main
from deepfever.models.onnx_export import export_onnx
from deepfever.models.onnx_runtime import OnnxModel

FERPLUS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ferplus"


def _ferplus_crops(split: str, start: int, count: int) -> np.ndarray:
    folder = FERPLUS / f"FER2013{split}"
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    paths = sorted(folder.glob("*.png"))[start:start + count]
    return np.stack([np.asarray(Image.open(path).convert("L")) for path in paths])


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(device="cpu", backend="torch").load()


@pytest.fixture(scope="module")
def fp32_file(extractor: Extractor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(extractor.model_, extractor.fingerprint_, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_fp32_matches_torch_on_real_crops(extractor: Extractor, fp32_file: Path) -> None:
    crops = _ferplus_crops("Valid", 0, 96)
    onnx_model = OnnxModel(fp32_file)
    for flip in (False, True):
        extractor.flip_tta = flip
        expected = extractor.predict(crops)
        got = onnx_model.predict_arrays(crops, batch_size=40, flip_tta=flip)
        for key in ("embedding", "probabilities"):
            assert np.abs(got[key] - expected[key]).max() <= 1e-4, (key, flip)
    extractor.flip_tta = False


def test_dynamic_batch_and_rgb_crops(extractor: Extractor, fp32_file: Path) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (7, 48, 48, 3), dtype=np.uint8)
    onnx_model = OnnxModel(fp32_file)
    one = onnx_model.predict_arrays(crops[:1])["embedding"]
    seven = onnx_model.predict_arrays(crops)["embedding"]
    assert seven.shape == (7, 128)
    np.testing.assert_allclose(one[0], seven[0], atol=1e-5)
    np.testing.assert_allclose(seven, extractor.embed(crops), atol=1e-4)


def test_metadata_carries_config_and_fingerprint(extractor: Extractor, fp32_file: Path) -> None:
    onnx_model = OnnxModel(fp32_file)
    assert onnx_model.fingerprint == extractor.fingerprint_
    assert onnx_model.config == extractor.model_.config
    assert onnx_model.precision == "fp32"


def test_int8_export_stays_close_to_torch(extractor: Extractor, tmp_path: Path) -> None:
    calibration = _ferplus_crops("Train", 0, 128)
    path = export_onnx(extractor.model_, extractor.fingerprint_, tmp_path / "model.int8.onnx", calibration=calibration)
    onnx_model = OnnxModel(path)
    assert onnx_model.precision == "int8"
    assert onnx_model.fingerprint["model_id"] == extractor.fingerprint_["model_id"] + "+int8"
    crops = _ferplus_crops("Valid", 0, 128)
    got, expected = onnx_model.predict_arrays(crops), extractor.predict(crops)
    assert (got["embedding"] * expected["embedding"]).sum(axis=1).mean() >= 0.995
    assert (got["probabilities"].argmax(1) == expected["probabilities"].argmax(1)).mean() >= 0.95


def test_bad_inputs_get_one_line_errors(extractor: Extractor, tmp_path: Path) -> None:
    from deepfever.faces.yunet import BUNDLED_MODEL

    with pytest.raises(ValueError, match="lacks the metadata"):
        OnnxModel(BUNDLED_MODEL)
    with pytest.raises(FileNotFoundError, match="deepfever export onnx"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="calibration must be non-empty uint8"):
        export_onnx(extractor.model_, extractor.fingerprint_, tmp_path / "x.onnx", calibration=np.zeros((4, 48, 48), np.float32))
    with pytest.raises(ValueError, match="no face found"):
        extractor.ensure_loaded().engine_.sample_crops([tmp_path], "none")


def test_cli_export_and_its_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "model.onnx"
    assert main(["export", "onnx", "fevernet_s.ferplus", "-o", str(output)]) == 0
    assert OnnxModel(output).precision == "fp32"
    assert main(["export", "onnx", "fevernet_s.ferplus", "-o", str(output)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "onnx", "fevernet_s.ferplus", "-o", str(tmp_path / "q.onnx"), "--int8"]) == 2
    assert "--calibration" in capsys.readouterr().err


def test_class_prior_matches_torch(tmp_path: Path) -> None:
    """Probabilities under the training or a uniform prior, as predict_arrays gives them for torch."""
    import torch

    from deepfever.models.predict import predict_arrays
    from deepfever.faces.template import load_default_template
    from deepfever.models import create_model, save_model

    torch.manual_seed(0)
    prior = (0.32, 0.3, 0.12, 0.1, 0.05, 0.016, 0.08, 0.014)
    model = create_model("fevernet_s", template=load_default_template().to_dict(), trained_heads=("emotion",), class_prior=prior)
    weights = save_model(model.eval(), tmp_path / "prior.safetensors")
    extractor = Extractor(model=weights, device="cpu", backend="torch").load()
    onnx_model = OnnxModel(export_onnx(extractor.model_, extractor.fingerprint_, tmp_path / "prior.onnx"))
    crops = np.random.default_rng(1).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    for name in ("train", "uniform"):
        expected = predict_arrays(extractor.model_, crops, prior=name)["probabilities"]
        np.testing.assert_allclose(onnx_model.predict_arrays(crops, prior=name)["probabilities"], expected, atol=1e-5)
    assert not np.allclose(onnx_model.predict_arrays(crops, prior="uniform")["probabilities"],
                           onnx_model.predict_arrays(crops, prior="train")["probabilities"], atol=1e-3)


def test_extractor_onnxruntime_backend_matches_torch(extractor: Extractor, fp32_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    import onnxruntime

    if device.startswith("cuda") and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("the onnxruntime backend on a GPU needs onnxruntime-gpu")
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    crops = _ferplus_crops("Valid", 0, 32)
    expected = extractor.predict(crops)
    for model in ("fevernet_s.ferplus", fp32_file):  # exported once into the cache, or a file given
        onnx_extractor = Extractor(model=model, device=device, backend="onnxruntime").load()
        assert onnx_extractor.fingerprint_ == extractor.fingerprint_
        got = onnx_extractor.predict(crops)
        assert set(got) == set(expected)
        assert np.abs(got["embedding"] - expected["embedding"]).max() <= 1e-4
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnxruntime"):
        Extractor(backend="tensorrt").load()


def test_cli_extract_with_the_onnxruntime_backend(fp32_file: Path, tmp_path: Path) -> None:
    from conftest import write_random_crops
    from deepfever.io.tables import read_table

    write_random_crops(tmp_path / "crops", 3, "c")
    rows = {}
    for backend, model in (("torch", "fevernet_s.ferplus"), ("onnxruntime", str(fp32_file))):
        output = tmp_path / f"{backend}.parquet"
        assert main(["extract", str(tmp_path / "crops"), "-o", str(output), "--detector", "none", "--device", "cpu",
                     "--backend", backend, "--model", model]) == 0
        rows[backend] = read_table(output)
    np.testing.assert_allclose(np.stack(rows["onnxruntime"]["embedding"]), np.stack(rows["torch"]["embedding"]), atol=1e-4)


def test_auto_runs_onnxruntime_on_the_cpu_and_starts_without_torch(tmp_path: Path) -> None:
    """The default backend on a CPU: the cached export, outputs as torch's, and a second run that never imports torch."""
    import json
    import os
    import subprocess
    import sys

    from conftest import write_random_crops

    write_random_crops(tmp_path / "crops", 2, "c")
    environment = {**os.environ, "DEEPFEVER_CACHE": str(tmp_path / "cache")}
    script = ("import json, sys; from deepfever import Extractor; from deepfever.io.images import load_image; "
              "e = Extractor(device='cpu').load(); "
              f"p = e.predict(load_image({str(sorted((tmp_path / 'crops').iterdir())[0])!r})[None]); "
              "print(json.dumps([e.backend_, 'torch' in sys.modules, p['embedding'].tolist()]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                                      check=True).stdout.splitlines()[-1]) for _ in range(2)]
    assert [run[:2] for run in runs] == [["onnxruntime", True], ["onnxruntime", False]]  # exported once, then torch-free
    crop = np.asarray(Image.open(sorted((tmp_path / "crops").iterdir())[0]).convert("RGB"))[None]
    expected = Extractor(device="cpu", backend="torch").predict(crop)["embedding"]
    np.testing.assert_allclose(np.asarray(runs[1][2]), expected, atol=1e-5)


def test_auto_falls_back_to_torch_when_the_export_cannot_be_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DEEPFEVER_CACHE", str(blocker))
    extractor = Extractor(device="cpu").load()
    assert extractor.backend_ == "torch"
    assert "running it with torch" in caplog.text
    with pytest.raises(OSError):
        Extractor(device="cpu", backend="onnxruntime").load()  # asked for explicitly: the error, not a fallback


def test_auto_falls_back_to_torch_when_the_architecture_does_not_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    import deepfever.models.onnx_export as onnx_export

    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::made_up' to ONNX opset version 17 is not supported")

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "export_onnx", refuse)
    extractor = Extractor(device="cpu").load()
    assert extractor.backend_ == "torch" and "aten::made_up" in caplog.text
    assert extractor.embed(np.zeros((1, 48, 48), np.uint8)).shape == (1, extractor.model_.config.embedding_dim)


def test_onnxruntime_takes_the_thread_count_torchrun_and_ray_give_each_worker(fp32_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers of torchrun and Ray get OMP_NUM_THREADS=1 (torch honours it); two 2-thread sessions on 2 cores fight."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert OnnxModel(fp32_file).session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert OnnxModel(fp32_file).session.get_session_options().intra_op_num_threads == 0  # ONNX Runtime's default
    assert OnnxModel(fp32_file, threads=3).session.get_session_options().intra_op_num_threads == 3
