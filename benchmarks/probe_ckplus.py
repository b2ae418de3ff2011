"""CK+48 linear probe of frozen vectors: 10 folds by subject, learning curve at 1/5/10/20/all per class.

The paper's generalisation test: the model never saw CK+, only a logistic regression on its vectors
does. Targets: >= 95 % accuracy with all examples (issue 2), >= 97 % (issue 3, recipe model);
>= 85 % with 10 examples per class.
Run: .venv/bin/python benchmarks/probe_ckplus.py [--model NAME_OR_PATH] [--detectors none mtcnn]
"""
from __future__ import annotations

import argparse
import time

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.evaluation._probe_data import embed_labelled, load_labelled
from deepfever.evaluation.probe import evaluate_probe
from deepfever.models import DEFAULT_MODEL

TARGETS = {"accuracy": 0.95, "accuracy_recipe": 0.97, "accuracy_at_10_per_class": 0.85}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="packaged model name or .safetensors path")
    parser.add_argument("--root", default=str(SHARED / "data" / "ckplus48"))
    parser.add_argument("--detectors", nargs="+", default=["none", "mtcnn"], choices=("none", "mtcnn", "yunet"))
    parser.add_argument("--classifier", default="logistic", choices=("logistic", "mlp"))
    parser.add_argument("--repeats", type=int, default=5, help="draws per learning-curve point")
    args = parser.parse_args()
    data = load_labelled(args.root, "ckplus48")
    extractor = Extractor(model=args.model, device="cpu").load()
    result = {"model": str(args.model), "fingerprint": extractor.fingerprint_, "data": data.description,
              "classifier": args.classifier, "targets": TARGETS}
    for detector in args.detectors:
        started = time.perf_counter()
        vectors = embed_labelled(extractor, data, detector)
        seconds = time.perf_counter() - started
        report = evaluate_probe(vectors.features, vectors.labels, vectors.class_names, vectors.subjects,
                                args.classifier, n_splits=10, repeats=args.repeats)
        curve = {str(p["per_class"]): {"mean": p["accuracy"]["mean"], "std": p["accuracy"]["std"]} for p in report["learning_curve"]["points"]}
        result[f"detector_{detector}"] = {
            "embedded": len(vectors.labels), "failures": len(vectors.failures), "embed_seconds": round(seconds, 1),
            "accuracy": {k: report["accuracy"][k] for k in ("mean", "std")},
            "macro_f1": {k: report["macro_f1"][k] for k in ("mean", "std")},
            "per_class_recall": {name: s["recall"] for name, s in report["pooled"]["per_class"].items()},
            "learning_curve": curve,
            "meets_targets": {"accuracy": report["accuracy"]["mean"] >= TARGETS["accuracy"],
                              "accuracy_recipe": report["accuracy"]["mean"] >= TARGETS["accuracy_recipe"],
                              "accuracy_at_10_per_class": curve["10"]["mean"] >= TARGETS["accuracy_at_10_per_class"]},
        }
        print(f"detector {detector}: {len(vectors.labels)} faces ({len(vectors.failures)} failures), accuracy "
              f"{report['accuracy']['mean']:.4f} ± {report['accuracy']['std']:.4f}, macro-F1 {report['macro_f1']['mean']:.4f}, "
              f"10 per class {curve['10']['mean']:.4f}")
    save_result(result_name("probe_ckplus", args.model), result)


if __name__ == "__main__":
    main()
