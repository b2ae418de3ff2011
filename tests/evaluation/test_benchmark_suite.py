"""Benchmark suites on generated FER+, folder, prepared-cache and FEC data with random-init models."""
import json

import numpy as np
import pytest
import yaml
from conftest import write_ferplus_fixture
from fixtures_data import fec_face, fec_row, make_folder, write_fec_csv, write_image
from PIL import Image

from deepfever.cli import main
from deepfever.data.formats.fec import FecFace, fec_face_stem
from deepfever.data.prepare import PrepareSettings, prepare_dataset
from deepfever.evaluation._suite_tasks import concordance
from deepfever.evaluation.suite import load_suite, run_suite


@pytest.fixture(scope="module")
def va_model_file(tmp_path_factory):
    """A random-init model that claims a trained valence/arousal head."""
    import torch

    from deepfever.faces.template import load_default_template
    from deepfever.models import create_model, save_model

    torch.manual_seed(2)
    model = create_model("fevernet_s", template=load_default_template().to_dict(), trained_heads=("emotion", "valence_arousal"))
    return save_model(model.eval(), tmp_path_factory.mktemp("va") / "va.safetensors", {"training": {"data": "affectnet (pretend)"}})


def _emotion_cache(root):
    """A csv dataset of 12 faces with labels 0..7 and valence/arousal, prepared with detector none."""
    rng = np.random.default_rng(0)
    lines = ["path,label,valence,arousal"]
    for index in range(12):
        write_image(root / "images" / f"{index}.png", seed=index, size=(64, 64))
        lines.append(f"images/{index}.png,{index % 8},{rng.uniform(-1, 1):.3f},{rng.uniform(-1, 1):.3f}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    prepare_dataset("csv", root / "labels.csv", root / "cache", PrepareSettings(detector="none"))
    return root / "cache"


def _fec(root):
    """Five fetched faces, four triplets: two usable, one without a majority, one with an unfetched face."""
    faces = [FecFace(f"http://x/{index}.jpg", (0.1, 0.1, 0.9, 0.9)) for index in range(6)]
    (root / "images").mkdir(parents=True)
    for index, face in enumerate(faces[:5]):
        Image.fromarray(np.full((40, 40, 3), 40 * index, np.uint8)).save(root / "images" / f"{fec_face_stem(face)}.png")
    fields = [fec_face(face.url, (0.1, 0.1, 0.9, 0.9)) for face in faces]
    write_fec_csv(root / "faceexp-comparison-data-test-public.csv", [
        fec_row([fields[0], fields[1], fields[2]], "ONE_CLASS_TRIPLET", [3, 3, 3, 3, 3, 2]),
        fec_row([fields[1], fields[3], fields[4]], "TWO_CLASS_TRIPLET", [1, 1, 1, 2, 2, 1]),
        fec_row([fields[0], fields[2], fields[4]], "THREE_CLASS_TRIPLET", [1, 1, 2, 2, 3, 3]),
        fec_row([fields[0], fields[1], fields[5]], "ONE_CLASS_TRIPLET", [3, 3, 3, 3, 3, 3]),
    ])
    return root


@pytest.fixture
def suite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "array_cache"))
    document = {"name": "tiny", "batch_size": 16, "flip_tta": False, "datasets": [
        {"name": "ferplus", "task": "ferplus", "root": str(write_ferplus_fixture(tmp_path / "ferplus", per_split=16))},
        {"name": "folder_probe", "task": "probe", "format": "folder", "folds": 2,
         "root": str(make_folder(tmp_path / "folder", {"smile": 6, "frown": 6}))},
        {"name": "emotion", "task": "emotion", "prepared": str(_emotion_cache(tmp_path / "emotion"))},
        {"name": "fec", "task": "fec", "root": str(_fec(tmp_path / "fec"))},
        {"name": "absent", "task": "probe", "format": "ckplus48", "root": str(tmp_path / "no_such_data")},
    ]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_suite_report_crosses_models_and_datasets(suite_file, tiny_model_file, va_model_file, tmp_path):
    out = tmp_path / "report"
    report = run_suite(load_suite(suite_file), [tiny_model_file, va_model_file], out)
    assert json.loads((out / "report.json").read_text())["matrix"] == report["matrix"]
    markdown = (out / "report.md").read_text()
    assert "## Cross-dataset matrix" in markdown and "affectnet (pretend)" in markdown

    matrix = report["matrix"]
    assert matrix["columns"] == ["ferplus", "folder_probe", "emotion", "fec", "absent"]
    assert [row["training_data"] for row in matrix["rows"]] == ["none (random init)", "affectnet (pretend)"]
    for row in matrix["rows"]:
        assert all(0.0 <= row["cells"][column] <= 1.0 for column in matrix["columns"][:4])
        assert row["cells"]["absent"] is None and row["metrics"]["absent"] == "skipped"

    tiny, va = (model["results"] for model in report["models"])
    assert tiny["absent"]["reason"] == f"skipped: data not found at {(tmp_path / 'no_such_data').resolve()}"
    assert tiny["ferplus"]["n"] == 16 and tiny["ferplus"]["metrics"]["accuracy"] == tiny["ferplus"]["headline"]["value"]
    assert tiny["folder_probe"]["classification"]["pooled"]["class_names"] == ["frown", "smile"]
    emotion = tiny["emotion"]
    assert emotion["classification"]["8-class"]["n"] == 12 and emotion["classification"]["7-class"]["n"] == 11
    assert "valence_ccc" not in emotion["metrics"] and any("valence_arousal head" in note for note in emotion["notes"])
    assert -1 <= va["emotion"]["metrics"]["valence_ccc"] <= 1 and va["emotion"]["metrics"]["arousal_rmse"] >= 0
    fec = tiny["fec"]
    assert fec["n"] == 2 and fec["dropped"] == {"no majority odd one out": 1, "face image not available": 1}
    assert fec["per_type"]["three_class"]["n"] == 0 and set(fec["per_type"]) == {"one_class", "two_class", "three_class"}
    for result in (*tiny.values(), *va.values()):
        assert all((out / plot).is_file() for plot in result.get("plots", []))
    assert len(tiny["emotion"]["plots"]) == 4 and tiny["fec"]["plots"] == ["plots/tiny__fec__triplet_types.png"]


def test_concordance_matches_its_definition():
    rng = np.random.default_rng(0)
    truth, predicted = rng.normal(size=50), rng.normal(size=50) * 0.5 + 0.2
    naive = 2 * np.cov(truth, predicted, bias=True)[0, 1] / (truth.var() + predicted.var() + (truth.mean() - predicted.mean()) ** 2)
    assert concordance(truth, predicted) == pytest.approx(naive)
    assert concordance(truth, truth) == pytest.approx(1.0) and concordance(truth, truth + 1) < 1.0


def test_suite_files_are_validated(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"datasets": [{"name": "x", "task": "classify", "root": "."}]}))
    with pytest.raises(ValueError, match="valid: emotion, ferplus, fec, probe"):
        load_suite(path)
    path.write_text(yaml.safe_dump({"datasets": [{"name": "x", "task": "probe", "root": ".", "colour": 1}]}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_suite(path)
    path.write_text(yaml.safe_dump({"datasets": [{"name": "x", "task": "emotion", "root": "."}]}))
    with pytest.raises(ValueError, match="needs prepared"):
        load_suite(path)


def test_default_suite_parses():
    from pathlib import Path

    suite = load_suite(Path(__file__).resolve().parents[2] / "configs" / "benchmark_default.yaml")
    assert [entry.task for entry in suite.entries] == ["ferplus", "zero_shot", "probe"]
    assert suite.entries[1].classes == ("anger", "disgust", "fear", "happy", "sad", "surprise")


def test_zero_shot_entry_scores_only_the_shared_classes_with_argmax_over_all(tmp_path, tiny_model_file, monkeypatch):
    import numpy as np
    from PIL import Image

    from deepfever.evaluation.suite import Suite, SuiteEntry, run_entry
    from deepfever.models import load_model

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("happy", "sad", "contempt"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(tmp_path / "data" / name / f"{index}.png")
    entry = SuiteEntry(name="zs", task="zero_shot", format="folder", root=str(tmp_path / "data"), classes=("happy", "sad"))
    result = run_entry(load_model(tiny_model_file), entry, Suite(name="t", entries=(entry,), flip_tta=False))
    assert result["status"] == "ok" and result["n"] == 6
    summary = result["classification"]["zero-shot"]
    assert summary["evaluated_classes"] == ["happy", "sad"] and len(summary["confusion_matrix"]) == 8


def test_cli_benchmark_writes_the_report_and_refuses_to_overwrite(tmp_path, tiny_model_file, capsys, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "array_cache"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "cli", "datasets": [
        {"name": "ferplus", "task": "ferplus", "root": str(write_ferplus_fixture(tmp_path / "ferplus", per_split=8))},
        {"name": "absent", "task": "ferplus", "root": str(tmp_path / "nothing")},
    ]}))
    argv = ["benchmark", "--suite", str(suite), "--model", str(tiny_model_file), "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    assert "absent skipped" in capsys.readouterr().out and (tmp_path / "out" / "report.md").is_file()
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
