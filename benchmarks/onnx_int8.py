"""ONNX Runtime backends against torch, in one run so the ratios are fair: throughput at batch 64,
fp32 parity, int8 closeness, and the accuracy change of the int8 export.

int8 is calibrated on the first 512 FER2013Train crops (never on an evaluation split). Accuracy:
FER2013Valid majority-label accuracy (single crop and flip TTA), FER2013Valid vote triplets
(10,000, seed 0) and CK+48 zero-shot (the 6 classes FER+ shares: anger, disgust, fear, happy,
sadness, surprise = 927 frames; argmax over all 8 outputs; crops used as they are).
Targets (issue 10): fp32 max |ONNX - torch| <= 1e-4; int8 >= 2x torch faces/s, mean cosine >= 0.995,
accuracy change < 0.5 points.
Run: .venv/bin/python benchmarks/onnx_int8.py [--model NAME] [--seconds 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.data.arrays import load_crop_array
from deepfever.data.formats import read_dataset
from deepfever.data.splits import load_split
from deepfever.evaluation.transfer import CKPLUS_SHARED_CLASSES, zero_shot_summary
from deepfever.evaluation.triplets import ferplus_vote_triplets, triplet_accuracy
from deepfever.models import DEFAULT_MODEL
from deepfever.models.onnx_export import export_onnx
from deepfever.models.onnx_runtime import OnnxModel

Predict = Callable[[np.ndarray, bool], dict[str, np.ndarray]]


def throughput(predictors: dict[str, Predict], crops: np.ndarray, seconds: float, rounds: int) -> dict[str, float]:
    """Faces/s of each predictor, interleaved over ``rounds`` so machine load hits all alike; best round counts."""
    best = dict.fromkeys(predictors, 0.0)
    for predict in predictors.values():
        predict(crops, False)  # warm-up
    for _ in range(rounds):
        for name, predict in predictors.items():
            batches, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                predict(crops, False)
                batches += 1
            best[name] = max(best[name], batches * len(crops) / (time.perf_counter() - started))
    return {name: round(value, 1) for name, value in best.items()}


def accuracy(predict: Predict, class_names: list[str], ferplus: tuple, triplets: tuple, ckplus: Any) -> dict[str, float]:
    crops, truth = ferplus
    result = {}
    for flip in (False, True):
        predicted = predict(crops, flip)["probabilities"].argmax(1)
        result["ferplus_valid_flip_tta" if flip else "ferplus_valid_single"] = round(100 * float((predicted == truth).mean()), 2)
    triplet_crops, triplet_set = triplets
    result["vote_triplets"] = round(100 * triplet_accuracy(predict(triplet_crops, False)["embedding"], triplet_set)["accuracy"], 2)
    probabilities = predict(ckplus.images, False)["probabilities"]
    result["ckplus_zero_shot"] = round(100 * zero_shot_summary(probabilities, ckplus.labels, class_names, CKPLUS_SHARED_CLASSES)["accuracy"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per backend per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration-count", type=int, default=512)
    args = parser.parse_args()
    extractor = Extractor(model=args.model, device="cpu", backend="torch").load()
    config = extractor.model_.config
    ferplus_root = SHARED / "data" / "ferplus"
    train = sorted((ferplus_root / "FER2013Train").glob("*.png"))[:args.calibration_count]
    calibration = np.stack([np.asarray(Image.open(path).convert("L" if config.in_chans == 1 else "RGB")) for path in train])
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        fp32 = OnnxModel(export_onnx(extractor.model_, extractor.fingerprint_, Path(scratch) / "fp32.onnx"))
        fp32_seconds = time.perf_counter() - started
        started = time.perf_counter()
        int8 = OnnxModel(export_onnx(extractor.model_, extractor.fingerprint_, Path(scratch) / "int8.onnx", calibration=calibration))
        int8_seconds = time.perf_counter() - started
        int8_bytes = (Path(scratch) / "int8.onnx").stat().st_size

    def torch_predict(crops: np.ndarray, flip: bool) -> dict[str, np.ndarray]:
        extractor.flip_tta = flip
        return extractor.predict(crops)

    predictors: dict[str, Predict] = {
        "torch": torch_predict,
        "onnxruntime_fp32": lambda crops, flip: fp32.predict_arrays(crops, 256, flip),
        "onnxruntime_int8": lambda crops, flip: int8.predict_arrays(crops, 256, flip),
    }
    dataset = read_dataset("ferplus", str(ferplus_root), splits=("valid",))["valid"]
    ferplus = (load_crop_array(dataset.samples, config.input_size, config.in_chans), np.array([s.label for s in dataset.samples]))
    samples, triplet_set = ferplus_vote_triplets(str(ferplus_root), "valid", 10_000, 0, 0.2)
    triplets = (load_crop_array(samples, config.input_size, config.in_chans), triplet_set)
    ckplus = load_split("ckplus48", str(SHARED / "data" / "ckplus48"), {}, "all", "none", "", config.input_size, config.in_chans)

    reference = torch_predict(ferplus[0], False)
    closeness = {}
    for name in ("onnxruntime_fp32", "onnxruntime_int8"):
        got = predictors[name](ferplus[0], False)
        closeness[name] = {
            "max_abs_embedding": float(np.abs(got["embedding"] - reference["embedding"]).max()),
            "max_abs_probabilities": float(np.abs(got["probabilities"] - reference["probabilities"]).max()),
            "mean_cosine": round(float((got["embedding"] * reference["embedding"]).sum(1).mean()), 6),
            "min_cosine": round(float((got["embedding"] * reference["embedding"]).sum(1).min()), 6),
            "argmax_agreement": round(float((got["probabilities"].argmax(1) == reference["probabilities"].argmax(1)).mean()), 4),
        }
    batch = ferplus[0][:64]
    speed = throughput(predictors, batch, args.seconds, args.rounds)
    scores = {name: accuracy(predictors[name], list(config.class_names), ferplus, triplets, ckplus)
              for name in ("torch", "onnxruntime_int8")}
    change = {key: round(scores["onnxruntime_int8"][key] - scores["torch"][key], 2) for key in scores["torch"]}
    save_result(result_name("onnx_int8", args.model), {
        "model": extractor.fingerprint_["model_id"], "batch_size": 64, "faces_per_second": speed,
        "int8_speedup_vs_torch": round(speed["onnxruntime_int8"] / speed["torch"], 2),
        "fp32_speedup_vs_torch": round(speed["onnxruntime_fp32"] / speed["torch"], 2),
        "closeness_on_ferplus_valid": closeness, "accuracy_percent": scores, "int8_change_points": change,
        "export_seconds": {"fp32": round(fp32_seconds, 1), "int8": round(int8_seconds, 1)}, "int8_file_bytes": int8_bytes,
        "calibration": f"first {len(calibration)} FER2013Train crops",
    })


if __name__ == "__main__":
    main()
