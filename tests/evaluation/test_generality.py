"""Issue 8: training sees faces as extraction does, balanced classes, domain augmentation, honest selection."""
import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import write_ferplus_fixture
from deepfever.config import load_config
from deepfever.data.sampling import MixingSampler
from deepfever.data.arrays import load_crop_array
from deepfever.data.formats import Sample
from deepfever.labels import EMOTIONS
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.transfer import CKPLUS_SHARED_CLASSES, zero_shot_summary
from deepfever.models import ModelConfig, load_model
from deepfever.models.prior import prior_offset
from deepfever.training.augment import AugmentConfig, augment_batch
from deepfever.training.config import TrainConfig
from deepfever.training.data import class_balanced_weights, class_prior
from deepfever.training.loop import train
from deepfever.training.task import _offset_to

BASE = ["epochs=2", "batch_size=16", "optim.lr=0.05", "optim.warmup_epochs=0", "eval_flip_tta=false", "num_threads=1"]


@pytest.fixture(scope="module")
def ferplus_root(tmp_path_factory):
    return write_ferplus_fixture(tmp_path_factory.mktemp("ferplus"), per_split=64)


def _config(root, output, extra=()):
    return load_config(TrainConfig, None, [f"data.root={root}", f"output_dir={output}", *BASE, *extra])


# -- augmentation ---------------------------------------------------------------------------------
DOMAIN = dict(perspective=0.1, downscale_probability=1.0, blur_probability=1.0, noise_probability=1.0,
              jpeg_probability=1.0, gamma_probability=1.0, equalize_probability=1.0)
PLAIN = dict(rotate_degrees=0, scale=0, translate=0, flip=False, brightness=0, contrast=0, erase_probability=0)


def _faces(count=8, seed=0):
    rng = np.random.default_rng(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((count, 1, 48, 48), np.float32)), 5, 1, 2)
    return (smooth - smooth.amin()) / (smooth.amax() - smooth.amin())


def test_domain_augmentations_are_reproducible_and_stay_in_range():
    images = _faces()
    config = AugmentConfig(**DOMAIN)
    first = augment_batch(images, config, torch.Generator().manual_seed(3))
    second = augment_batch(images, config, torch.Generator().manual_seed(3))
    other = augment_batch(images, config, torch.Generator().manual_seed(4))
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert first.shape == images.shape and torch.isfinite(first).all() and first.min() >= 0 and first.max() <= 1


@pytest.mark.parametrize("name", ["downscale_probability", "blur_probability", "noise_probability", "jpeg_probability",
                                  "gamma_probability", "equalize_probability"])
def test_each_domain_transform_changes_images_only_when_switched_on(name):
    images = _faces()
    off = augment_batch(images, AugmentConfig(**PLAIN), torch.Generator().manual_seed(0))
    on = augment_batch(images, AugmentConfig(**PLAIN, **{name: 1.0}), torch.Generator().manual_seed(0))
    assert torch.allclose(off, images, atol=1e-5)  # the plain config is the identity
    assert (on - images).abs().mean() > 1e-3


def test_jpeg_artefacts_grow_as_quality_falls():
    images = _faces()
    errors = []
    for quality in (90, 10):
        config = AugmentConfig(**PLAIN, jpeg_probability=1.0, jpeg_min_quality=quality)
        errors.append((augment_batch(images, config, torch.Generator().manual_seed(0)) - images).abs().mean())
    assert errors[1] > 2 * errors[0]


def test_equalisation_spreads_a_low_contrast_image_over_the_range():
    dim = 0.4 + 0.1 * _faces(2)
    out = augment_batch(dim, AugmentConfig(**PLAIN, equalize_probability=1.0), torch.Generator().manual_seed(0))
    assert out.amax() - out.amin() > 0.9 and dim.amax() - dim.amin() <= 0.1 + 1e-6


def test_augment_settings_are_validated():
    with pytest.raises(ValueError, match="jpeg_probability"):
        AugmentConfig(jpeg_probability=1.5)


# -- class prior ----------------------------------------------------------------------------------
def test_prior_offsets_move_between_training_and_uniform_priors():
    prior = (0.4, 0.3, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01)
    plain = ModelConfig("fevernet_s", class_prior=prior)
    adjusted = ModelConfig("fevernet_s", class_prior=prior, logit_adjustment=0.5, output_prior="uniform")
    assert prior_offset(plain, "train") is None and prior_offset(adjusted, "uniform") is None
    np.testing.assert_allclose(prior_offset(plain, "uniform"), -np.log(prior), rtol=1e-6)
    np.testing.assert_allclose(prior_offset(adjusted, "train"), 0.5 * np.log(prior), rtol=1e-6)
    with pytest.raises(ValueError, match="does not record"):
        prior_offset(ModelConfig("fevernet_s"), "uniform")
    with pytest.raises(ValueError, match="output_prior"):
        ModelConfig("fevernet_s", output_prior="balanced")


