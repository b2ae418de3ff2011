"""Linear probes: subject-wise folds, standardisation, the classifier file, and ``deepfever probe`` end to end."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from deepfever.cli import main
from deepfever.evaluation._probe_data import load_labelled
from deepfever.evaluation.classifier_io import (
    FingerprintMismatchError, SavedClassifier, classifier_paths, load_classifier, save_classifier,
)
from deepfever.evaluation.probe import evaluate_probe, fit_classifier, make_folds, sample_per_class
from deepfever.faces.detect import DEFAULT_DETECTOR

# A fixed template keeps these tests independent of the packaged one (the probe never looks at it).
TEMPLATE = {"size": 48, "landmarks": [[15.5, 19.5], [32.5, 19.5], [24.0, 27.5], [17.5, 36.5], [30.5, 36.5]]}
FINGERPRINT = {"model_id": "m@0123456789ab", "template_id": "abcdef012345", "crop_size": 48}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A random-init model and a byte-identical copy under another name, which gives another model_id."""
    import shutil

    import torch

    from deepfever.models import create_model, save_model

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = save_model(create_model("fevernet_s", template=TEMPLATE, trained_heads=("emotion",)).eval(), folder / "random.safetensors")
    for suffix in (".safetensors", ".json"):
        shutil.copy(model.with_suffix(suffix), folder / f"renamed{suffix}")
    return model, folder / "renamed.safetensors"


@pytest.fixture(scope="module")
def pattern_dataset(tmp_path_factory):
    """``class/image`` folders of 48x48 textures (stripes, columns, checks) with noise, one corrupt file,
    and a CSV manifest of the same images naming 6 subjects (plus a missing file and an unlabelled row)."""
    root = tmp_path_factory.mktemp("patterns")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:48, :48]
    patterns = {"stripes": (y // 4) % 2, "columns": (x // 4) % 2, "checks": (x // 8 + y // 8) % 2}
    rows = ["path,label,subject"]
    for name, pattern in patterns.items():
        (root / "images" / name).mkdir(parents=True)
        for index in range(12):
            pixels = (pattern * 150 + rng.integers(0, 100, (48, 48))).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"p{index}.png")
            rows.append(f"images/{name}/p{index}.png,{name},person{index % 6}")
    (root / "images" / "stripes" / "broken.png").write_bytes(b"not a png")
    rows += ["images/gone.png,checks,person0", "images/checks/p0.png,,person0"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_subject_folds_never_put_a_person_in_train_and_test():
    rng = np.random.default_rng(3)
    subjects = np.repeat([f"S{i:03d}" for i in range(15)], rng.integers(2, 7, 15))
    labels = rng.integers(0, 4, len(subjects))
    folds = make_folds(labels, subjects, n_splits=5, seed=1)
    assert len(folds) == 5
    for train, test in folds:
        assert len(test) and not set(subjects[train]) & set(subjects[test])
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(labels)))  # every example tested exactly once
    with pytest.raises(ValueError, match="at least 20 subjects, got 15"):
        make_folds(labels, subjects, n_splits=20)


def test_stratified_folds_without_subjects_keep_class_balance():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    for train, test in make_folds(labels, None, n_splits=5):
        assert np.bincount(labels[test]).tolist() == [2, 4, 6]
        assert not set(train) & set(test)


def test_few_shot_draws_stay_inside_the_training_fold():
    labels = np.repeat([0, 1, 2], [3, 8, 8])
    pool = np.arange(1, 19, 2)  # odd indices only
    drawn = sample_per_class(labels, pool, 2, np.random.default_rng(0))
    assert set(drawn) <= set(pool)
    assert np.bincount(labels[drawn]).tolist() == [1, 2, 2]  # class 0 has a single example in the pool
    again = sample_per_class(labels, pool, 2, np.random.default_rng(0))
    assert drawn.tolist() == again.tolist()


