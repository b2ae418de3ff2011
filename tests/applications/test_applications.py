"""Applications of the vectors: compare, odd-one-out, search, maps, identity leakage, and their commands."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_random_crops
from deepfever.applications.compare import (
    compare_vectors,
    odd_one_out_vectors,
    reference_from_vectors,
)
from deepfever.evaluation.identity import attach_identities, identity_leakage, retrieval_map
from deepfever.applications.maps import plot_map, project_2d
from deepfever.applications.search import IndexMismatchError, build_index, load_index, recall_at_k, save_index
from deepfever.cli import main
from deepfever.io.tables import read_table

TEMPLATE = {"size": 48, "landmarks": [[15.5, 19.5], [32.5, 19.5], [24.0, 27.5], [17.5, 36.5], [30.5, 36.5]]}
FINGERPRINT = {"model_id": "test@000000000000", "template_id": "abc", "crop_size": 48}


def _model_file(folder, seed):
    import torch

    from deepfever.models import create_model, save_model

    torch.manual_seed(seed)
    model = create_model("fevernet_s", template=TEMPLATE, trained_heads=("emotion",))
    return save_model(model.eval(), folder / f"random{seed}.safetensors")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Two random-init models: the same architecture, different weights, so different fingerprints."""
    folder = tmp_path_factory.mktemp("models")
    return _model_file(folder, 0), _model_file(folder, 1)


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _clustered(count, dim=32, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return _unit(centres[rng.integers(0, clusters, count)] + 0.6 * rng.normal(size=(count, dim)))


def _table(vectors, **columns):
    frame = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(vectors))], "face": 0, "embedding": list(vectors),
                          "emotion": "neutral", "score": 1.0, **FINGERPRINT})
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_odd_one_out_picks_the_face_outside_the_closest_pair():
    rng = np.random.default_rng(0)
    a = _unit(rng.normal(size=16))
    b = _unit(a + 0.1 * rng.normal(size=16))
    c = _unit(rng.normal(size=16))
    for order, expected in (((a, b, c), 2), ((c, a, b), 0), ((a, c, b), 1)):
        result = odd_one_out_vectors(*order)
        assert result["odd_one_out"] == expected
        assert result["confidence"] == max(result["probabilities"]) > 0.9
        assert sum(result["probabilities"]) == pytest.approx(1.0)
    # equal distances: no preference, and a hotter softmax is less sure
    flat = odd_one_out_vectors(*np.eye(3, dtype=np.float32))
    assert flat["probabilities"] == pytest.approx([1 / 3] * 3)
    assert odd_one_out_vectors(a, b, c, temperature=1.0)["confidence"] < odd_one_out_vectors(a, b, c)["confidence"]
    with pytest.raises(ValueError, match="temperature must be positive"):
        odd_one_out_vectors(a, b, c, temperature=0)


def test_compare_percentile_is_monotone_in_distance():
    reference = reference_from_vectors(_clustered(300), "300 synthetic faces")
    query = _clustered(1, seed=5)[0]
    others = _clustered(50, seed=6)
    results = sorted((compare_vectors(query, other, reference) for other in others), key=lambda r: r["cosine_distance"])
    percentiles = [r["percentile"] for r in results]
    assert percentiles == sorted(percentiles) and percentiles[0] < percentiles[-1]
    same = compare_vectors(query, query, reference)
    assert same["cosine_similarity"] == pytest.approx(1.0, abs=1e-6) and same["percentile"] == 0.0
    assert "300 synthetic faces" in same["interpretation"]
    assert compare_vectors(query, -query)["percentile"] is None  # no reference, no percentile


def test_exact_index_matches_brute_force():
    vectors = _clustered(2000)
    index = build_index(_table(vectors))
    assert index.info["kind"] == "exact"
    query = _clustered(1, seed=9)[0]
    result = index.search(query, k=10)
    expected = np.argsort(-(vectors @ query), kind="stable")[:10]
    assert result["row"].tolist() == expected.tolist()
    np.testing.assert_allclose(result["similarity"], (vectors @ query)[expected], atol=1e-5)
    assert result["rank"].tolist() == list(range(1, 11))


def test_ivf_index_reaches_its_recall_target():
    vectors = _clustered(6000, clusters=30)
    index = build_index(_table(vectors), kind="ivf", target_recall=0.95)
    info = index.info
    assert info["kind"] == "ivf" and 1 <= info["nprobe"] < info["nlist"] and info["tuned_recall_at_10"] >= 0.95
    queries = _unit(vectors[:100] + 0.05 * np.random.default_rng(3).normal(size=(100, 32)))  # near, not equal, to stored faces
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = np.stack([index.search(q, k=10)["row"].to_numpy() for q in queries])
    assert recall_at_k(found, truth) >= 0.9


