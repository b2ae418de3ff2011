"""Each shared helper exists once (issue 17) and behaves as the copies it replaced did; where the copies
disagreed, the test pins the chosen rule."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# -- file sha256 (was in api, classifier_io, training.task, onnx_runtime, _mtcnn_weights) --------------
def test_file_sha256_reads_in_blocks_and_matches_hashing_the_whole_file(tmp_path: Path) -> None:
    from deepfever.io.hashing import file_sha256

    data = np.random.default_rng(0).integers(0, 256, (1 << 20) * 2 + 17, dtype=np.uint8).tobytes()  # crosses block edges
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


# -- cache folder (was data.arrays.cache_dir and _mtcnn_weights.cache_dir, which disagreed) ------------
@pytest.mark.parametrize("value", [None, ""])
def test_cache_dir_treats_an_empty_variable_as_unset(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepfever.faces import _mtcnn_weights
    from deepfever.io.cache import cache_dir

    if value is None:
        monkeypatch.delenv("DEEPFEVER_CACHE", raising=False)
    else:
        monkeypatch.setenv("DEEPFEVER_CACHE", value)  # data.arrays turned this into the current directory
    assert cache_dir() == Path.home() / ".cache" / "deepfever"
    assert _mtcnn_weights.weights_dir() == cache_dir() / "mtcnn"


def test_cache_dir_expands_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepfever.io.cache import cache_dir

    monkeypatch.setenv("DEEPFEVER_CACHE", "~/elsewhere")
    assert cache_dir() == Path.home() / "elsewhere"


# -- device resolution (was api.resolve_device and training.distributed) -----------------------------
def test_resolve_device_auto_and_refusal() -> None:
    from deepfever.models.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available; use device 'cpu' or 'auto'"):
            resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_distributed_runs_resolve_devices_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepfever.models.distributed import init_distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("auto").device == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        init_distributed("cuda:0")


# -- failures CSV (was extraction.run.write_failures and cli.probe._write_failures, via pandas) --------
def test_failures_csv_matches_the_pandas_copies(tmp_path: Path) -> None:
    from deepfever.io.failures import failures_path_for, write_failures

    failures = [{"path": "a, b.jpg", "reason": 'said "no"\nthen stopped', "status": 415}, {"path": "c.png", "reason": "no face detected"}]
    written = write_failures(failures, tmp_path / "out.failures.csv")
    expected = pd.DataFrame(failures, columns=["path", "reason"]).to_csv(index=False)
    assert written.read_text(encoding="utf-8") == expected
    write_failures([], tmp_path / "empty.csv")
    assert (tmp_path / "empty.csv").read_text() == pd.DataFrame([], columns=["path", "reason"]).to_csv(index=False)
    assert failures_path_for(tmp_path / "faces.parquet") == tmp_path / "faces.parquet.failures.csv"  # never shared by faces.csv
    assert failures_path_for("clf.v2.json") == Path("clf.v2.json.failures.csv")
    assert failures_path_for("faces") == Path("faces.failures.csv")  # the old copy gave '.failures.csv'


# -- figures (six copies; five switched matplotlib's global backend) -----------------------------------
def test_figures_are_written_without_pyplot(tmp_path: Path) -> None:
    """In a fresh interpreter: every figure writer of ours runs, pyplot is never imported, the backend stays."""
    script = f"""
import sys, json
import matplotlib
backend = lambda: dict.__getitem__(matplotlib.rcParams, "backend")  # get_backend() would itself resolve it via pyplot
before = backend()
import numpy as np, pandas as pd
from pathlib import Path
from deepfever.evaluation._probe_plots import plot_learning_curve
from deepfever.evaluation.ferplus import plot_confusion
from deepfever.evaluation._suite_report import plot_per_class, plot_triplet_types
from deepfever.applications.maps import plot_map
out = Path({str(tmp_path)!r})
point = lambda n: {{"per_class": n, "train_size_mean": 10.0, "accuracy": {{"mean": 0.5, "std": 0.1}}}}
plot_learning_curve([point(1), point("all")], 2, out / "curve.png", "t")
summary = {{"confusion_matrix": [[3, 1], [0, 4]], "class_names": ["a", "b"],
           "per_class": {{"a": {{"recall": 0.7, "f1": 0.8}}, "b": {{"recall": 1.0, "f1": 0.9}}}}}}