def test_standardisation_matches_a_naive_float64_loop():
    rng = np.random.default_rng(1)
    features = (rng.normal(size=(30, 4)) * [1e-3, 1.0, 50.0, 0.0] + [5.0, -2.0, 1e3, 7.0]).astype(np.float32)
    labels = np.arange(30) % 3
    saved = SavedClassifier.from_pipeline(fit_classifier(features, labels), ["a", "b", "c"], {})
    for column in range(features.shape[1]):
        values = [float(v) for v in features[:, column]]
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
        assert saved.mean[column] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert saved.scale[column] == pytest.approx(std if std > 0 else 1.0, rel=1e-9)  # constant column: left unscaled


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
@pytest.mark.parametrize("classes", [2, 4])
def test_numpy_forward_pass_equals_sklearn(kind, classes):
    rng = np.random.default_rng(classes)
    labels = np.arange(60) % classes
    features = (rng.normal(size=(60, 16)) + labels[:, None] * 0.7).astype(np.float32)
    pipeline = fit_classifier(features, labels, kind)
    names = [f"class{i}" for i in range(classes)]
    saved = SavedClassifier.from_pipeline(pipeline, names, {})
    test = rng.normal(size=(25, 16)).astype(np.float32)
    np.testing.assert_allclose(saved.predict_proba(test), pipeline.predict_proba(test.astype(np.float64)), atol=1e-6, rtol=0)
    assert saved.predict(test).tolist() == [names[i] for i in pipeline.predict(test.astype(np.float64))]


def test_classifier_file_round_trip_and_integrity(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.arange(40) % 3
    features = rng.normal(size=(40, 8)) + labels[:, None]
    info = {"extractor": {**FINGERPRINT, "model": "m.safetensors", "detector": "none"}, "cross_validation": {"accuracy": {"mean": 0.9}}}
    saved = SavedClassifier.from_pipeline(fit_classifier(features, labels, "mlp"), ["x", "y", "z"], info)
    document = save_classifier(saved, tmp_path / "clf")
    assert document == tmp_path / "clf.json" and (tmp_path / "clf.safetensors").is_file()
    assert not list(tmp_path.glob("*.pkl")) and json.loads(document.read_text())["format_version"] == 1
    loaded = load_classifier(tmp_path / "clf.safetensors")  # any of the three names works
    assert loaded.kind == "mlp" and loaded.class_names == ["x", "y", "z"]
    assert loaded.info["extractor"] == info["extractor"] and loaded.info["cross_validation"] == info["cross_validation"]
    np.testing.assert_array_equal(loaded.predict_proba(features), saved.predict_proba(features))
    with pytest.raises(FileExistsError, match="overwrite"):
        save_classifier(saved, tmp_path / "clf.json")
    save_classifier(loaded, tmp_path / "clf", overwrite=True)  # a loaded classifier saves again
    _, weights = classifier_paths(tmp_path / "clf")
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="checksum"):
        load_classifier(tmp_path / "clf")


def test_fingerprint_mismatch_is_refused():
    saved = SavedClassifier("logistic", ["a", "b"], np.zeros(2), np.ones(2), [np.zeros((2, 1))], [np.zeros(1)],
                            {"extractor": {**FINGERPRINT, "model": "fevernet_s.ferplus"}})
    saved.check_fingerprint(dict(FINGERPRINT))
    with pytest.raises(FingerprintMismatchError, match=r"model_id 'm@0123456789ab' != 'other@.*--model fevernet_s.ferplus"):
        saved.check_fingerprint({**FINGERPRINT, "model_id": "other@ffffffffffff"})
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        saved.predict_proba(np.zeros((3, 5)))


def test_manifest_keeps_its_own_classes_and_subjects(pattern_dataset):
    data = load_labelled(pattern_dataset / "manifest.csv")
    assert data.class_names == ["checks", "columns", "stripes"]
    assert data.description["format"] == "csv" and data.description["unlabelled_rows"] == 1
    assert len(data.sources) == 37 and len(set(data.subjects)) == 6
    report = evaluate_probe(np.eye(3)[data.labels] + 0.01 * np.arange(37)[:, None], data.labels, data.class_names,
                            data.subjects, n_splits=3, shots=())
    assert report["protocol"]["grouping"] == "subject" and "learning_curve" not in report