def test_ivfpq_index_reranks_to_its_recall_target_and_round_trips_from_disk(tmp_path):
    vectors = _clustered(12000, clusters=30)
    index = build_index(_table(vectors), kind="ivfpq", target_recall=0.95)
    info = index.info
    assert info["kind"] == "ivfpq" and info["pq_bytes_per_vector"] == 8 and info["tuned_recall_at_10"] >= 0.95
    # Codes (8 bytes) + ids (8) per face, against 4 x 32 bytes of float vectors.
    assert info["memory_bytes"] < 12000 * 32 * 4 * 0.25
    queries = _unit(vectors[:100] + 0.05 * np.random.default_rng(3).normal(size=(100, 32)))
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = np.stack([index.search(q, k=10)["row"].to_numpy() for q in queries])
    assert recall_at_k(found, truth) >= 0.9
    # Re-ranked similarities are the exact cosines, not PQ estimates.
    first = index.search(queries[0], k=3)
    np.testing.assert_allclose(first["similarity"], vectors[first["row"]] @ queries[0], atol=1e-5)
    loaded = load_index(save_index(index, tmp_path / "pq"))
    assert isinstance(loaded.index.vectors, np.memmap)
    assert loaded.search(queries[0], k=10)["row"].tolist() == index.search(queries[0], k=10)["row"].tolist()
    np.testing.assert_allclose(loaded.vector(5), vectors[5], atol=1e-6)


def test_auto_kind_follows_size_and_memory_budget():
    from deepfever.applications.search import choose_kind

    assert choose_kind(1000, 128) == "exact"
    assert choose_kind(500_000, 128) == "ivf"
    assert choose_kind(10_000_000, 128) == "ivfpq"
    assert choose_kind(500_000, 128, memory_budget=100 * 2**20) == "ivfpq"  # 244 MiB of vectors > 100 MiB
    vectors = _clustered(3000)
    assert build_index(_table(vectors), memory_budget=100_000).info["kind"] == "ivfpq"
    with pytest.raises(ValueError, match="memory_budget must be a positive"):
        build_index(_table(vectors), memory_budget=0)


def test_index_folder_round_trip_and_fingerprint_refusal(tmp_path):
    vectors = _clustered(300)
    index = build_index(_table(vectors), model="some/model.safetensors")
    folder = save_index(index, tmp_path / "idx")
    loaded = load_index(folder)
    assert loaded.info["fingerprint"] == FINGERPRINT and len(loaded) == 300
    np.testing.assert_allclose(loaded.vector(7), vectors[7], atol=1e-6)
    loaded.check_fingerprint(dict(FINGERPRINT))
    with pytest.raises(IndexMismatchError, match="differs in model_id.*--model some/model.safetensors"):
        loaded.check_fingerprint({**FINGERPRINT, "model_id": "other@111111111111"})
    with pytest.raises(FileExistsError, match="overwrite=True"):  # Python callers read arguments; the CLI, flags
        save_index(index, folder)
    save_index(build_index(_table(vectors[:10])), folder, overwrite=True)
    assert len(load_index(folder)) == 10
    (tmp_path / "precious").mkdir()
    with pytest.raises(FileExistsError, match="not a deepfever index folder"):
        save_index(index, tmp_path / "precious", overwrite=True)
    with pytest.raises(ValueError, match="mixes 2 values of model_id"):
        build_index(_table(vectors[:2], model_id=["a", "b"]))


def test_search_filters_same_image_track_and_score(tmp_path):
    base = _unit(np.ones((1, 8)))[0]
    rng = np.random.default_rng(0)
    vectors = _unit(base + 0.01 * rng.normal(size=(6, 8)))
    table = _table(vectors, path=["a.png", "a.png", "v.mp4", "v.mp4", "v.mp4", "b.png"], frame=[0, 0, 1, 2, 3, 0],
                   track=[np.nan, np.nan, 1, 1, 2, np.nan], score=[1, 1, 1, 1, 1, 0.2])
    index = build_index(table)
    every = set(index.search(base, k=6)["row"])
    assert every == set(range(6))
    assert set(index.search(base, k=6, exclude_row=2)["row"]) == {0, 1, 4, 5}  # frame 1 and its track go
    assert set(index.search(base, k=6, exclude_row=0)["row"]) == {2, 3, 4, 5}  # both faces of a.png go
    assert set(index.search(base, k=6, min_score=0.5)["row"]) == {0, 1, 2, 3, 4}
    (tmp_path / "a.png").touch()
    assert set(index.search(base, k=6, exclude_path=tmp_path / "a.png")["row"]) == every  # a different a.png
    assert set(index.search(base, k=6, exclude_path="a.png")["row"]) == {2, 3, 4, 5}


