"""MTCNN and YuNet on real photos from ../shared (skipped when that folder is absent)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from deepfever.faces import MTCNN, Face, align_face, create_detector, load_default_template
from deepfever.faces.template import detect_upscaled
from deepfever.io import load_image

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PHOTOS = SHARED / "data" / "photos"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"{PHOTOS} not available"),
]


@pytest.fixture(scope="module")
def mtcnn() -> Iterator[MTCNN]:
    # One thread: the nets are small, and on a busy 2-core runner extra threads only add waiting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MTCNN()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(PHOTOS / "img12.jpg")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _assert_same_faces(left: list[Face], right: list[Face], atol: float) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right):
        np.testing.assert_allclose(a.box, b.box, atol=atol)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=atol)


@pytest.mark.parametrize("name", ["img1.jpg", "img5.jpg", "img12.jpg", "img16.jpg"])
def test_single_face_photos(mtcnn: MTCNN, name: str) -> None:
    [face] = mtcnn.detect(load_image(PHOTOS / name))
    assert face.score > 0.95
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx and mlx < mrx and max(ly, ry) < ny < min(mly, mry)
    assert face.box[0] < lx and rx < face.box[2]


def test_couple_and_group(mtcnn: MTCNN) -> None:
    couple = mtcnn.detect(load_image(PHOTOS / "couple.jpg"))
    assert len(couple) >= 2
    centres = [float(face.box[0] + face.box[2]) for face in couple]
    assert centres == sorted(centres)
    assert len(mtcnn.detect(load_image(PHOTOS / "selfie-many-people.jpg"))) >= 4


def test_detection_is_deterministic_and_batch_matches_single(mtcnn: MTCNN, photo: np.ndarray) -> None:
    group = load_image(PHOTOS / "selfie-many-people.jpg")
    single = [mtcnn.detect(group), mtcnn.detect(photo)]
    _assert_same_faces(mtcnn.detect(group), single[0], atol=0)
    for batched, alone in zip(mtcnn.detect_batch([group, photo]), single):
        _assert_same_faces(batched, alone, atol=1e-3)
    # Same-size images share each P-Net forward pass (video frames): results must not change.
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    for batched, alone in zip(mtcnn.detect_batch([photo, mirrored]), [single[1], mtcnn.detect(mirrored)]):
        _assert_same_faces(batched, alone, atol=1e-3)


def test_default_yunet_finds_every_face_mtcnn_finds(mtcnn: MTCNN) -> None:
    """The default detector was chosen on these photos: it must keep finding all of MTCNN's faces."""
    yunet = create_detector()
    for path in sorted(PHOTOS.iterdir()):
        image = load_image(path)
        found = yunet.detect(image)
        for face in mtcnn.detect(image):
            assert max((_iou(face.box, other.box) for other in found), default=0.0) > 0.5, f"{path.name}: a face was missed"


@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg", "img49.jpg"])
def test_yunet_in_onnxruntime_matches_opencv(device: str, name: str) -> None:
    """The GPU path (ONNX Runtime + our decoding) against OpenCV's FaceDetectorYN, run here on ``device``."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'deepfever[onnx]')")
    image = load_image(PHOTOS / name)
    expected = create_detector("yunet").detect(image)
    found = create_detector("yunet", device=device, engine="onnxruntime").detect(image)
    _assert_same_faces(found, expected, atol=0.05)


def test_yunet_refines_landmarks_of_faces_small_after_shrinking(photo: np.ndarray) -> None:
    """A face pasted into a large canvas is tiny at max_side; refined landmarks match the face found alone."""
    canvas = np.full((3000, 4000, 3), 127, np.uint8)
    canvas[1000:1000 + photo.shape[0], 2000:2000 + photo.shape[1]] = photo
    [alone] = create_detector("yunet").detect(photo)
    expected = alone.landmarks + np.array([2000, 1000], np.float32)
    [refined] = create_detector("yunet").detect(canvas)
    [coarse] = create_detector("yunet", refine_below=0).detect(canvas)
    refined_error = np.abs(refined.landmarks - expected).max()
    # YuNet's landmarks move by a few percent of the face width between scales; shrunk 6x they move more.
    assert refined_error < 0.05 * (alone.box[2] - alone.box[0])
    assert refined_error < np.abs(coarse.landmarks - expected).max()


def test_aligned_face_redetects_on_template(mtcnn: MTCNN, photo: np.ndarray) -> None:
    template = load_default_template()
    [face] = mtcnn.detect(photo)
    crop = align_face(photo, face.landmarks, template)
    [again] = detect_upscaled(mtcnn, crop, 4)
    error = np.linalg.norm(again.landmarks - template.array, axis=1)
    assert error.mean() <= 2.5, error


@pytest.mark.skipif(not YUNET.is_file(), reason=f"{YUNET} not available")
@pytest.mark.parametrize("name", ["img12.jpg", "couple.jpg"])
def test_yunet_agrees_with_mtcnn(mtcnn: MTCNN, name: str) -> None:
    image = load_image(PHOTOS / name)
    expected = mtcnn.detect(image)
    found = create_detector("yunet", model_path=YUNET).detect(image)
    assert len(found) == len(expected)
    for a, b in zip(found, expected):
        assert _iou(a.box, b.box) > 0.5
        # Same landmark order: every YuNet point is nearer its MTCNN namesake than to any other point.
        distances = np.linalg.norm(a.landmarks[:, None] - b.landmarks[None], axis=2)
        assert (distances.argmin(axis=1) == np.arange(5)).all()


def test_exif_rotated_file_gives_the_upright_face(mtcnn: MTCNN, photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "rotated.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": store the pixels turned the other way
    Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded, photo)
    _assert_same_faces(mtcnn.detect(loaded), mtcnn.detect(photo), atol=1e-3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_grey_alpha_and_16bit_inputs(mtcnn: MTCNN, photo: np.ndarray, mode: str, tmp_path: Path) -> None:
    small = cv2.resize(photo, (280, 208), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    if mode == "L":
        image = Image.fromarray(grey)
    elif mode == "RGBA":
        image = Image.fromarray(np.dstack([small, np.full(grey.shape, 255, np.uint8)]), mode="RGBA")
    else:
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    path = tmp_path / f"face_{mode.replace(';', '')}.png"
    image.save(path)
    assert len(mtcnn.detect(load_image(path))) == 1
    assert len(mtcnn.detect(np.asarray(image))) == 1
