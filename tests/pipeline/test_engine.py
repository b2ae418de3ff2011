"""The one engine (issue 16.3) and the Extractor facade over it (16.4)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_random_crops
from deepfever.api import Extractor
from deepfever.faces.align import align_face, ready_crop
from deepfever.faces.detect import Detector, PassThroughDetector, detect_shrunk
from deepfever.faces.template import load_default_template
from deepfever.faces.types import Face
from deepfever.models.preprocess import crops_to_tensor, to_grey
from deepfever.pipeline import FaceStage


# -- the facade: settings checked where they are written, results per call -------------------------
@pytest.mark.parametrize("settings, named", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"), ({"detector": "haar"}, "detector"),
    ({"prior": "balanced"}, "prior"), ({"backend": "tensorrt"}, "backend"), ({"device": "gpu"}, "device"),
    ({"flip_tta": "yes"}, "flip_tta"), ({"detector_options": ["model_path"]}, "detector_options"),
])
def test_constructor_refuses_bad_settings_naming_them(settings, named):
    with pytest.raises(ValueError, match=f"Extractor: {named} must"):
        Extractor(**settings)


def test_get_and_set_params_round_trip_and_drop_the_loaded_model(tiny_model_file):
    extractor = Extractor(model=tiny_model_file, device="cpu", detector="none", batch_size=8)
    assert extractor.get_params() == {"model": tiny_model_file, "device": "cpu", "detector": "none", "detector_options": None,
                                      "batch_size": 8, "flip_tta": False, "prior": None, "backend": "auto"}
    assert Extractor(**extractor.get_params()).get_params() == extractor.get_params()
    extractor.load()
    assert extractor.set_params(batch_size=4) is extractor and extractor.batch_size == 4
    assert not hasattr(extractor, "engine_")  # reloaded on next use, with the new settings
    assert extractor.ensure_loaded().engine_.batch_size == 4
    with pytest.raises(ValueError, match="batch_size must"):
        extractor.set_params(batch_size=0, flip_tta=True)
    assert extractor.batch_size == 4 and extractor.flip_tta is False  # a refused change changes nothing
    with pytest.raises(ValueError, match="unknown parameters \\['batchsize'\\]"):
        extractor.set_params(batchsize=2)


def test_each_call_owns_its_report_even_when_streams_interleave(tiny_model_file, tmp_path):
    two = write_random_crops(tmp_path / "two", 2, "a")
    three = write_random_crops(tmp_path / "three", 3, "b") + [tmp_path / "missing.png"]
    (tmp_path / "missing.png").write_bytes(b"")
    extractor = Extractor(model=tiny_model_file, device="cpu", detector="none", batch_size=1)
    first, second = extractor.iter_extract(two), extractor.iter_extract(three)
    rows = [next(first), next(second), *first, *second]
    assert len(rows) == 5
    assert (first.report.images, first.report.faces, len(first.report.failures)) == (2, 2, 0)
    assert (second.report.images, second.report.faces, len(second.report.failures)) == (4, 3, 1)
    table = extractor.extract(two)
    assert table.attrs["report"]["faces"] == 2 and table.attrs["failures"] == []
    assert not hasattr(extractor, "report_")


# -- one engine: every entry point gets the same rows ---------------------------------------------
def test_one_call_per_image_gives_the_rows_extract_gives(tiny_model_file, tmp_path):
    """What the server calls (``engine_.image_rows``) equals ``Extractor.extract`` row for row."""
    from deepfever.io.images import load_image

    paths = write_random_crops(tmp_path, 3, "face")
    extractor = Extractor(model=tiny_model_file, device="cpu", detector="none").load()
    table = extractor.extract(paths)
    for path, expected in zip(paths, table.to_dict(orient="records")):
        (row,) = extractor.engine_.image_rows(load_image(path), str(path))
        assert sorted(row) == sorted(extractor.columns())
        for key, value in row.items():
            if isinstance(value, str):
                assert value == expected[key], key
            else:
                np.testing.assert_allclose(value, expected[key], atol=1e-6, err_msg=key)


class _FacesUnlessBlack(Detector):
    """The whole image is a face unless it is all black (a photo without a face)."""

    name = "stub"

    def detect(self, image: np.ndarray) -> list[Face]:
        return PassThroughDetector(load_default_template()).detect(image) if image.any() else []


def test_failures_keep_input_order_while_images_are_detected_in_groups(tiny_model_file, tmp_path):
    from deepfever.pipeline import ExtractionReport

    (tmp_path / "broken.png").write_bytes(b"")
    rng = np.random.default_rng(5)
    black, face = np.zeros((48, 48, 3), np.uint8), rng.integers(1, 256, (48, 48, 3), dtype=np.uint8)
    items = [("black0", black), ("broken0", tmp_path / "broken.png"), ("face0", face), ("black1", black),
             ("face1", face), ("broken1", tmp_path / "broken.png")]
    engine = Extractor(model=tiny_model_file, device="cpu").load().engine_
    report = ExtractionReport()
    rows = list(engine.iter_image_rows(items, report, detector=_FacesUnlessBlack()))
    assert [row["path"] for row in rows] == ["face0", "face1"]
    assert [failure["path"] for failure in report.failures] == ["black0", "broken0", "black1", "broken1"]
    assert (report.images, report.images_with_faces, report.faces) == (6, 2, 2)


def test_ready_crop_path_is_one_numeric_convention(tmp_path):
    """A template-sized crop comes back unchanged; a bigger one is warped like a detected face; caches
    and inference convert it to grey alike."""
    from deepfever.data.arrays import load_crop_array
    from deepfever.data.formats.base import Sample

    template = load_default_template()
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ready_crop(small, template), small)
    big = np.asarray(Image.fromarray(small).resize((160, 160), Image.BICUBIC))
    (face,) = PassThroughDetector(template).detect(big)
    np.testing.assert_array_equal(ready_crop(big, template), align_face(big, face.landmarks, template))
    Image.fromarray(big).save(tmp_path / "big.png")
    cached = load_crop_array([Sample(path=str(tmp_path / "big.png"), label=0)], 48, 1, use_cache=False)
    np.testing.assert_array_equal(cached[0], to_grey(ready_crop(big, template)))


def test_rgb_crops_reach_a_grey_model_through_to_grey():
    from deepfever.models.config import ModelConfig

    config = ModelConfig("fevernet_s", in_chans=1)
    crops = np.random.default_rng(4).integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    torch.testing.assert_close(crops_to_tensor(crops, config), crops_to_tensor(to_grey(crops), config))


class _HalfSizeDetector(Detector):
    """Finds one face whose box is the whole image it is given, and records the sizes it saw."""

    name = "stub"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        self.seen.append((height, width))
        landmarks = np.array([[width * 0.3, height * 0.4]] * 5, np.float32)
        return [Face(np.array([0, 0, width, height], np.float32), landmarks, 1.0)]


def test_shrink_detect_map_back_gives_full_size_coordinates():
    detector = _HalfSizeDetector()
    images = [np.zeros((400, 640, 3), np.uint8), np.zeros((100, 80, 3), np.uint8)]
    big, small = detect_shrunk(detector, images, 320)
    assert detector.seen == [(200, 320), (100, 80)]  # shrunk only when larger than the side
    np.testing.assert_allclose(big[0].box, [0, 0, 640, 400], atol=1e-4)
    np.testing.assert_allclose(big[0].landmarks[0], [(320 * 0.3 + 0.5) * 2 - 0.5, (200 * 0.4 + 0.5) * 2 - 0.5], atol=1e-4)
    np.testing.assert_allclose(small[0].box, [0, 0, 80, 100])


# -- the face stage travels with the model ---------------------------------------------------------
def test_saved_models_record_their_face_stage_and_extractors_read_it(tiny_model_file, tmp_path):
    from deepfever.models import create_model, save_model

    recorded = json.loads(tiny_model_file.with_suffix(".json").read_text())["model"]["face_stage"]
    assert recorded == {"detector": "yunet", "landmarks": "mtcnn", "interpolation": "area_then_linear", "grey": "bt601"}
    model = create_model("fevernet_s", template=load_default_template().to_dict(),
                         face_stage={**recorded, "detector": "mtcnn"})
    path = save_model(model.eval(), tmp_path / "mtcnn_stage.safetensors")
    extractor = Extractor(model=path, device="cpu").load()
    assert extractor.stage_.detector == "mtcnn" and extractor.stage_.channels == "grey" and extractor.stage_.crop_size == 48
    assert Extractor(model=path, device="cpu", detector="none").load().stage_.detector == "none"


def test_face_stage_refuses_what_it_cannot_reproduce_and_names_a_mismatch():
    from deepfever.models.config import ModelConfig

    with pytest.raises(ValueError, match="no alignment template"):
        FaceStage.of(ModelConfig("fevernet_s"))
    with pytest.raises(ValueError, match="face_stage must map exactly detector, landmarks, interpolation, grey"):
        ModelConfig("fevernet_s", face_stage={"detector": "yunet"})
    config = ModelConfig("fevernet_s", template=load_default_template().to_dict(),
                         face_stage={"detector": "yunet", "landmarks": "mtcnn", "interpolation": "nearest", "grey": "bt601"})
    with pytest.raises(ValueError, match="implements interpolation 'area_then_linear'"):
        FaceStage.of(config)
    stage = FaceStage.of(ModelConfig("fevernet_s", template=load_default_template().to_dict()))
    assert stage.mismatch(stage.to_dict()) is None
    line = stage.mismatch({**stage.to_dict(), "detector": "none", "crop_size": 96})
    assert line == "face stage differs: crop_size 96 (now 48); detector 'none' (now 'yunet')"