plot_confusion(summary, out / "confusion.png", "t")
plot_per_class(summary, out / "per_class.png", "t")
plot_triplet_types({{"one": {{"accuracy": 0.5, "n": 3}}}}, out / "types.png", "t")
table = pd.DataFrame({{"path": ["x.png"] * 6, "embedding": list(np.eye(6, 4, dtype=np.float32) + 0.1), "emotion": list("ababab")}})
plot_map(table, out / "map.png", method="pca")
print(json.dumps(["matplotlib.pyplot" in sys.modules, before == backend()]))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True]
    for name in ("curve", "confusion", "per_class", "types", "map"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


# -- box IoU (was video.tracking.box_iou, yunet._iou, mtcnn.box_overlap) ------------------------------
def _tracker_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The video tracker's former copy, float64 with a 1e-9 floor, as the reference."""
    a, b = a[:, None], b[None]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    return inter / np.maximum(union, 1e-9)


def test_box_iou_agrees_on_arrays_and_tensors_and_with_the_old_copies() -> None:
    from deepfever.faces.boxes import box_iou

    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 50, (40, 2))
    boxes = np.hstack([corner, corner + rng.uniform(1, 30, (40, 2))])
    expected = _tracker_iou(boxes[:25], boxes[25:])
    np.testing.assert_allclose(box_iou(boxes[:25], boxes[25:]), expected, rtol=1e-12)
    np.testing.assert_allclose(box_iou(torch.from_numpy(boxes[:25]), torch.from_numpy(boxes[25:])).numpy(), expected, rtol=1e-12)
    # YuNet's scalar copy took one (4,) box at a time
    assert box_iou(boxes[0], boxes[1]).shape == (1, 1)
    # the chosen rule for boxes without area: no overlap
    assert box_iou(np.zeros((1, 4)), np.zeros((1, 4)))[0, 0] == 0.0
    inner, outer = np.array([[2.0, 2, 4, 4]]), np.array([[0.0, 0, 10, 10]])
    assert box_iou(inner, outer, mode="min")[0, 0] == 1.0 and box_iou(inner, outer)[0, 0] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="mode must be 'union' or 'min'"):
        box_iou(inner, outer, mode="max")


# -- face thumbnails (was maps.face_thumbnail and the server's; maps dropped every row of a table with `frame`)
def test_image_rows_keep_thumbnails_in_tables_that_also_hold_video_frames(tmp_path: Path) -> None:
    from deepfever.faces.thumbnails import THUMBNAIL_MARGIN, face_thumbnail, has_image_face, row_thumbnail

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo)
    table = pd.DataFrame({"path": [str(photo), "clip.mp4"], "frame": pd.array([pd.NA, 3], dtype="Int64"),
                          "box_x1": [10.0, 10.0], "box_y1": [5.0, 5.0], "box_x2": [40.0, 40.0], "box_y2": [45.0, 45.0]})
    assert [has_image_face(row) for _, row in table.iterrows()] == [True, False]
    images: dict = {}
    thumb = row_thumbnail(table.iloc[0], 64, images)
    assert thumb is not None and row_thumbnail(table.iloc[1], 64, images) is None
    # the rule: the box grown by the margin of its longer side (clipped), aspect kept, longer side = size
    left, top, right, bottom = 10 - 6, 0, 40 + 6, 51
    assert THUMBNAIL_MARGIN == 0.15 and thumb.shape == (64, round((right - left) * 64 / (bottom - top)), 3)
    assert face_thumbnail(np.zeros((10, 10, 3), np.uint8), (20, 20, 30, 30), 64) is None
    assert row_thumbnail(pd.Series({"path": "gone.png", "box_x1": 0, "box_y1": 0, "box_x2": 5, "box_y2": 5}), 64, images) is None


def test_map_draws_image_thumbnails_beside_video_rows(tmp_path: Path) -> None:
    from deepfever.applications.maps import plot_map

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo)
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"path": [str(photo)] * 4 + ["clip.mp4"] * 4, "frame": pd.array([pd.NA] * 4 + [0, 1, 2, 3], dtype="Int64"),
                          "embedding": list(rng.normal(size=(8, 6)).astype(np.float32)), "emotion": list("abab" * 2),
                          "box_x1": 10.0, "box_y1": 5.0, "box_x2": 40.0, "box_y2": 45.0})
    assert plot_map(table, tmp_path / "map.png", method="pca")["thumbnails"] == 4