def test_predict_with_the_training_prior_is_bayes_rule_on_uniform_probabilities(tiny_model_file):
    model = load_model(tiny_model_file)
    prior = np.array([0.5, 0.2, 0.1, 0.1, 0.04, 0.03, 0.02, 0.01])
    model.config = ModelConfig(**{**model.config.__dict__, "class_prior": tuple(prior), "logit_adjustment": 1.0,
                                  "output_prior": "uniform"})
    crops = np.random.default_rng(0).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    uniform = predict_arrays(model, crops)["probabilities"]
    trained = predict_arrays(model, crops, prior="train")["probabilities"]
    expected = uniform * prior
    np.testing.assert_allclose(trained, expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


# -- zero-shot protocol ---------------------------------------------------------------------------
def test_zero_shot_takes_the_argmax_over_all_outputs_and_scores_only_shared_classes():
    labels = np.array([EMOTIONS.index(name) for name in ("anger", "anger", "happy", "contempt")])
    probabilities = np.zeros((4, 8))
    probabilities[0, EMOTIONS.index("anger")] = 1
    probabilities[1, EMOTIONS.index("neutral")] = 1  # an output outside the 6 classes is still an answer: wrong
    probabilities[2, EMOTIONS.index("happy")] = 1
    probabilities[3, EMOTIONS.index("contempt")] = 1  # contempt frames are not part of the protocol
    summary = zero_shot_summary(probabilities, labels, EMOTIONS, CKPLUS_SHARED_CLASSES)
    assert summary["n"] == 3 and math.isclose(summary["accuracy"], 2 / 3)
    assert summary["per_class_recall"]["anger"] == 0.5 and summary["per_class_recall"]["happy"] == 1.0
    assert summary["confusion_matrix"][EMOTIONS.index("anger")][EMOTIONS.index("neutral")] == 1


# -- caches ---------------------------------------------------------------------------------------
def test_crop_cache_key_changes_with_file_content_and_inline_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "a.png"
    Image.fromarray(np.full((48, 48), 10, np.uint8)).save(path)
    assert load_crop_array([Sample(path=str(path))], 48)[0, 0, 0] == 10
    Image.fromarray(np.full((48, 64), 200, np.uint8)).save(path)  # same path, new content and size
    assert load_crop_array([Sample(path=str(path))], 48)[0, 0, 0] == 200
    first = [Sample(path=None, pixels=np.full((48, 48), 1, np.uint8))]
    second = [Sample(path=None, pixels=np.full((48, 48), 2, np.uint8))]  # two path-less splits of equal length
    assert load_crop_array(first, 48)[0, 0, 0] == 1 and load_crop_array(second, 48)[0, 0, 0] == 2
    rgb = load_crop_array([Sample(path=str(path))], 32, in_chans=3)
    assert rgb.shape == (1, 32, 32, 3)



def test_an_edited_dataset_gets_a_fresh_prepared_cache_and_the_old_one_is_named(tmp_path, monkeypatch, caplog):
    """Re-copied or edited files change the samples' signature: a new cache, not a refusal (issue 8)."""
    from deepfever.data.splits import load_split

    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "faces"
    folder.mkdir()
    for name, value in (("a", 40), ("b", 120)):
        Image.fromarray(np.full((48, 48), value, np.uint8)).save(folder / f"{name}.png")
    first = load_split("images", str(folder), {}, "all", "yunet", "none", 48, 1)
    assert first.images.shape == (2, 48, 48) and first.images[0].mean() == pytest.approx(40, abs=1)
    Image.fromarray(np.full((48, 48), 200, np.uint8)).save(folder / "a.png")  # same path, new pixels
    with caplog.at_level("INFO", logger="deepfever.data.splits"):
        second = load_split("images", str(folder), {}, "all", "yunet", "none", 48, 1)
    assert second.images[0].mean() == pytest.approx(200, abs=1)
    caches = sorted((tmp_path / "cache" / "prepared").iterdir())
    assert len(caches) == 2 and all(cache.name.startswith("images_yunet48grey_") for cache in caches)
    assert "earlier version of this dataset" in caplog.text
    again = load_split("images", str(folder), {}, "all", "yunet", "none", 48, 1)  # unchanged: reused, nothing new
    assert np.array_equal(again.images, second.images) and len(list((tmp_path / "cache" / "prepared").iterdir())) == 2

# -- class-aware sampling -------------------------------------------------------------------------
def _one_hot(counts):
    return np.repeat(np.eye(8, dtype=np.float32), counts, axis=0)


def test_class_balanced_weights_draw_classes_by_a_power_of_the_prior():
    counts = [64, 16, 4, 1, 0, 0, 0, 0]
    soft = _one_hot(counts)
    prior = np.array(counts) / sum(counts)
    np.testing.assert_allclose(class_prior(soft, np.ones(len(soft))), prior, atol=1e-7)
    np.testing.assert_allclose(class_prior(soft, class_balanced_weights(soft, 1.0)), [0.25] * 4 + [0] * 4, atol=1e-7)
    root = np.sqrt(prior) / np.sqrt(prior).sum()
    np.testing.assert_allclose(class_prior(soft, class_balanced_weights(soft, 0.5)), root, atol=1e-7)
    unlabelled = np.vstack([soft, np.full((2, 8), np.nan, np.float32)])
    weights = class_balanced_weights(unlabelled, 1.0)
    assert np.isfinite(weights).all() and np.allclose(weights[-2:], weights[:-2].mean())


def test_weighted_sampler_follows_its_weights_deterministically_and_resumes_exactly():
    weights = np.array([1.0, 0.0, 3.0, 0.0])
    sampler = MixingSampler([4, 10], [8, 2], seed=3, weights=[weights, None])
    drawn = np.concatenate([next(sampler)[0] for _ in range(500)])
    counts = np.bincount(drawn, minlength=4)
    assert counts[1] == counts[3] == 0 and 2.7 < counts[2] / counts[0] < 3.3
    reference = MixingSampler([4, 10], [8, 2], seed=3, weights=[weights, None])
    batches = [next(reference) for _ in range(12)]
    resumed = MixingSampler([4, 10], [8, 2], seed=3, weights=[weights, None])
    resumed.load_state_dict({"position": 9})
    for want in batches[9:]:
        assert all(np.array_equal(a, b) for a, b in zip(next(resumed), want))
    with pytest.raises(ValueError, match="weights"):
        MixingSampler([4], [2], weights=[np.array([1.0, -1.0, 0.0, 0.0])])


def test_logits_are_moved_from_the_prior_a_model_assumes_to_the_batch_prior():
    data = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01])
    batch = torch.full((8,), 0.125)
    plain = ModelConfig("fevernet_s", class_prior=tuple(data.tolist()))
    adjusted = ModelConfig("fevernet_s", class_prior=tuple(data.tolist()), logit_adjustment=1.0, output_prior="uniform")
    logits = torch.randn(5, 8)
    # Bayes' rule: posteriors under the data prior, re-weighted by batch / data, are posteriors under the batch prior.
    expected = torch.softmax(logits, 1) * batch / data
    expected = expected / expected.sum(1, keepdim=True)
    torch.testing.assert_close(torch.softmax(logits + _offset_to(batch, plain), 1), expected)
    # A logit-adjusted model's raw logits assume uniform classes: it is moved by log(batch prior) alone.
    torch.testing.assert_close(_offset_to(data, adjusted), torch.log(data))
    assert not _offset_to(None, plain).any() and not _offset_to(batch, ModelConfig("fevernet_s")).any()


