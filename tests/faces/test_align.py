"""Similarity estimation, alignment and the packaged template."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepfever.faces import AlignmentTemplate, align_face, align_faces, estimate_similarity, load_default_template
from deepfever.faces import transform_points

TEMPLATE = AlignmentTemplate(((16.0, 20.0), (32.0, 20.0), (24.0, 28.0), (18.0, 36.0), (30.0, 36.0)), 48)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, np.asarray(shift, dtype=np.float64)[:, None]])


def test_estimate_similarity_recovers_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    truth = _similarity(23.0, 1.7, (12.5, -4.0))
    matrix = estimate_similarity(src, transform_points(truth, src))
    np.testing.assert_allclose(matrix, truth, atol=1e-9)


def test_estimate_similarity_is_least_squares_and_never_reflects() -> None:
    src = TEMPLATE.array.astype(np.float64)
    mirrored = src * [-1, 1]
    matrix = estimate_similarity(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.zeros((1, 2))])
def test_estimate_similarity_rejects_bad_shapes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected two"):
        estimate_similarity(bad, bad)


def test_align_face_puts_landmarks_on_template() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(400, 500, 3), dtype=np.uint8)
    to_image = _similarity(-17.0, 4.2, (180.0, 90.0))
    landmarks = transform_points(to_image, TEMPLATE.array)
    matrix = estimate_similarity(landmarks, TEMPLATE.array)
    assert np.abs(transform_points(matrix, landmarks) - TEMPLATE.array).max() < 0.5
    crop = align_face(image, landmarks, TEMPLATE)
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8


def test_align_face_content_lands_where_template_says() -> None:
    """Paint bright dots at the landmarks of a big rotated face: they must appear at the template points."""
    import cv2

    image = np.zeros((900, 900, 3), np.uint8)
    landmarks = transform_points(_similarity(30.0, 10.0, (300.0, 100.0)), TEMPLATE.array)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 12, (255, 255, 255), -1)
    crop = align_face(image, landmarks, TEMPLATE)[:, :, 0].astype(np.float64)
    for x, y in TEMPLATE.landmarks:
        patch = crop[round(y) - 2:round(y) + 3, round(x) - 2:round(x) + 3]
        ys, xs = np.mgrid[round(y) - 2:round(y) + 3, round(x) - 2:round(x) + 3]
        centre = np.array([(xs * patch).sum(), (ys * patch).sum()]) / patch.sum()
        assert np.linalg.norm(centre - (x, y)) < 0.5


def test_align_faces_handles_no_faces() -> None:
    assert align_faces(np.zeros((10, 10, 3), np.uint8), [], TEMPLATE).shape == (0, 48, 48, 3)


def test_template_round_trips_through_json_and_scales() -> None:
    again = AlignmentTemplate.from_dict(json.loads(json.dumps(TEMPLATE.to_dict())))
    assert again == TEMPLATE
    np.testing.assert_allclose(TEMPLATE.scaled(96).scaled(48).array, TEMPLATE.array, atol=1e-5)
    with pytest.raises(ValueError, match="missing keys"):
        AlignmentTemplate.from_dict({"size": 48})


def test_default_template_is_a_plausible_frontal_face() -> None:
    template = load_default_template()
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = template.landmarks
    assert template.size == 48
    assert lx < nx < rx and mlx < mrx
    assert max(ly, ry) < ny < min(mly, mry)
    assert all(0 <= value < 48 for point in template.landmarks for value in point)


def test_padded_box_grows_outward_and_stays_inside_the_image():
    from deepfever.faces.types import padded_box

    # Longest side (20) sets the margin on every edge; fractions round outward, never into the box.
    assert padded_box((10.5, 10.5, 20.5, 30.5), 0.1, (100, 100)) == (8, 8, 23, 33)
    # Per axis: 10 % of the width left/right, of the height top/bottom.
    assert padded_box((10, 10, 20, 30), 0.1, (100, 100), per_axis=True) == (9, 8, 21, 32)
    # Clipped at the borders; a box outside the image gives an empty one.
    assert padded_box((-5, 90, 10, 120), 0.2, (100, 80)) == (0, 84, 16, 100)
    left, top, right, bottom = padded_box((200, 200, 210, 210), 0.1, (100, 100))
    assert right <= left and bottom <= top


def test_face_in_original_undoes_a_resize_and_a_cut():
    import cv2

    from deepfever.faces.types import Face, face_in_original

    # A bright pixel at (30, 12) in a 64x48 image; halve it after cutting at (10, 4): found at its pixel centre there.
    image = np.zeros((48, 64), np.float32)
    image[12, 30] = 1.0
    small = cv2.resize(image[4:, 10:], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_LINEAR)
    found = np.array(np.unravel_index(np.argmax(small), small.shape)[::-1], np.float32)
    face = Face(box=np.array([0, 0, 27, 22], np.float32), landmarks=np.repeat(found[None], 5, 0), score=0.9)
    back = face_in_original(face, 0.5, (10, 4))
    assert np.abs(back.landmarks - [30, 12]).max() <= 1.0
    assert np.allclose(back.box, [10, 4, 64, 48]) and back.score == 0.9
    # Per-axis factors, as after a resize to an exact size.
    assert np.allclose(face_in_original(face, (0.5, 0.25)).box, [0, 0, 54, 88])
