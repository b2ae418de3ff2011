"""Prepared-crop caches: contents, resumption without duplicates, failures with reasons, the CLI."""
import csv
import json
import math
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfever.cli import main
from deepfever.data.prepare import PrepareError, PrepareSettings, five_from_68, load_prepared, prepare_dataset
from deepfever.io.lock import RunLock

CLASSES = ("happy", "sad")


def _image(path, value: int, size: int = 64) -> None:
    """A flat grey image whose value identifies it after resizing to any crop size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


@pytest.fixture
def manifest_dataset(tmp_path):
    """A csv-format dataset: 7 images with labels, valence/arousal, subjects and two splits; image 3 is corrupt."""
    root = tmp_path / "data"
    rows = []
    for index in range(7):
        path = root / "images" / f"img{index}.png"
        _image(path, 20 * index + 10)
        rows.append({"path": f"images/img{index}.png", "label": CLASSES[index % 2], "valence": f"{index / 10:.1f}",
                     "arousal": "" if index == 0 else "-0.5", "subject": f"S{index // 2}", "split": "train" if index < 5 else "valid"})
    (root / "images" / "img3.png").write_bytes(b"not a png at all")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def test_prepare_writes_crops_index_failures_and_manifest(manifest_dataset, tmp_path):
    cache = tmp_path / "cache"
    summary = prepare_dataset("csv", manifest_dataset, cache, PrepareSettings(detector="none", size=32, shard_size=3))
    assert summary.as_dict() | {"seconds": 0} == {"samples": 7, "prepared": 6, "failed": 1, "pending": 0, "complete": True, "seconds": 0}
    crops, index = load_prepared(cache)
    assert isinstance(crops, np.memmap) and crops.shape == (6, 32, 32) and crops.dtype == np.uint8
    assert list(index["path"].str.rsplit("/", n=1).str[-1]) == ["img0.png", "img1.png", "img2.png", "img4.png", "img5.png", "img6.png"]
    # Each crop is its own flat image: the crops line up with their index rows.
    expected = np.array([20 * int(name[3]) + 10 for name in index["path"].str.rsplit("/", n=1).str[-1]])
    np.testing.assert_array_equal(crops.reshape(6, -1).mean(axis=1).round(), expected)
    assert list(index["split"]) == ["train"] * 4 + ["valid"] * 2
    assert list(index["label"]) == [1, 2, 1, 1, 2, 1]  # EMOTIONS indices of happy / sad
    assert math.isnan(index["arousal"][0]) and index["valence"][5] == pytest.approx(0.6)
    assert list(index["subject"][:3]) == ["S0", "S0", "S1"] and set(index["landmarks_from"]) == {"template"}
    failures = pd.read_csv(cache / "failures.csv")
    assert list(failures["path"].str.rsplit("/", n=1).str[-1]) == ["img3.png"] and "not a readable image" in failures["reason"][0]
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["complete"] and manifest["size"] == manifest["template"]["size"] == 32
    assert manifest["detector"] == "none" and manifest["counts"]["per_split"] == {"train": 4, "valid": 2}
    assert not (cache / "shards").exists()


def test_runs_preparing_one_cache_together_wait_and_the_work_is_done_once(manifest_dataset, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    settings = PrepareSettings(detector="none", size=32, shard_size=3)
    summaries = []
    runs = [threading.Thread(target=lambda: summaries.append(prepare_dataset("csv", manifest_dataset, cache, settings)))
            for _ in range(2)]
    with caplog.at_level("INFO", logger="deepfever"):
        with RunLock(cache / ".prepare.lock", "held by the test"):
            for run in runs:
                run.start()
            runs[0].join(timeout=0.5)
            assert all(run.is_alive() for run in runs) and not (cache / "manifest.json").exists()  # both wait
        for run in runs:
            run.join(timeout=60)
    assert [summary.complete for summary in summaries] == [True, True]
    assert caplog.text.count("to do now") == 1 and caplog.text.count("is already complete") == 1
    assert "waiting for another deepfever run" in caplog.text and not (cache / ".prepare.lock").exists()


def test_resume_after_a_limited_run_neither_redoes_nor_duplicates(manifest_dataset, tmp_path):
    cache = tmp_path / "cache"
    first = prepare_dataset("csv", manifest_dataset, cache, PrepareSettings(detector="none", size=16, shard_size=2, limit=3))
    assert (first.prepared, first.failed, first.pending, first.complete) == (3, 0, 4, False)
    with pytest.raises(PrepareError, match="unfinished"):
        load_prepared(cache)
    shards = sorted(path.name for path in (cache / "shards").glob("*.parquet"))
    assert shards == ["000000000-000000002.parquet", "000000002-000000003.parquet"]
    (cache / "shards" / "000000004-000000006.npy").write_bytes(b"half-written shard of a killed run")
    second = prepare_dataset("csv", manifest_dataset, cache, PrepareSettings(detector="none", size=16, shard_size=2))
    assert (second.prepared, second.failed, second.complete) == (6, 1, True)
    crops, index = load_prepared(cache)
    assert len(crops) == len(index) == 6 and index["path"].is_unique
    written = (cache / "crops.npy").stat().st_mtime_ns
    again = prepare_dataset("csv", manifest_dataset, cache, PrepareSettings(detector="none", size=16, shard_size=2))
    assert again.prepared == 6 and (cache / "crops.npy").stat().st_mtime_ns == written  # a finished cache is left alone
    with pytest.raises(PrepareError, match="different size"):
        prepare_dataset("csv", manifest_dataset, cache, PrepareSettings(detector="none", size=24))


def test_parallel_workers_give_the_same_cache(manifest_dataset, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    prepare_dataset("csv", manifest_dataset, serial, PrepareSettings(detector="none", size=16, shard_size=2))
    prepare_dataset("csv", manifest_dataset, parallel, PrepareSettings(detector="none", size=16, shard_size=2, workers=2))
    (crops_a, index_a), (crops_b, index_b) = load_prepared(serial), load_prepared(parallel)
    np.testing.assert_array_equal(crops_a, crops_b)
    pd.testing.assert_frame_equal(index_a, index_b)


def test_box_mode_without_a_box_is_a_reported_failure(tmp_path):
    root = tmp_path / "folder"
    for name in CLASSES:
        _image(root / name / "a.png", 100)
    summary = prepare_dataset("folder", root, tmp_path / "cache", PrepareSettings(detector="box", size=16))
    assert (summary.prepared, summary.failed) == (0, 2)
    assert set(pd.read_csv(tmp_path / "cache" / "failures.csv")["reason"]) == {"sample has no face box (box mode needs the dataset's boxes)"}


def test_five_points_from_68_landmarks():
    points = np.zeros((68, 2), np.float32)
    points[36:42], points[42:48], points[30], points[48], points[54] = (10, 20), (30, 20), (20, 30), (12, 40), (28, 40)
    np.testing.assert_array_equal(five_from_68(points), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])


def test_cli_prepare(tmp_path, capsys):
    root = tmp_path / "folder"
    for value, name in enumerate(CLASSES):
        _image(root / name / "a.png", 50 + value)
    status = main(["data", "prepare", "--format", "folder", "--root", str(root), "-o", str(tmp_path / "cache"),
                   "--detector", "none", "--size", "24"])
    assert status == 0 and json.loads(capsys.readouterr().out)["prepared"] == 2
    crops, index = load_prepared(tmp_path / "cache")
    assert crops.shape == (2, 24, 24) and list(index["label"]) == [1, 2]