# -- drawing (was io.annotate with PIL and video.annotate with its own palette) -----------------------
def test_one_palette_for_photos_and_video_tracks(tmp_path: Path) -> None:
    from deepfever.io.annotate import draw_faces, emotion_colour, face_label, text_colour, write_annotated_image

    rows = pd.DataFrame({"face": [0], "box_x1": [10.0], "box_y1": [30.0], "box_x2": [50.0], "box_y2": [70.0],
                         "landmarks": [np.array([20, 40, 40, 40, 30, 50, 22, 60, 38, 60], np.float32)],
                         "emotion": ["happy"], "p_happy": [0.9]})
    image = draw_faces(np.zeros((100, 100, 3), np.uint8), rows)
    assert tuple(image[50, 10]) == emotion_colour("happy")  # a face takes its emotion's colour
    assert face_label(next(rows.itertuples())) == "0: happy 0.90"
    tracked = rows.assign(track=pd.array([7], dtype="Int64"))
    image = draw_faces(np.zeros((100, 100, 3), np.uint8), tracked)
    assert tuple(image[50, 10]) == emotion_colour("happy") and face_label(next(tracked.itertuples())) == "#7 happy 0.90"
    assert text_colour((255, 255, 255)) == (0, 0, 0) and text_colour(emotion_colour("sad")) == (255, 255, 255)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(photo)
    written = write_annotated_image(photo, rows, tmp_path / "out.jpg")
    assert Image.open(written).format == "JPEG" and Image.open(written).size == (100, 100)


# -- decode with a pixel limit (was io.images.load_image and serve._uploads.decode_upload) ------------
def test_load_image_is_the_one_decoder_with_a_limit() -> None:
    from deepfever.errors import ImageReadError
    from deepfever.io.images import CorruptImageError, ImageTooLargeError, NotAnImageError, load_image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert load_image(data).shape == (40, 50, 3)
    with pytest.raises(ImageTooLargeError, match=r"upload.png: 50x40 pixels exceeds the limit of 1,999"):
        load_image(data, max_pixels=1999, name="upload.png")
    with pytest.raises(NotAnImageError, match="upload.txt: not a readable image"):
        load_image(b"plain text", name="upload.txt")
    with pytest.raises(CorruptImageError, match="<downloaded bytes>: corrupt or truncated"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="empty"):
        load_image(b"", name="upload.png")


# -- linear probe (was applications.identity.linear_probe beside evaluation.probe) --------------------
def test_identity_probe_is_the_evaluation_probe_on_unit_vectors() -> None:
    from deepfever.evaluation.identity import linear_probe
    from deepfever.evaluation.probe import cross_validate_probe, make_folds
    from deepfever.models.vectors import unit

    rng = np.random.default_rng(4)
    labels = np.repeat(["x", "y", "z"], 12)
    vectors = rng.normal(size=(36, 8)) + np.repeat(np.eye(3, 8) * 2, 12, axis=0)
    groups = np.tile(np.arange(6), 6)
    report = linear_probe(vectors, labels, groups, folds=3, seed=1)
    codes = np.unique(labels, return_inverse=True)[1]
    expected = cross_validate_probe(unit(vectors), codes, ["x", "y", "z"], make_folds(codes, groups.astype(str), 3, 1), "logistic", 1)
    assert report["accuracy"] == expected["pooled"]["accuracy"] > 0.8
    assert report["chance"] == pytest.approx(1 / 3) and report["classes"] == 3 and report["dropped_rows"] == 0
    dropped = linear_probe(vectors, np.r_[labels[:-1], ["w"]], folds=3)  # a label with fewer rows than folds
    assert dropped["dropped_rows"] == 1 and dropped["rows"] == 35


# -- configs: sections listed under one key are built by the one loader -------------------------------
def test_load_config_builds_listed_sections_and_names_bad_items() -> None:
    from deepfever.config import load_config
    from deepfever.training.config import SourceSection, TrainConfig

    config = load_config(TrainConfig, None, ["sources=[{name: extra, glob: 'faces/*.png', detector: none}]"])
    assert isinstance(config.sources[0], SourceSection) and config.sources[0].name == "extra"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nme'\] in TrainConfig.sources\[0\]"):
        load_config(TrainConfig, None, ["sources=[{nme: extra}]"])
