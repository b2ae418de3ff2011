"""CK+48 zero-shot: the emotion head, as trained, on a dataset it never trained on (issue 8).

Protocol: the 927 CK+48 frames of anger, disgust, fear, happy, sadness and surprise; a frame counts
as right when the argmax over all 8 outputs is its class (no single crop mirrored, no recalibration).
Reported per face path (``none``: CK+48's crops resized; ``mtcnn``: detected and aligned like
``Extractor`` does) and per output prior (the model's own, and the other one where recorded),
with per-class recall and the confusion matrix. Target for the default model: >= 80 %.
CK+48 is used for model development here, so it is no longer an unseen dataset.
Run: .venv/bin/python benchmarks/ckplus_zero_shot.py [--model NAME_OR_PATH] [--detectors none mtcnn]
"""
from __future__ import annotations

import argparse

from _common import SHARED, result_name, save_result
from deepfever.evaluation.transfer import ckplus_zero_shot
from deepfever.models import DEFAULT_MODEL, load_model
from deepfever.models.prior import available_priors

TARGET = 0.80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="packaged model name or .safetensors path")
    parser.add_argument("--root", default=str(SHARED / "data" / "ckplus48"))
    parser.add_argument("--detectors", nargs="+", default=["none", "mtcnn"], choices=("none", "mtcnn", "yunet"))
    args = parser.parse_args()
    model = load_model(args.model)
    priors = available_priors(model.config)
    result = {"model": str(args.model), "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "target": TARGET,
              "output_prior": model.config.output_prior, "results": {}}
    for detector in args.detectors:
        for prior in priors:
            summary = ckplus_zero_shot(model, args.root, detector, prior=prior)
            key = f"{detector}/{prior}"
            result["results"][key] = {
                "accuracy": summary["accuracy"], "n": summary["n"], "macro_f1": summary["macro_f1"],
                "per_class_recall": summary["per_class_recall"], "confusion_matrix": summary["confusion_matrix"],
                "class_names": summary["class_names"], "crops": summary["face_path"].get("crops", summary["n"]),
                "meets_target": summary["accuracy"] >= TARGET,
            }
            recall = ", ".join(f"{name} {value:.2f}" for name, value in summary["per_class_recall"].items())
            print(f"{key}: {summary['accuracy']:.4f} on {summary['n']} frames ({recall})")
    save_result(result_name("ckplus_zero_shot", args.model), result)


if __name__ == "__main__":
    main()