def test_map_png_and_html(tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo)
    table = _table(_clustered(40, clusters=4))
    table["path"] = [str(photo)] * 30 + ["gone.png"] * 10
    table[["box_x1", "box_y1", "box_x2", "box_y2"]] = [10.0, 5.0, 40.0, 45.0]
    table["emotion"] = ["happy", "sad", "neutral", "<b>"] * 10
    summary = plot_map(table, tmp_path / "map.png", html_output=tmp_path / "map.html", method="pca", max_thumbnails=40)
    assert summary["thumbnails"] == 30 and summary["missing_sources"] == 1 and summary["method"] == "pca"
    assert Image.open(tmp_path / "map.png").size[0] > 500
    page = (tmp_path / "map.html").read_text()
    assert page.count("<circle") == 40 and "gone.png" in page and "data:image/jpeg;base64," in page
    assert "<b>" not in page.split("<script>")[0] and "http" not in page.lower().replace("http-equiv", "")
    with pytest.raises(FileExistsError):
        plot_map(table, tmp_path / "map.png", method="pca")
    with pytest.raises(ValueError, match="no column 'mood'"):
        plot_map(table, tmp_path / "other.png", color_by="mood")


def test_identity_map_separates_encoded_from_absent_identity():
    rng = np.random.default_rng(0)
    people, expressions = np.repeat(np.arange(10), 12), np.tile(np.arange(4), 30)
    person_code, expression_code = rng.normal(size=(10, 24)), rng.normal(size=(4, 24))
    noise = 0.5 * rng.normal(size=(120, 24))
    leaky = identity_leakage(person_code[people] + expression_code[expressions] + noise, people, expressions, folds=3)
    clean = identity_leakage(expression_code[expressions] + noise, people, expressions, folds=3)
    chance = leaky["identity"]["retrieval"]["chance"]
    assert leaky["identity"]["retrieval"]["map"] > 4 * chance and leaky["identity"]["probe"]["accuracy"] > 0.8
    assert clean["identity"]["retrieval"]["map"] < chance + 0.05 and clean["identity"]["probe"]["accuracy"] < 0.3
    assert clean["expression"]["retrieval"]["map"] > 0.9 and clean["expression"]["probe"]["accuracy"] > 0.9
    # a perfect ranking has mAP 1; a hand count: "y" has no other "y" (skipped), each "x" finds the
    # other two x at ranks (2, 3), (2, 3) and (1, 3)
    assert retrieval_map(np.eye(3)[[0, 0, 1, 1]], [0, 0, 1, 1])["map"] == 1.0
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3]], np.float32)
    assert retrieval_map(vectors, ["x", "y", "x", "x"])["map"] == pytest.approx(
        np.mean([(1 / 2 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2, (1 + 2 / 3) / 2]))


def test_attach_identities_matches_paths_and_names(tmp_path):
    table = _table(_clustered(3), path=[str(tmp_path / "x" / "a.png"), "b.png", "c.png"])
    (tmp_path / "ids.csv").write_text("path,identity,label\na.png,p1,happy\nb.png,p2,sad\n")
    joined = attach_identities(table, tmp_path / "ids.csv")
    assert joined["identity"].tolist() == ["p1", "p2"] and joined["label"].tolist() == ["happy", "sad"]
    (tmp_path / "bad.csv").write_text("file,who\na.png,p1\n")
    with pytest.raises(ValueError, match="missing identity, path"):
        attach_identities(table, tmp_path / "bad.csv")


def test_group_photo_faces_get_their_own_identities(tmp_path, caplog):
    """Issue 9.12: matching by path alone gave every face of a group photo the same person."""
    table = _table(_clustered(3), path=["group.png", "group.png", "solo.png"]).assign(face=[0, 1, 0])
    (tmp_path / "faces.csv").write_text("path,face,identity\ngroup.png,1,ann\ngroup.png,0,bob\nsolo.png,0,ann\n")
    joined = attach_identities(table, tmp_path / "faces.csv")
    assert joined[["path", "face", "identity"]].values.tolist() == [["group.png", 0, "bob"], ["group.png", 1, "ann"], ["solo.png", 0, "ann"]]
    (tmp_path / "paths.csv").write_text("path,identity\ngroup.png,bob\nsolo.png,ann\n")
    joined = attach_identities(table, tmp_path / "paths.csv")
    assert joined["path"].tolist() == ["solo.png"] and "add a face column" in caplog.text


@pytest.fixture
def face_images(tmp_path):
    folder = tmp_path / "faces"
    write_random_crops(folder, 8, "f")
    return folder


def test_commands_end_to_end(model_files, face_images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    model, other_model = (str(path) for path in model_files)
    common = ["--model", model, "--detector", "none", "--device", "cpu"]
    table, index = tmp_path / "faces.parquet", tmp_path / "idx"
    a, b, c = (str(face_images / f"f{i}.png") for i in range(3))

    assert main(["extract", str(face_images), "-o", str(table), *common]) == 0
    assert main(["index", "build", str(table), "-o", str(index)]) == 0
    assert main(["search", str(index), a, "-k", "3", "--grid", str(tmp_path / "grid.png"), "-o", str(tmp_path / "r.csv"), *common]) == 0
    results = pd.read_csv(tmp_path / "r.csv")
    assert len(results) == 3 and not results["path"].eq(a).any() and results["similarity"].is_monotonic_decreasing
    assert Image.open(tmp_path / "grid.png").size[0] > 100
    capsys.readouterr()
    assert main(["search", str(index), a, *common[:2], "--model", str(other_model), "--detector", "none"]) == 2
    assert "differs in model_id" in capsys.readouterr().err

    assert main(["index", "build", str(face_images), "-o", str(tmp_path / "idx2"), *common]) == 0
    assert main(["search", str(tmp_path / "idx2"), "--query-row", "0", "-k", "2", "--detector", "none"]) == 0  # model from the index
    capsys.readouterr()
    assert main(["compare", a, b, "--reference", str(face_images), "--json", *common]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert 0 <= compared["percentile"] <= 100 and compared["cosine_similarity"] < 1
    assert main(["compare", a, a, "--reference", str(face_images), "--json", *common]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["cosine_similarity"] == pytest.approx(1.0, abs=1e-5) and "8 faces from 8 images" in same["reference"]
    assert list((tmp_path / "cache" / "reference").glob("*.npz"))
    assert main(["compare", a, b, "--face", "0", "3", *common]) == 2
    assert "face 3 was asked for but the image has 1 face(s)" in capsys.readouterr().err
    assert main(["odd-one-out", a, a, c, "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["odd_one_out"] == 2
    assert main(["odd-one-out", a, a, c, *common]) == 0
    assert "about 0.33 means no clear odd one" in capsys.readouterr().out  # the output says what its confidence means

    ids = tmp_path / "ids.csv"
    pd.DataFrame({"path": read_table(table)["path"], "identity": ["p1", "p2"] * 4, "label": ["x"] * 4 + ["y"] * 4}).to_csv(ids, index=False)
    assert main(["identity-check", str(table), "--identities", str(ids), "--label-column", "label", "--folds", "2",
                 "-o", str(tmp_path / "identity.json")]) == 0
    assert json.loads((tmp_path / "identity.json").read_text())["identities"] == 2
    assert main(["plot", "map", str(table), "-o", str(tmp_path / "map.png"), "--html", str(tmp_path / "map.html"), "--method", "pca"]) == 0
    assert (tmp_path / "map.html").is_file()
    assert main(["plot", "map", str(table), "-o", str(tmp_path / "map.png")]) == 2  # no silent overwrite


def test_index_build_memory_budget_from_the_command_line(tmp_path, capsys):
    from deepfever.io.tables import write_table

    table = tmp_path / "many.parquet"
    write_table(_table(_clustered(3000)), table)
    assert main(["index", "build", str(table), "-o", str(tmp_path / "idx"), "--memory-budget", "100KB"]) == 0
    assert "ivfpq index" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "idx"), "--query-row", "3", "-k", "4"]) == 0
    with pytest.raises(SystemExit):
        main(["index", "build", str(table), "-o", str(tmp_path / "idx2"), "--memory-budget", "lots"])
    assert "expected a positive size such as 2GB" in capsys.readouterr().err


def test_slow_projections_say_what_runs_before_and_how_long_it_took(caplog):
    vectors = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with caplog.at_level("INFO", logger="deepfever.applications.maps"):
        coordinates, method = project_2d(vectors, "tsne")
    assert coordinates.shape == (40, 2) and method == "tsne"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("projecting 40 vectors to 2-D with tsne") and messages[-1].startswith("projected 40 vectors with tsne in ")
