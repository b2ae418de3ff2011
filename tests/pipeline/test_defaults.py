"""Every entry point takes its defaults from the model file or from ``deepfever.defaults`` (issue 16.1).

Each test reads one entry point's own defaults (signatures, parsers, settings dataclasses) and
compares them with the one defaults module, so a copy that drifts (the server used to detect with
MTCNN while everything else used YuNet) fails here, naming the entry point.
"""
from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from deepfever import defaults
from deepfever.cli import build_parser


def _signature_defaults(function) -> dict:
    return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def _field_defaults(cls) -> dict:
    return {field.name: field.default for field in dataclasses.fields(cls) if field.default is not dataclasses.MISSING}


def _parsed(argv: list[str]):
    return build_parser().parse_args(argv)


def test_packaged_models_record_the_default_face_stage():
    from deepfever.models.registry import WEIGHTS_DIR, list_pretrained

    assert defaults.MODEL in list_pretrained()
    for name in list_pretrained():
        stage = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())["model"]["face_stage"]
        assert stage == {"detector": defaults.DETECTOR, "landmarks": defaults.LANDMARKS,
                         "interpolation": defaults.INTERPOLATION, "grey": defaults.GREY}, name


def test_extractor_defaults_come_from_the_defaults_module_and_the_model():
    from deepfever.api import Extractor

    found = _signature_defaults(Extractor.__init__)
    assert found["model"] == defaults.MODEL and found["device"] == defaults.DEVICE
    assert found["batch_size"] == defaults.BATCH_SIZE and found["flip_tta"] is defaults.FLIP_TTA
    assert found["prior"] == defaults.OUTPUT_PRIOR
    assert found["detector"] is None  # None: the detector the model file records
    assert Extractor(device="cpu").load().stage_.detector == defaults.DETECTOR


def test_cli_extract_builds_the_default_extractor():
    from deepfever.api import Extractor
    from deepfever.cli._common import build_extractor

    args = _parsed(["extract", "photo.jpg", "-o", "out.parquet"])
    built = build_extractor(args).get_params()
    python = Extractor().get_params()
    for name in ("model", "device", "batch_size", "flip_tta", "prior", "backend"):
        assert built[name] == python[name], name
    assert args.detector == defaults.DETECTOR


def test_data_prepare_detects_with_the_default_detector():
    from deepfever.data.prepare import PrepareSettings

    settings = _field_defaults(PrepareSettings)
    assert settings["detector"] == defaults.DETECTOR and settings["box_detector"] == defaults.DETECTOR
    args = _parsed(["data", "prepare", "--format", "ferplus", "--root", "r", "-o", "c"])
    assert args.detector == defaults.DETECTOR and args.box_detector == defaults.DETECTOR


def test_onnx_calibration_detects_with_the_default_detector():
    from deepfever.pipeline.path import FacePath

    assert _signature_defaults(FacePath.sample_crops)["detector"] is None  # None: the stage's detector
    assert _parsed(["export", "onnx", "m", "-o", "m.onnx"]).calibration_detector == defaults.DETECTOR


def test_detector_registry_probes_and_benchmarks_share_the_default_detector():
    from deepfever.cli import probe
    from deepfever.faces import detect

    assert detect.DEFAULT_DETECTOR == defaults.DETECTOR
    assert _signature_defaults(detect.create_detector)["name"] == defaults.DETECTOR
    assert probe.DEFAULT_DETECTOR == defaults.DETECTOR


def test_video_tracking_defaults():
    from deepfever.video import iter_frame_rows

    found = _signature_defaults(iter_frame_rows)
    assert found["detect_side"] == defaults.DETECT_SIDE
    assert found["max_age_s"] == defaults.TRACK_MAX_AGE_S and found["min_hits"] == defaults.TRACK_MIN_HITS


def test_image_pixel_limit():
    from deepfever.io import images

    assert images.MAX_IMAGE_PIXELS == defaults.MAX_IMAGE_PIXELS


def test_training_and_evaluation_defaults():
    from deepfever.evaluation.suite import Suite
    from deepfever.training.config import TrainConfig

    train = _field_defaults(TrainConfig)
    assert train["device"] == defaults.DEVICE and train["eval_flip_tta"] is defaults.EVAL_FLIP_TTA
    assert _field_defaults(Suite)["flip_tta"] is defaults.EVAL_FLIP_TTA


@pytest.mark.parametrize("name, expected", [
    ("model", defaults.MODEL), ("detector", defaults.DETECTOR), ("device", defaults.DEVICE),
    ("batch_size", defaults.BATCH_SIZE), ("max_pixels", defaults.UPLOAD_MAX_PIXELS),
])
def test_server_settings(name, expected):
    pytest.importorskip("fastapi")
    from deepfever.serve._service import ServeSettings

    assert _field_defaults(ServeSettings)[name] == expected, f"ServeSettings.{name}"
