"""FER+ FER2013Valid majority-label accuracy over the 8 emotions (the test split is not shared).

Target (issue 2): >= 84 %. Run: .venv/bin/python benchmarks/ferplus_accuracy.py [--model NAME]
"""
from __future__ import annotations

import argparse

from _common import SHARED, result_name, save_result
from deepfever.evaluation.ferplus import evaluate_ferplus
from deepfever.models import DEFAULT_MODEL, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--root", default=str(SHARED / "data" / "ferplus"))
    args = parser.parse_args()
    model = load_model(args.model)
    result = {"model": args.model}
    for flip in (False, True):
        summary = evaluate_ferplus(model, args.root, "valid", flip_tta=flip)
        key = "flip_tta" if flip else "single_crop"
        result[key] = {"n": summary["n"], "accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"],
                       "per_class_recall": {k: v["recall"] for k, v in summary["per_class"].items()}}
    save_result(result_name("ferplus_accuracy", args.model), result)


if __name__ == "__main__":
    main()