# -- training -------------------------------------------------------------------------------------
def test_logit_adjusted_run_selects_on_a_holdout_and_reports_valid_once(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    result = train(_config(ferplus_root, output, ["loss.logit_adjust=1.0", "data.select_on=holdout", "data.holdout=0.25"]))
    info = json.loads((output / "model.json").read_text())
    model = info["model"]
    assert model["logit_adjustment"] == 1.0 and model["output_prior"] == "uniform"
    assert math.isclose(sum(model["class_prior"]), 1.0, rel_tol=1e-5) and model["class_prior"][0] > model["class_prior"][7]
    assert "holdout" in info["training"]["selected_on"]
    assert info["metrics"]["ferplus_holdout"]["n"] == 16  # 25 % of 64 training images, all majority-labelled
    reported = info["metrics"]["ferplus_valid_reported"]
    assert reported["n"] == 64 and reported == result["reported"]["ferplus_valid"]
    header = (output / "metrics.csv").read_text().splitlines()[0]
    assert "holdout_accuracy" in header and "valid_accuracy" not in header
    assert "minus 16 held out" in info["training"]["data"]


def test_class_balanced_run_records_the_data_prior_not_the_sampled_one(ferplus_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    adjusted = ["loss.logit_adjust=1.0", "epochs=1"]
    train(_config(ferplus_root, tmp_path / "plain", adjusted))
    with caplog.at_level("INFO", logger="deepfever.training.loop"):
        train(_config(ferplus_root, tmp_path / "balanced", [*adjusted, "data.class_balance=1.0"]))
    plain, balanced = (json.loads((tmp_path / name / "model.json").read_text())["model"] for name in ("plain", "balanced"))
    assert balanced["class_prior"] == plain["class_prior"] and balanced["logit_adjustment"] == 1.0
    assert "class_balance 1.0: batches draw classes" in caplog.text
    assert yaml.safe_load((tmp_path / "balanced" / "config.yaml").read_text())["data"]["class_balance"] == 1.0


def test_selection_on_last_exports_the_last_epoch(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    train(_config(ferplus_root, tmp_path / "run", ["data.select_on=last", "epochs=2"]))
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["training"]["selected_on"].startswith("last epoch (2 of 2)")


def test_training_through_a_prepared_cache_records_the_face_path(ferplus_root, tmp_path, monkeypatch):
    """Detector mtcnn finds no face in the synthetic crops, so every one takes the resize fallback."""
    from deepfever.errors import DeepFeverError
    from deepfever.faces._mtcnn_weights import ensure_weights

    try:
        weights = ensure_weights()  # the user's cache: fetched once, shared with the temporary one below
    except DeepFeverError as error:
        pytest.skip(f"MTCNN weights unavailable here: {error}")
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "mtcnn").symlink_to(weights)
    output = tmp_path / "run"
    train(_config(ferplus_root, output, ["epochs=1", "data.detector=mtcnn", "data.fallback=none", "model.channels=rgb"]))
    info = json.loads((output / "model.json").read_text())
    face_path = info["training"]["face_path"]["ferplus:train"]
    assert face_path["detector"] == "mtcnn" and face_path["channels"] == "rgb" and face_path["fallback_crops"] == face_path["crops"] == 64
    assert info["model"]["in_chans"] == 3 and face_path["template"]["size"] == info["model"]["template"]["size"] == 48
    assert list((tmp_path / "cache" / "prepared").iterdir())[0].name.startswith("ferplus_mtcnn48rgb_")
    # The same run again reuses the cache instead of detecting again.
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache" / "prepared").rglob("crops.npy")}
    train(_config(ferplus_root, tmp_path / "again", ["epochs=1", "data.detector=mtcnn", "data.fallback=none", "model.channels=rgb"]))
    assert before == {path: path.stat().st_mtime_ns for path in (tmp_path / "cache" / "prepared").rglob("crops.npy")}


@pytest.mark.parametrize("override, message", [
    ("epochs=0", "epochs"), ("data.limit_train=-1", "limit_train"), ("optim.lr=.nan", "optim.lr"),
    ("model.embedding_dim=0", "embedding_dim"), ("model.channels=cmyk", "model.channels"), ("data.detector=sonar", "data.detector"),
    ("data.class_balance=1.5", "class_balance"), ("data.class_balance=0.5", "logit_adjust"),
])
def test_bad_training_configs_are_refused_before_any_work(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(TrainConfig, None, [override])


def test_a_run_that_cannot_start_leaves_no_folder_and_resume_refuses_another_config(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    with pytest.raises(Exception):
        train(_config(ferplus_root, output, ["data.format=ferplus", "distill.teacher=/nonexistent.safetensors", "loss.distill_kl=1"]))
    assert not output.exists()
    train(_config(ferplus_root, output), stop_after_epochs=1)
    with pytest.raises(ValueError, match="optim.lr"):
        train(_config(ferplus_root, output, ["optim.lr=0.01"]), resume=True)


def test_extractor_reports_the_prior_asked_for_and_refuses_one_the_model_cannot_give(tiny_model_file, tmp_path):
    from deepfever import Extractor
    from deepfever.models import save_model

    with pytest.raises(ValueError, match="does not record its training class prior"):
        Extractor(model=tiny_model_file, prior="uniform").load()
    model = load_model(tiny_model_file)
    prior = (0.5, 0.2, 0.1, 0.1, 0.04, 0.03, 0.02, 0.01)
    model.config = ModelConfig(**{**model.config.__dict__, "class_prior": prior, "logit_adjustment": 1.0, "output_prior": "uniform"})
    adjusted = save_model(model, tmp_path / "adjusted.safetensors", {"training": {"data": "test"}})
    crops = np.random.default_rng(1).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    uniform = Extractor(model=adjusted).predict(crops)["probabilities"]
    trained = Extractor(model=adjusted, prior="train").predict(crops)["probabilities"]
    expected = uniform * np.array(prior)
    np.testing.assert_allclose(trained, expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_available_priors_lists_the_recorded_one_first_and_uniform_only_with_a_training_prior():
    from deepfever.models.prior import available_priors

    assert available_priors(ModelConfig("fevernet_s")) == ["train"]
    assert available_priors(ModelConfig("fevernet_s", class_prior=(0.125,) * 8, logit_adjustment=1.0, output_prior="uniform")) == ["uniform", "train"]
