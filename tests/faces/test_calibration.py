"""Landmark calibration onto the template's convention, and the weighted similarity fit it relies on."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from deepfever.faces.align import AlignmentTemplate, align_face, estimate_similarity, transform_points
from deepfever.faces.calibration import (LandmarkCalibration, crop_displacement, from_face_frame, landmarks_for_alignment,
                                         load_calibration, template_id, to_face_frame, to_template_convention)
from deepfever.faces.template import load_default_template

TEMPLATE = load_default_template()
MOUTH_UP = np.array([[0, 0], [0, 0], [0.01, -0.02], [0, -0.07], [0, -0.07]])  # YuNet vs MTCNN, face frame


def similarity(angle_degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(angle_degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, np.asarray(shift, float)[:, None]])


def calibration(offsets: np.ndarray = -MOUTH_UP, weights=(1, 1, 1, 1, 1)) -> LandmarkCalibration:
    return LandmarkCalibration(template_id(TEMPLATE), {"yunet": offsets}, np.asarray(weights, float))


def test_yunet_convention_maps_exactly_onto_the_template_convention():
    mtcnn = transform_points(similarity(17, 5.3, (210, 140)), TEMPLATE.array)
    yunet = from_face_frame(to_face_frame(mtcnn, mtcnn) + MOUTH_UP, mtcnn)  # same eyes, mouth 0.07 IOD higher
    assert np.abs(yunet - mtcnn).max() > 1.0
    np.testing.assert_allclose(to_template_convention(yunet, "yunet", calibration()), mtcnn, atol=1e-9)


def test_face_frame_round_trip_and_units():
    points = transform_points(similarity(-30, 2.0, (5, 7)), TEMPLATE.array)
    normalised = to_face_frame(points, points)
    np.testing.assert_allclose(normalised[:2], [[-0.5, 0], [0.5, 0]], atol=1e-12)
    np.testing.assert_allclose(from_face_frame(normalised, points), points, atol=1e-9)


@pytest.mark.parametrize("detector", ["mtcnn", "none"])
def test_reference_conventions_are_identity(detector):
    points = np.asarray(TEMPLATE.scaled(200).landmarks)
    assert to_template_convention(points, detector, calibration()) is points


def test_unknown_detector_is_named():
    with pytest.raises(ValueError, match="no calibration for detector 'retina'.*yunet"):
        to_template_convention(np.asarray(TEMPLATE.landmarks), "retina", calibration())


def test_weighted_similarity_with_equal_weights_is_the_plain_fit():
    rng = np.random.default_rng(0)
    src, dst = rng.normal(size=(5, 2)) * 10, rng.normal(size=(5, 2)) * 10
    np.testing.assert_allclose(estimate_similarity(src, dst, np.full(5, 3.0)), estimate_similarity(src, dst), atol=1e-12)


def test_weighted_similarity_fits_the_weighted_points_exactly():
    matrix = similarity(12, 0.4, (-3, 8))
    src = transform_points(similarity(-5, 4.0, (100, 90)), TEMPLATE.array)
    dst = transform_points(matrix, src)
    dst[3:] += [[2.0, -3.0], [-1.5, 4.0]]  # mouth corners moved by the expression
    np.testing.assert_allclose(estimate_similarity(src, dst, np.array([1, 2, 1, 0, 0])), matrix, atol=1e-9)
    assert np.abs(estimate_similarity(src, dst) - matrix).max() > 1e-2


@pytest.mark.parametrize("weights", [np.ones(4), np.array([1, -1, 1, 1, 1]), np.zeros(5), np.array([1, np.nan, 1, 1, 1])])
def test_weighted_similarity_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="weights must be 5 finite non-negative"):
        estimate_similarity(np.eye(5, 2), np.eye(5, 2), weights)


def test_landmarks_for_alignment_give_align_face_the_weighted_calibrated_fit():
    truth = transform_points(similarity(8, 4.0, (60, 50)), TEMPLATE.array)
    truth[3:] += [[-3.0, 2.0], [3.0, 2.5]]  # a smile: the mouth corners leave the template
    yunet = from_face_frame(to_face_frame(truth, truth) + MOUTH_UP, truth)
    weights = (2, 2, 1, 0.3, 0.3)
    points = landmarks_for_alignment(yunet, "yunet", TEMPLATE, calibration(weights=weights))
    wanted = estimate_similarity(truth, TEMPLATE.array, np.asarray(weights, float))
    assert crop_displacement(estimate_similarity(points, TEMPLATE.array), wanted, TEMPLATE.size) < 1e-9
    assert crop_displacement(estimate_similarity(truth, TEMPLATE.array), wanted, TEMPLATE.size) > 0.1
    assert align_face(np.zeros((300, 300, 3), np.uint8), points, TEMPLATE).shape == (48, 48, 3)
    unweighted = landmarks_for_alignment(yunet, "yunet", TEMPLATE, calibration(weights=weights), weighted=False)
    np.testing.assert_allclose(unweighted, truth, atol=1e-9)


def test_landmarks_for_alignment_refuses_another_template():
    other = AlignmentTemplate(((16, 20), (32, 20), (24, 28), (18, 36), (30, 36)), 48)
    with pytest.raises(ValueError, match="measured for template .* re-run scripts/calibrate_landmarks.py"):
        landmarks_for_alignment(np.asarray(other.landmarks), "yunet", other, calibration())


def test_crop_displacement_measures_a_shift_in_crop_pixels():
    assert crop_displacement(similarity(0, 1, (0, 0)), similarity(0, 1, (3, 4)), 48) == pytest.approx(5.0)


def test_packaged_calibration_is_for_the_packaged_template():
    packaged = load_calibration()
    assert packaged.template_id == template_id(TEMPLATE)
    assert packaged.detectors == ["mtcnn", "none", "yunet"]
    assert packaged.provenance["seed"] == 0


def test_round_trip_through_json(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration(weights=(2, 2, 1, 0.5, 0.5)).to_dict()))
    loaded = load_calibration(path)
    np.testing.assert_allclose(loaded.offsets["yunet"], -MOUTH_UP)
    np.testing.assert_allclose(loaded.weights, [2, 2, 1, 0.5, 0.5])


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.update(format_version=99), "format_version 99"),
    (lambda d: d.pop("weights"), "missing keys \\['weights'\\]"),
    (lambda d: d["offsets"].update(yunet=[[0, 0]] * 4), "offsets\\['yunet'\\] must be 5 finite"),
    (lambda d: d["offsets"].update(mtcnn=[[0, 0]] * 5), "'mtcnn' is the template's own convention"),
    (lambda d: d.update(weights=[1, 1, 0, 1, 1]), "positive eye and nose weights"),
    (lambda d: d.update(landmark_order=["nose"] * 5), "landmark_order must be"),
])
def test_bad_file_gives_one_clear_error(tmp_path, change, reason):
    data = calibration().to_dict()
    change(data)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*{reason}.*scripts/calibrate_landmarks.py"):
        load_calibration(path)


def test_not_json_gives_one_clear_error(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not a valid landmark calibration"):
        load_calibration(path)
