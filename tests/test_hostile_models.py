"""Issue 18, items 10, 13, 14, 16 and 17: hand-edited model, classifier, index and training files, and pixel arrays.

Each test states the attack and the expected answer: a one-line error naming the file and the field
(exit 2 from the CLI), never a traceback, a NaN output or an allocation sized by an edited number.
"""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_random_crops
from deepfever.cli import main

NAN = float("nan")


def _edited_model(source, folder, name, edit):
    """A copy of the model ``source`` (same weights) whose sidecar's ``model`` section ``edit`` changed."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    shutil.copy(source, weights)
    document = json.loads(source.with_suffix(".json").read_text())
    edit(document["model"])
    weights.with_suffix(".json").write_text(json.dumps(document))
    return weights


def _one_line_error(capsys, argv) -> str:
    """Run the CLI; it must exit 2 with one ``error:`` line on stderr (no traceback)."""
    assert main([str(value) for value in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "error:" in err[-1] and not any("Traceback" in line for line in err), err
    return err[-1]


# -- 10: the fingerprint covers the config that preprocesses and heads the vectors ---------------------
@pytest.mark.parametrize("edit", [
    lambda m: m.update(mean=0.4), lambda m: m.update(std=0.3), lambda m: m.update(trained_heads=["emotion", "valence_arousal"]),
    lambda m: m["face_stage"].update(detector="mtcnn"), lambda m: m.update(output_prior="uniform"),
    lambda m: m.update(class_prior=[1 / 8] * 8),
], ids=["mean", "std", "heads", "detector", "output_prior", "class_prior"])
def test_fingerprint_changes_with_every_config_field_that_changes_outputs(tiny_model_file, tmp_path, edit):
    from deepfever.models.checkpoint import load_model
    from deepfever.models.fingerprint import model_fingerprint

    same = _edited_model(tiny_model_file, tmp_path / "same", "tiny", lambda m: None)
    edited = _edited_model(tiny_model_file, tmp_path / "edited", "tiny", edit)
    original = model_fingerprint(same, load_model(same).config)
    assert model_fingerprint(tiny_model_file, load_model(tiny_model_file).config) == original
    changed = model_fingerprint(edited, load_model(edited).config)
    assert changed["model_id"] != original["model_id"]
    # The weights part stays readable, so a user sees "same weights, other config".
    assert changed["model_id"].split("-")[0] == original["model_id"].split("-")[0]


def test_resume_refuses_a_sidecar_edited_since_the_chunks_were_written(tiny_model_file, tmp_path, capsys):
    write_random_crops(tmp_path / "crops", 4, "c")
    model = _edited_model(tiny_model_file, tmp_path / "model", "tiny", lambda m: None)
    output = tmp_path / "out" / "faces.parquet"
    argv = ["extract", tmp_path / "crops", "-o", output, "--model", model, "--detector", "none", "--chunk-size", "1"]
    assert main([str(value) for value in argv]) == 0
    for written in output.parent.iterdir():  # as after a kill -9 during the merge: the chunks stay, the outputs go
        if written.is_file():
            written.unlink()
    parts = [folder for folder in output.parent.iterdir() if folder.is_dir()]
    assert len(parts) == 1 and sorted(parts[0].glob("chunk-*.json"))
    document = json.loads(model.with_suffix(".json").read_text())
    document["model"]["mean"] = 0.6
    model.with_suffix(".json").write_text(json.dumps(document))
    line = _one_line_error(capsys, [*argv, "--resume"])
    assert "model_id" in line and "cannot resume" in line


def test_classifier_and_index_refuse_vectors_of_an_edited_sidecar(tiny_model_file, tmp_path):
    from deepfever.api import Extractor
    from deepfever.applications.search import IndexMismatchError, build_index
    from deepfever.evaluation.classifier_io import FingerprintMismatchError, SavedClassifier

    edited = _edited_model(tiny_model_file, tmp_path, "tiny", lambda m: m.update(std=0.2))
    fitted_on = Extractor(model=tiny_model_file, detector="none").load().fingerprint_
    now = Extractor(model=edited, detector="none").load().fingerprint_
    classifier = SavedClassifier("logistic", ["a", "b"], np.zeros(128), np.ones(128), [np.zeros((128, 1))], [np.zeros(1)],
                                 {"extractor": dict(fitted_on)})
    with pytest.raises(FingerprintMismatchError, match="model_id"):
        classifier.check_fingerprint(now)
    table = pd.DataFrame({"path": ["a.png", "b.png"], "face": 0, "embedding": list(np.eye(2, 128, dtype=np.float32)),
                          **{key: [value] * 2 for key, value in fitted_on.items()}})
    with pytest.raises(IndexMismatchError, match="model_id"):
        build_index(table, kind="exact").check_fingerprint(now)


def test_a_weights_only_model_id_from_before_is_named_as_such(tiny_model_file):
    from deepfever.applications.search import FaceIndex, IndexMismatchError
    from deepfever.evaluation.classifier_io import FingerprintMismatchError, SavedClassifier
    from deepfever.io.hashing import file_sha256
    from deepfever.models.checkpoint import load_model
    from deepfever.models.fingerprint import model_fingerprint

    now = model_fingerprint(tiny_model_file, load_model(tiny_model_file).config)
    legacy = {**now, "model_id": f"tiny@{file_sha256(tiny_model_file)[:12]}"}
    classifier = SavedClassifier("logistic", ["a", "b"], np.zeros(128), np.ones(128), [np.zeros((128, 1))], [np.zeros(1)],
                                 {"extractor": legacy})
    with pytest.raises(FingerprintMismatchError, match="hashed only the weights"):
        classifier.check_fingerprint(now)
    with pytest.raises(IndexMismatchError, match="hashed only the weights"):
        FaceIndex(None, pd.DataFrame(), {"fingerprint": legacy}).check_fingerprint(now)


def test_onnx_cache_follows_the_sidecar_not_only_the_weights(tiny_model_file, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from deepfever.models.onnx_runtime import load_onnx_backend

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    first = _edited_model(tiny_model_file, tmp_path / "a", "tiny", lambda m: None)
    edited = _edited_model(tiny_model_file, tmp_path / "b", "tiny", lambda m: m.update(std=0.2))
    assert load_onnx_backend(first).config.std == 0.25
    assert load_onnx_backend(edited).config.std == 0.2


# -- 13: values that make NaN or nonsense are refused at load -------------------------------------------
@pytest.mark.parametrize("field, edit", [
    ("std", lambda m: m.update(std=0)), ("std", lambda m: m.update(std=-0.25)), ("std", lambda m: m.update(std="x")),
    ("mean", lambda m: m.update(mean=NAN)), ("mean", lambda m: m.update(mean=[0.5])),
    ("class_prior", lambda m: m.update(class_prior=[NAN] * 8)), ("class_prior", lambda m: m.update(class_prior=[-1] * 8)),
    ("class_prior", lambda m: m.update(class_prior=[0] * 8)), ("logit_adjustment", lambda m: m.update(logit_adjustment=NAN)),
    ("logit_adjustment", lambda m: m.update(logit_adjustment=-1)),
], ids=["std0", "std-neg", "std-str", "mean-nan", "mean-list", "prior-nan", "prior-neg", "prior-zero", "la-nan", "la-neg"])
def test_sidecar_values_that_make_nan_are_refused_at_load(tiny_model_file, tmp_path, capsys, field, edit):
    from deepfever.models.checkpoint import ModelFileError, load_model

    model = _edited_model(tiny_model_file, tmp_path, "tiny", edit)
    with pytest.raises(ModelFileError, match=rf"{model.with_suffix('.json')}.*{field}"):
        load_model(model)
    write_random_crops(tmp_path / "crops", 1, "c")
    line = _one_line_error(capsys, ["extract", tmp_path / "crops", "-o", tmp_path / "x.csv", "--model", model,
                                    "--detector", "none", "--prior", "uniform"])
    assert field in line and str(model.with_suffix(".json")) in line
    assert not (tmp_path / "x.csv").exists()


# -- 14: every hand-edited file is validated before it sizes an allocation ------------------------------
@pytest.mark.parametrize("field, edit", [
    ("embedding_dim", lambda m: m.update(embedding_dim=10 ** 9)), ("input_size", lambda m: m.update(input_size=10 ** 6)),
    ("arch_kwargs", lambda m: m.update(arch_kwargs={"width": 10 ** 9})), ("arch_kwargs", lambda m: m.update(arch_kwargs=[1])),
    ("face_stage", lambda m: m["face_stage"].update(detector="zzz")), ("face_stage", lambda m: m.update(face_stage="yunet")),
    ("in_chans", lambda m: m.update(in_chans=7)), ("template", lambda m: m.update(template=[1, 2])),
    ("output_prior", lambda m: m.update(output_prior=2)), ("class_names", lambda m: m.update(class_names="neutral")),
], ids=["dim", "size", "kwargs", "kwargs-list", "detector", "stage-str", "chans", "template", "prior", "names"])
def test_edited_model_sidecar_is_refused_in_one_line_before_allocating(tiny_model_file, tmp_path, capsys, field, edit):
    from deepfever.models.checkpoint import ModelFileError, load_model

    model = _edited_model(tiny_model_file, tmp_path, "tiny", edit)
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=rf"{model.with_suffix('.json')}.*{field}"):
        load_model(model)
    assert time.perf_counter() - started < 5
    write_random_crops(tmp_path / "crops", 1, "c")
    line = _one_line_error(capsys, ["extract", tmp_path / "crops", "-o", tmp_path / "x.csv", "--model", model, "--detector", "none"])
    assert field in line


def _classifier_files(folder):
    from deepfever.evaluation.classifier_io import SavedClassifier, save_classifier

    rng = np.random.default_rng(0)
    classifier = SavedClassifier("mlp", ["a", "b", "c"], rng.normal(size=8), np.ones(8), [rng.normal(size=(8, 4)), rng.normal(size=(4, 3))],
                                 [np.zeros(4), np.zeros(3)], {"extractor": {"model_id": "m@0", "template_id": "t", "crop_size": 48,
                                                                            "detector": "none"}})
    return save_classifier(classifier, folder / "clf")


@pytest.mark.parametrize("field, value", [
    ("layers", 10 ** 8), ("layers", 1e8), ("input_dim", 10 ** 12), ("extractor", "m@0"), ("extractor", {"model_id": 5}),
    ("weights_file", "../../etc/passwd"), ("class_names", ["a", "b", "c"] * 10 ** 5),
], ids=["layers-int", "layers-float", "dim", "extractor-str", "extractor-type", "weights-path", "names-huge"])
def test_edited_classifier_file_is_refused_in_one_line(tmp_path, field, value):
    from deepfever.evaluation.classifier_io import ClassifierFileError, load_classifier

    document_path = _classifier_files(tmp_path)
    document = json.loads(document_path.read_text())
    document[field] = value
    document_path.write_text(json.dumps(document))
    started = time.perf_counter()
    with pytest.raises(ClassifierFileError, match=rf"{document_path}.*{field}"):
        load_classifier(document_path)
    assert time.perf_counter() - started < 5


def _saved_index(folder, vectors, model_id="m@000000000000-00000000", kind="exact"):
    from deepfever.applications.search import build_index, save_index

    table = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(vectors))], "face": 0, "embedding": list(vectors),
                          "model_id": model_id, "template_id": "t", "crop_size": 48})
    table.attrs["metadata"] = {"detector": "yunet"}
    return save_index(build_index(table, kind=kind), folder)


def _vectors(count, seed, dim=16):
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("field, value", [
    ("kind", "zzz"), ("count", "300"), ("nprobe", 10 ** 9), ("rerank", 10 ** 9), ("dim", 3), ("fingerprint", None),
    ("fingerprint", {"model_id": "m"}), ("format", 99),
], ids=["kind", "count", "nprobe", "rerank", "dim", "fingerprint-none", "fingerprint-keys", "format"])
def test_edited_index_json_is_refused_in_one_line(tmp_path, capsys, field, value):
    from deepfever.applications.search import load_index

    folder = _saved_index(tmp_path / "index", _vectors(300, 0), kind="ivf" if field == "nprobe" else "exact")
    if field == "rerank":
        folder = _saved_index(tmp_path / "pq", _vectors(2000, 0), kind="ivfpq")
    info = json.loads((folder / "index.json").read_text())
    info[field] = value
    (folder / "index.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"index.json.*{field}"):
        load_index(folder)
    line = _one_line_error(capsys, ["search", folder, "--query-row", 0])
    assert field in line


@pytest.mark.parametrize("name, damage", [
    ("vectors.faiss", lambda path: path.write_bytes(b"not faiss")), ("meta.parquet", lambda path: path.write_bytes(b"PAR1 no")),
    ("index.json", lambda path: path.write_text("{not json")),
])
def test_damaged_index_files_are_refused_in_one_line(tmp_path, capsys, name, damage):
    folder = _saved_index(tmp_path / "index", _vectors(50, 0))
    damage(folder / name)
    line = _one_line_error(capsys, ["search", folder, "--query-row", 0])
    assert name in line


@pytest.mark.parametrize("text, field", [
    ("epochs: [1,\n", "config.yaml"), ("sources: 5\n", "sources"), ("sources: {a: 1}\n", "sources"),
    ("epochs: true\n", "epochs"), (b"epochs: 1 # \xe9\n", "config.yaml"),
], ids=["syntax", "sources-int", "sources-map", "epochs-bool", "not-utf8"])
def test_edited_training_config_is_refused_in_one_line(tmp_path, capsys, monkeypatch, text, field):
    monkeypatch.chdir(tmp_path)  # a config that were accepted would train into ./runs
    config = tmp_path / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = _one_line_error(capsys, ["train", "--config", config])
    assert field in line and str(config) in line


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["param_groups"][0].update(lr="fast"), "lr"), (lambda d: d["param_groups"].append(dict(d["param_groups"][0])), "param_groups"),
    (lambda d: d["param_groups"][0].update(weight_decay=NAN), "weight_decay"), (lambda d: d["scheduler"].update(last_epoch="x"), "last_epoch"),
], ids=["lr-str", "groups", "wd-nan", "scheduler"])
def test_edited_training_state_is_refused_in_one_line(tmp_path, edit, field):
    from deepfever.models import create_model
    from deepfever.training.state import TrainingStateError, load_training_state, save_training_state

    model = create_model("fevernet_s")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 5)
    path = tmp_path / "last.safetensors"
    save_training_state(path, model, optimizer, scheduler, {"epoch": 1, "step": 3, "best_accuracy": -1})
    document = json.loads(path.with_suffix(".json").read_text())
    edit(document)
    path.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(TrainingStateError, match=rf"last.json.*{field}"):
        load_training_state(path, model, optimizer, scheduler)


# -- 16: embed and predict use the one pixel converter ------------------------------------------------------
def test_embed_and_predict_refuse_float_crops_and_scale_uint16_like_extract(tiny_model_file):
    from deepfever.api import Extractor
    from deepfever.errors import ImageReadError

    extractor = Extractor(model=tiny_model_file, detector="none").load()
    crops = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    for method in (extractor.embed, extractor.predict):
        with pytest.raises(ImageReadError, match="float"):
            method(crops / 255.0)
        with pytest.raises(ImageReadError, match="outside"):
            method(crops.astype(np.int32) * 4)
    wide = crops.astype(np.uint16) * 257  # the same picture at 16 bits
    assert np.allclose(extractor.embed(wide), extractor.embed(crops), atol=1e-5)
    grey = crops[..., 0]
    assert np.allclose(extractor.embed(grey.astype(np.uint16) * 257), extractor.embed(grey), atol=1e-5)


def test_predict_arrays_refuses_float_crops():
    from deepfever.errors import ImageReadError
    from deepfever.models import create_model
    from deepfever.models.predict import predict_arrays

    with pytest.raises(ImageReadError, match="float"):
        predict_arrays(create_model("fevernet_s").eval(), np.zeros((2, 48, 48), np.float32))


# -- 17: an index checks that its vectors are the ones its fingerprint describes ---------------------------
def test_vectors_faiss_copied_from_another_index_is_refused(tmp_path, capsys):
    from deepfever.applications.search import load_index

    ours = _saved_index(tmp_path / "ours", _vectors(40, 0), model_id="a@000000000000-00000000")
    theirs = _saved_index(tmp_path / "theirs", _vectors(40, 1), model_id="b@111111111111-11111111")
    shutil.copy(theirs / "vectors.faiss", ours / "vectors.faiss")
    with pytest.raises(ValueError, match="vectors.faiss"):
        load_index(ours)
    line = _one_line_error(capsys, ["search", ours, "--query-row", 0])
    assert "vectors.faiss" in line and "rebuild" in line


def test_ivfpq_vectors_npy_copied_from_another_index_is_refused(tmp_path):
    from deepfever.applications.search import load_index

    ours = _saved_index(tmp_path / "ours", _vectors(2000, 0), kind="ivfpq")
    theirs = _saved_index(tmp_path / "theirs", _vectors(2000, 1), kind="ivfpq")
    shutil.copy(theirs / "vectors.npy", ours / "vectors.npy")
    with pytest.raises(ValueError, match="vectors.npy"):
        load_index(ours)


def test_index_records_its_face_stage_and_names_a_different_detector(tmp_path, caplog):
    from deepfever.applications.search import load_index

    index = load_index(_saved_index(tmp_path / "index", _vectors(20, 0)))
    assert index.info["face_stage"]["detector"] == "yunet"
    fingerprint = dict(index.info["fingerprint"])
    index.check_fingerprint(fingerprint, detector="yunet")
    assert "detector" not in caplog.text
    index.check_fingerprint(fingerprint, detector="mtcnn")
    assert "detector 'yunet'" in caplog.text and "'mtcnn'" in caplog.text