def test_cli_evaluate_fit_predict(pattern_dataset, model_files, tmp_path, capsys):
    model, other_model = (str(path) for path in model_files)
    out = tmp_path / "report"
    common = ["--model", model, "--device", "cpu", "--folds", "3", "--detector", "none"]
    assert main(["probe", "evaluate", str(pattern_dataset / "images"), *common, "--learning-curve", "1,5,all",
                 "--repeats", "2", "-o", str(out)]) == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["accuracy"]["mean"] >= 0.9 and report["protocol"]["grouping"].startswith("none")
    assert [p["per_class"] for p in report["learning_curve"]["points"]] == [1, 5, "all"]
    assert [p["train_size_mean"] for p in report["learning_curve"]["points"][:2]] == [3, 15]  # drawn per class, 3 classes
    assert report["extractor"]["detector"] == "none" and report["data"]["failures"] == 1
    assert "broken.png" in (out / "failures.csv").read_text()
    assert (out / "confusion_matrix.png").stat().st_size > 0 and (out / "learning_curve.png").stat().st_size > 0
    assert main(["probe", "evaluate", str(pattern_dataset / "images"), *common, "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err

    clf = tmp_path / "clf"
    assert main(["probe", "fit", "--root", str(pattern_dataset / "manifest.csv"), *common, "--learning-curve", "none", "-o", str(clf)]) == 0
    document = json.loads((tmp_path / "clf.json").read_text())
    assert document["cross_validation"]["protocol"]["grouping"] == "subject" and document["data"]["subjects"] == 6
    assert (tmp_path / "clf.failures.csv").read_text().splitlines()[1:] == [f"{pattern_dataset / 'images' / 'gone.png'},no such file"]

    predictions = tmp_path / "columns.csv"
    assert main(["probe", "predict", str(clf), str(pattern_dataset / "images" / "columns"), "-o", str(predictions), "--device", "cpu",
                 "--detector", "none"]) == 0  # the inputs are crops: asked for explicitly
    import pandas as pd

    table = pd.read_csv(predictions)
    assert len(table) == 12 and (table["prediction"] == "columns").mean() >= 0.9
    np.testing.assert_allclose(table[["p_checks", "p_columns", "p_stripes"]].sum(axis=1), 1.0, atol=1e-9)
    capsys.readouterr()
    assert main(["probe", "predict", str(clf), str(pattern_dataset / "images"), "-o", str(tmp_path / "x.csv"),
                 "--model", other_model, "--device", "cpu"]) == 2
    assert "fitted on vectors of another extractor" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


class TwoFaces:
    """A stand-in detector: every image holds a small face (left) and a large one (right)."""

    def detect(self, image):
        from deepfever.faces.types import Face

        def face(x1, y1, x2, y2):
            w, h = x2 - x1, y2 - y1
            points = [[x1 + 0.3 * w, y1 + 0.4 * h], [x1 + 0.7 * w, y1 + 0.4 * h], [x1 + 0.5 * w, y1 + 0.55 * h],
                      [x1 + 0.35 * w, y1 + 0.75 * h], [x1 + 0.65 * w, y1 + 0.75 * h]]
            return Face(box=np.array([x1, y1, x2, y2], np.float32), landmarks=np.array(points, np.float32), score=0.99)

        return [face(2, 2, 30, 30), face(40, 10, 94, 80)]


def test_fit_and_predict_detect_faces_by_default_and_record_the_detector(pattern_dataset, model_files, tmp_path, monkeypatch):
    """Issue 9.11: a group photo used to give one row (the whole image) and a wrong label."""
    monkeypatch.setattr("deepfever.faces.detect.create_detector", lambda name, **options: TwoFaces())
    photos = tmp_path / "photos"
    for name in ("stripes", "columns"):
        (photos / name).mkdir(parents=True)
        for index, source in enumerate(sorted((pattern_dataset / "images" / name).glob("p*.png"))[:6]):
            Image.open(source).resize((96, 96)).save(photos / name / f"{index}.png")
    model = str(model_files[0])
    clf = tmp_path / "clf"
    assert main(["probe", "fit", str(photos), "--model", model, "--device", "cpu", "--folds", "2", "--learning-curve", "none",
                 "-o", str(clf)]) == 0
    assert json.loads((tmp_path / "clf.json").read_text())["extractor"]["detector"] == DEFAULT_DETECTOR
    predictions = tmp_path / "predictions.csv"
    assert main(["probe", "predict", str(clf), str(photos / "stripes"), "-o", str(predictions), "--device", "cpu"]) == 0
    import pandas as pd

    table = pd.read_csv(predictions)
    assert len(table) == 12 and all(sorted(faces) == [0, 1] for faces in table.groupby("path")["face"].apply(list))


def test_whole_photos_taken_as_crops_are_warned_about(model_files, tmp_path, caplog):
    model = str(model_files[0])
    big = tmp_path / "big"
    (big / "a").mkdir(parents=True)
    (big / "b").mkdir(parents=True)
    for index in range(4):
        Image.new("RGB", (300, 300), (index * 40, 0, 0)).save(big / "ab"[index % 2] / f"{index}.png")
    assert main(["probe", "evaluate", str(big), "--model", model, "--device", "cpu", "--folds", "2", "--learning-curve", "none",
                 "--detector", "none"]) == 0
    assert "4 of 4 images are larger than 192 px" in caplog.text and "drop --detector none" in caplog.text


def test_a_classifier_fitted_on_crops_detects_faces_in_photos(shared, pattern_dataset, model_files, tmp_path, caplog):
    """Issue 16: a crop-fitted classifier (detector none) gave one row per group photo; now one row per face."""
    import pandas as pd

    from deepfever.api import Extractor

    model = str(model_files[0])
    clf = tmp_path / "clf"
    assert main(["probe", "fit", str(pattern_dataset / "images"), "--model", model, "--device", "cpu", "--detector", "none",
                 "--folds", "2", "--learning-curve", "none", "-o", str(clf)]) == 0
    assert load_classifier(clf).face_stage["detector"] == "none"
    photo = shared / "data" / "photos" / "selfie-many-people.jpg"
    faces = len(Extractor(model=model, device="cpu").extract([photo]))
    assert faces > 1
    predictions = tmp_path / "selfie.csv"
    assert main(["probe", "predict", str(clf), str(photo), "-o", str(predictions), "--device", "cpu"]) == 0
    table = pd.read_csv(predictions)
    assert len(table) == faces and sorted(table["face"]) == list(range(faces))
    warning = [record.getMessage() for record in caplog.records if "face stage differs" in record.getMessage()]
    assert len(warning) == 1 and "\n" not in warning[0]
    assert f"detector 'none' when fitted, '{DEFAULT_DETECTOR}' now" in warning[0] and "--detector none" in warning[0]
    explicit = tmp_path / "whole.csv"  # the whole photo as one face only when asked for
    assert main(["probe", "predict", str(clf), str(photo), "-o", str(explicit), "--device", "cpu", "--detector", "none"]) == 0
    assert len(pd.read_csv(explicit)) == 1


def test_face_stage_mismatch_is_named_in_one_line():
    from deepfever.evaluation.classifier_io import detector_for_photos

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    classifier = SavedClassifier.from_pipeline(fit_classifier(rng.normal(size=(20, 4)) + labels[:, None], labels), ["a", "b"],
                                               {"extractor": {**FINGERPRINT, "detector": "mtcnn"}})
    assert classifier.face_stage == {**FINGERPRINT, "detector": "mtcnn"}
    assert classifier.face_stage_mismatch({**FINGERPRINT, "detector": "mtcnn"}) is None
    line = classifier.face_stage_mismatch({**FINGERPRINT, "detector": "yunet", "crop_size": 64})
    assert line == "the face stage differs from the classifier's: detector 'mtcnn' when fitted, 'yunet' now; crop_size 48 when fitted, 64 now"
    assert detector_for_photos(None, "mtcnn", "yunet") == "mtcnn"
    assert detector_for_photos(None, "none", "yunet") == "yunet" and detector_for_photos(None, None, "yunet") == "yunet"
    assert detector_for_photos("none", "mtcnn", "yunet") == "none"
