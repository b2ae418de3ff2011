"""Extractor and ``deepfever extract``: rows per face, failures with reasons, safe outputs."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfever import Extractor
from deepfever.cli import main
from deepfever.io.tables import read_table
from deepfever.pipeline import ExtractionReport


@pytest.fixture
def crop_folder(tmp_path):
    """Three 48x48 'face crops', a corrupt file, a zero-byte file and a text file in a nested folder."""
    folder = tmp_path / "inputs"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(folder / f"face{index}.png")
    Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(folder / "nested" / "deep.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_extract_rows_and_failures(tiny_model_file, crop_folder):
    extractor = Extractor(model=tiny_model_file, detector="none", batch_size=2)
    table = extractor.extract([crop_folder])
    assert len(table) == 4 and set(table["face"]) == {0}
    assert table["path"].str.endswith(("face0.png", "face1.png", "face2.png", "deep.jpg")).all()
    vectors = np.stack(table["embedding"])
    assert vectors.shape == (4, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    probabilities = table[[f"p_{c}" for c in extractor.class_names_]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert (table["emotion"] == np.array(extractor.class_names_)[probabilities.argmax(1)]).all()
    assert {"model_id", "template_id", "crop_size"} <= set(table.columns) and (table["crop_size"] == 48).all()
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in table.attrs["failures"]}
    assert set(reasons) == {"broken.jpg", "empty.png"}
    assert "empty file" in reasons["empty.png"] and "corrupt or truncated" in reasons["broken.jpg"]
    assert table.attrs["report"]["images"] == 6 and table.attrs["report"]["faces"] == 4


def test_batching_does_not_change_results(tiny_model_file, crop_folder):
    one = Extractor(model=tiny_model_file, detector="none", batch_size=1).extract([crop_folder])
    many = Extractor(model=tiny_model_file, detector="none", batch_size=64).extract([crop_folder])
    np.testing.assert_allclose(np.stack(one["embedding"]), np.stack(many["embedding"]), atol=1e-5)


def test_embed_equals_extract_for_crops(tiny_model_file):
    crops = np.random.default_rng(1).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    extractor = Extractor(model=tiny_model_file, detector="none")
    table = extractor.extract(list(crops))
    np.testing.assert_allclose(extractor.embed(crops), np.stack(table["embedding"]), atol=1e-5)
    assert table["path"].tolist() == ["array[0]", "array[1]", "array[2]"]
    with pytest.raises(ValueError, match="expects 48x48"):
        extractor.embed(np.zeros((1, 64, 64), np.uint8))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".npz"])
def test_cli_writes_each_format_and_failures_beside_it(tiny_model_file, crop_folder, tmp_path, suffix, capsys):
    output = tmp_path / f"out{suffix}"
    status = main(["extract", str(crop_folder), "-o", str(output), "--model", str(tiny_model_file), "--detector", "none"])
    assert status == 0
    table = read_table(output)
    assert len(table) == 4 and np.stack(table["embedding"]).shape == (4, 128)
    failures = pd.read_csv(tmp_path / f"out{suffix}.failures.csv")
    assert sorted(failures["path"].str.rsplit("/", n=1).str[-1]) == ["broken.jpg", "empty.png"]
    assert "4 faces, 2 failures" in capsys.readouterr().err


def test_cli_never_overwrites_silently(tiny_model_file, crop_folder, tmp_path, capsys):
    output = tmp_path / "out.csv"
    output.write_text("precious")
    arguments = ["extract", str(crop_folder), "-o", str(output), "--model", str(tiny_model_file), "--detector", "none"]
    assert main(arguments) == 2
    assert output.read_text() == "precious" and "--overwrite" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == 0 and len(read_table(output)) == 4


@pytest.mark.parametrize(
    "arguments, message",
    [(["-o", "out.xlsx"], "unknown output format"), (["missing_folder", "-o", "out.csv"], "no such file")],
)
def test_cli_rejects_bad_requests_before_work(tiny_model_file, crop_folder, tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(tmp_path)
    status = main(["extract", str(crop_folder), *arguments, "--model", str(tiny_model_file)])
    assert status == 2 and message in capsys.readouterr().err


def test_exit_status_is_one_when_nothing_could_be_processed(tiny_model_file, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    status = main(["extract", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o.csv"), "--model", str(tiny_model_file)])
    assert status == 1 and (tmp_path / "o.csv.failures.csv").is_file()


def test_videos_and_images_share_one_table(tiny_model_file, crop_folder, tmp_path):
    import cv2

    video = crop_folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 48))
    rng = np.random.default_rng(2)
    for _ in range(12):
        writer.write(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    writer.release()
    (crop_folder / "fake.mp4").write_bytes(b"not a video")
    extractor = Extractor(model=tiny_model_file, detector="none")
    table = extractor.extract([crop_folder], fps=5)
    video_rows = table[table["frame"].notna()]
    assert len(table[table["frame"].isna()]) == 4
    assert video_rows["path"].str.endswith("clip.avi").all() and video_rows["track"].nunique() == 1
    assert video_rows["time_s"].is_monotonic_increasing and video_rows["time_s"].max() < 1.2
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in table.attrs["failures"]}
    assert "fake.mp4" in reasons and table.attrs["report"]["videos"][0]["frames"] == len(video_rows)
    summary = ExtractionReport.of_table(table).summary()
    assert "6 images, 2 videos (6 frames), 10 faces, 3 failures" in summary and "images/s" in summary and "frames/s" in summary
