"""Contracts of ``deepfever extract`` and ``ExtractionRun`` (issue 9): never lose, mix or misreport a row.

Each test names the point of the issue it covers; all use a random-init model on generated inputs.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_random_crops
from deepfever.api import Extractor
from deepfever.cli import main
from deepfever.extraction import ExtractionRun, RunLock, RunLockedError
from deepfever.io.parts import done_chunks
from deepfever.io.tables import read_table


def write_video(path, frames: int, seed: int = 1, size: int = 48):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size, size))
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "inputs"
    write_random_crops(folder, 3, "face")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write_video(folder / "clip.avi", 6)
    return folder


def extract_args(inputs, output, model, *extra):
    return ["extract", str(inputs), "-o", str(output), "--model", str(model), "--detector", "none", "--batch-size", "1", *extra]


def never_extract(monkeypatch):
    """Fail the test if any extraction starts: the refusal must come before the work."""
    def refuse(*args, **kwargs):
        raise AssertionError("extraction started before the refusal")

    monkeypatch.setattr(Extractor, "iter_extract", refuse)


# -- 1. one run per output; the table and its failures file from the same run ---------------------
def test_a_second_run_on_a_held_output_is_refused_before_any_work(tiny_model_file, inputs, tmp_path, monkeypatch, capsys):
    output = tmp_path / "out.parquet"
    with RunLock(tmp_path / ".out.parts.lock", str(output)):
        never_extract(monkeypatch)
        assert main(extract_args(inputs, output, tiny_model_file)) == 2
        message = capsys.readouterr().err
        assert "being written by another deepfever run" in message and f"pid {os.getpid()}" in message
        assert main(extract_args(inputs, output, tiny_model_file, "--overwrite", "--resume")) == 2
        assert main(["merge", str(tmp_path / "out.parts"), "-o", str(tmp_path / "other.csv")]) == 2
    assert not output.exists() and not (tmp_path / "out.parts").exists()


def test_a_lock_left_by_a_killed_process_is_recovered(tiny_model_file, inputs, tmp_path):
    lock_path = tmp_path / ".out.parts.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from deepfever.extraction import RunLock
        RunLock(Path({str(lock_path)!r}), "out").acquire()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError):
        RunLock(lock_path, "out").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path.exists()  # a kill -9 leaves the file behind ...
    assert main(extract_args(inputs, tmp_path / "out.parquet", tiny_model_file)) == 0  # ... but not the lock
    assert not lock_path.exists()


def test_failures_file_always_belongs_to_the_table_beside_it(tiny_model_file, inputs, tmp_path):
    output = tmp_path / "out.csv"
    assert main(extract_args(inputs, output, tiny_model_file)) == 0
    assert len(pd.read_csv(tmp_path / "out.csv.failures.csv")) == 1  # broken.jpg
    (inputs / "broken.jpg").unlink()
    assert main(extract_args(inputs, output, tiny_model_file, "--overwrite")) == 0
    assert pd.read_csv(tmp_path / "out.csv.failures.csv").empty  # not the first run's list
    assert not (tmp_path / "out.parts").exists()  # a plain run leaves no work folder


# -- 2. resume notices changed inputs ---------------------------------------------------------------
def test_resume_redoes_inputs_that_changed_since_the_interruption(tiny_model_file, inputs, tmp_path, monkeypatch, caplog):
    output = tmp_path / "out.csv"
    original = Extractor.iter_extract
    calls = []

    def interrupted(self, *args, **kwargs):
        if len(calls) == 1:
            raise RuntimeError("simulated interruption")
        calls.append(args[0])
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Extractor, "iter_extract", interrupted)
        with pytest.raises(RuntimeError, match="simulated"):
            main(extract_args(inputs, output, tiny_model_file, "--resume", "--chunk-size", "2"))
    assert done_chunks(tmp_path / "out.parts") == {0}
    changed = inputs / "face0.png"
    Image.fromarray(np.full((48, 48, 3), 17, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse clocks
    assert main(extract_args(inputs, output, tiny_model_file, "--resume", "--chunk-size", "2")) == 0
    assert "redoing chunk 0" in caplog.text and "face0.png" in caplog.text
    assert main(extract_args(inputs, tmp_path / "fresh.csv", tiny_model_file)) == 0
    assert output.read_bytes() == (tmp_path / "fresh.csv").read_bytes()


# -- 3. every format round-trips image + video rows ------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".npz"])
def test_every_format_round_trips_image_and_video_rows(tiny_model_file, inputs, tmp_path, suffix):
    output = tmp_path / f"out{suffix}"
    assert main(extract_args(inputs, output, tiny_model_file, "--smooth", "0.5")) == 0
    expected = Extractor(model=tiny_model_file, detector="none", batch_size=1).extract([inputs], smoothing=0.5)
    table = read_table(output)
    assert list(table.columns) == list(expected.columns) and len(table) == len(expected) == 3 + 6
    assert table["frame"].dtype == "Int64" and table["frame"].isna().sum() == 3
    for column in ("embedding", "landmarks"):
        np.testing.assert_allclose(np.stack(table[column]), np.stack(expected[column]), atol=1e-6)
    plain = [column for column in expected if column not in ("embedding", "landmarks")]
    pd.testing.assert_frame_equal(table[plain], expected[plain], check_dtype=False, atol=1e-6)
    if suffix == ".npz":
        with np.load(output, allow_pickle=False) as archive:  # no object arrays
            assert archive["embedding"].shape == (9, 128) and archive["path"].dtype.kind == "U"


# -- 4. truncated video -----------------------------------------------------------------------------
def test_truncated_video_is_listed_with_frames_read_and_declared(tiny_model_file, tmp_path):
    video = write_video(tmp_path / "long.avi", 40, size=96)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    extractor = Extractor(model=tiny_model_file, detector="none")
    table = extractor.extract([video])
    reasons = [failure["reason"] for failure in table.attrs["failures"]]
    assert len(table) and any("of the 40 frames the container declares" in reason for reason in reasons), reasons
    decoded = table.attrs["report"]["videos"][0]["frames_decoded"]
    assert 0 < decoded < 40 and f"read {decoded} of the 40" in reasons[0]


# -- 5. models and classifiers that are not what they claim ------------------------------------------
def _copy_model(source, folder, edit_config=None, edit_state=None):
    from safetensors.torch import load_file, save_file

    folder.mkdir()
    state = load_file(str(source))
    if edit_state:
        edit_state(state)
    save_file(state, str(folder / "m.safetensors"))
    document = json.loads(source.with_suffix(".json").read_text())
    if edit_config:
        edit_config(document["model"])
    (folder / "m.json").write_text(json.dumps(document))
    return folder / "m.safetensors"


@pytest.mark.parametrize("name, config, state, message", [
    ("nan", None, lambda s: s["emotion.weight"].fill_(float("nan")), "non-finite values in: emotion.weight"),
    ("reversed", lambda c: c.update(class_names=c["class_names"][::-1]), None, "in another order"),
    ("short", lambda c: c.update(class_names=c["class_names"][:7]), None, "wrong shapes: emotion.weight"),
    ("layers", lambda c: c.update(input_size="48"), None, "input_size must be a positive integer"),
    ("shape", None, lambda s: s.update({"embed.0.weight": s["embed.0.weight"][:, :3].contiguous()}), "wrong shapes: embed.0.weight"),
])
def test_bad_model_files_are_refused_in_one_line(tiny_model_file, inputs, tmp_path, capsys, name, config, state, message):
    from deepfever.models.checkpoint import ModelFileError, load_model

    model = _copy_model(tiny_model_file, tmp_path / name, config, state)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(")):
        load_model(model)
    assert main(extract_args(inputs, tmp_path / "out.csv", model)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and "--model" in error and "Traceback" not in error


def _fitted_classifier(tmp_path):
    from deepfever.evaluation.classifier_io import SavedClassifier, save_classifier

    rng = np.random.default_rng(0)
    classifier = SavedClassifier("logistic", ["calm", "joy", "awe"], rng.normal(size=4), np.ones(4), [rng.normal(size=(4, 3))],
                                 [np.zeros(3)], {})
    return classifier, save_classifier(classifier, tmp_path / "clf")


@pytest.mark.parametrize("edit, message", [
    (lambda d, a: a.__setitem__("scaler.scale", np.zeros(4)), "scaler.scale has zeros"),
    (lambda d, a: a.__setitem__("layer0.weight", np.full((4, 3), np.nan)), "non-finite values in layer0.weight"),
    (lambda d, a: a.__setitem__("layer0.weight", np.ones((4, 2))), "layer 0 weight (4, 2) / bias (3,)"),
    (lambda d, a: d.update(class_names=["awe", "joy", "calm"]), "differ from those saved with the weights"),
    (lambda d, a: d.update(class_names=["calm", "joy"]), "differ from those saved"),
    (lambda d, a: d.update(layers="1"), "layers must be a positive integer"),
])
def test_bad_classifier_files_are_refused(tmp_path, edit, message):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    from deepfever.evaluation.classifier_io import ClassifierFileError, load_classifier
    from deepfever.io.hashing import file_sha256

    _, document_path = _fitted_classifier(tmp_path)
    weights_path = document_path.with_suffix(".safetensors")
    document, arrays = json.loads(document_path.read_text()), load_file(str(weights_path))
    with safe_open(str(weights_path), "np") as handle:
        metadata = handle.metadata()
    edit(document, arrays)
    save_file(arrays, str(weights_path), metadata=metadata)
    document["weights_sha256"] = file_sha256(weights_path)  # an edit that keeps the checksum consistent
    document_path.write_text(json.dumps(document))
    with pytest.raises(ClassifierFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_classifier(document_path)


# -- 8. outputs that cannot be written fail before the work ------------------------------------------
def test_unwritable_outputs_fail_before_any_work(tiny_model_file, inputs, tmp_path, monkeypatch, capsys):
    never_extract(monkeypatch)
    (tmp_path / "a_file").write_text("not a folder")
    assert main(extract_args(inputs, tmp_path / "a_file" / "out.csv", tiny_model_file)) == 2
    assert "a_file" in capsys.readouterr().err
    annotated = tmp_path / "annotated" / "face0.annotated.jpg"
    annotated.parent.mkdir(parents=True)
    annotated.write_bytes(b"keep me")
    status = main(extract_args(inputs, tmp_path / "out.csv", tiny_model_file, "--annotate-dir", str(tmp_path / "annotated")))
    assert status == 2 and "face0.annotated.jpg already exists" in capsys.readouterr().err
    assert annotated.read_bytes() == b"keep me" and not (tmp_path / "out.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_fails_before_any_work(tiny_model_file, inputs, tmp_path, monkeypatch, capsys):
    never_extract(monkeypatch)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(extract_args(inputs, folder / "out.csv", tiny_model_file)) == 2
    finally:
        folder.chmod(0o700)
    assert "cannot write" in capsys.readouterr().err


# -- 9. the package's own errors: one line naming the flag, exit 2 -----------------------------------
def test_package_errors_are_one_line_naming_the_flag(tiny_model_file, inputs, tmp_path, monkeypatch, capsys):
    from deepfever.errors import WeightsUnavailableError

    output = tmp_path / "out.csv"
    assert main([*extract_args(inputs, output, tiny_model_file)[:-4], "--yunet-model", str(tmp_path / "missing.onnx")]) == 2
    error = capsys.readouterr().err
    assert "--yunet-model" in error and "no such file" in error and error.count("\n") == 1

    def offline(*args, **kwargs):
        raise WeightsUnavailableError("MTCNN weights are not cached and pip download failed")

    monkeypatch.setattr("deepfever.faces.detect.create_detector", offline)
    never_extract(monkeypatch)
    assert main([*extract_args(inputs, output, tiny_model_file)[:-4], "--detector", "mtcnn"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--detector yunet (bundled" in error and "Traceback" not in error


# -- 6 and 13. rows stream to the chunk file; settings recorded in the output ------------------------
def test_rows_stream_in_batches_and_outputs_record_their_settings(tiny_model_file, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from deepfever.extraction import run as run_module
    from deepfever.io.tables import metadata_path_for

    monkeypatch.setattr(run_module, "ROW_BATCH", 4)
    video = write_video(tmp_path / "clip.avi", 20)
    extractor = Extractor(model=tiny_model_file, detector="none")
    report = ExtractionRun(extractor, tmp_path / "out.parquet", fps=5, smoothing=0.5, chunk_size=1).run([video])
    assert report.faces == 10
    chunk = pq.ParquetFile(tmp_path / "out.parts" / "chunk-000000.parquet")
    assert chunk.metadata.num_row_groups >= 3  # appended as rows came, not held until the end
    metadata = read_table(tmp_path / "out.parquet").attrs["metadata"]
    assert metadata["fps"] == 5 and metadata["smooth"] == 0.5 and metadata["detector"] == "none"
    assert metadata["model_id"] == extractor.fingerprint_["model_id"]
    assert metadata["face_stage"] == extractor.stage_.to_dict()
    ExtractionRun(extractor, tmp_path / "table.csv", fps=5).run([video])
    assert json.loads(metadata_path_for(tmp_path / "table.csv").read_text())["fps"] == 5


# -- 14. annotated copies mirror relative paths --------------------------------------------------------
def test_annotated_copies_of_same_named_files_do_not_collide(tiny_model_file, tmp_path):
    write_random_crops(tmp_path / "in" / "a", 1, "x")
    write_random_crops(tmp_path / "in" / "b", 1, "x", seed=1)
    extractor = Extractor(model=tiny_model_file, detector="none")
    ExtractionRun(extractor, tmp_path / "out.csv", annotate_dir=tmp_path / "ann").run([tmp_path / "in"])
    assert sorted(str(p.relative_to(tmp_path / "ann")) for p in (tmp_path / "ann").rglob("*.jpg")) == [
        "a/x0.annotated.jpg", "b/x0.annotated.jpg"]


# -- 17. aligned crops for Extractor.embed ---------------------------------------------------------
def test_saved_crops_are_what_embed_takes(tiny_model_file, inputs, tmp_path, capsys):
    output = tmp_path / "out.parquet"
    assert main(extract_args(inputs, output, tiny_model_file, "--save-crops", str(tmp_path / "crops"))) == 0
    table = read_table(output)
    images = table[table["frame"].isna()]
    crops = [np.asarray(Image.open(tmp_path / "crops" / f"{row.path.rsplit('/', 1)[-1][:-4]}.face{row.face}.png"))
             for row in images.itertuples()]
    vectors = Extractor(model=tiny_model_file).embed(np.stack(crops))
    np.testing.assert_allclose(vectors, np.stack(images["embedding"]), atol=1e-5)
    assert main(extract_args(inputs, tmp_path / "again.csv", tiny_model_file, "--save-crops", str(tmp_path / "crops"))) == 2
    assert "already holds files" in capsys.readouterr().err


def test_outputs_get_the_usual_file_mode(tiny_model_file, inputs, tmp_path):
    """Atomic writes go through a private temporary file; the output must still be readable by others."""
    output = tmp_path / "out.csv"
    assert main(extract_args(inputs, output, tiny_model_file)) == 0
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (output, tmp_path / "out.csv.failures.csv", tmp_path / "out.csv.meta.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
