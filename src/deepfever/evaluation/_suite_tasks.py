"""The tasks a benchmark suite runs, and how an entry's crops are loaded; used by ``deepfever.evaluation.suite``."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
import pandas as pd

from deepfever.labels import EMOTIONS, EMOTIONS_7
from deepfever.evaluation.metrics import classification_summary
from deepfever.models.predict import predict_arrays

if TYPE_CHECKING:
    from deepfever.evaluation.suite import Suite, SuiteEntry
    from deepfever.models.expression import ExpressionModel

TEMPLATE_TOLERANCE = 0.02
"""Largest landmark offset (share of the crop side) between a cache's template and the model's before warning."""


def concordance(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (population moments), the AffectNet valence/arousal metric."""
    truth, predicted = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
    covariance = ((truth - truth.mean()) * (predicted - predicted.mean())).mean()
    denominator = truth.var() + predicted.var() + (truth.mean() - predicted.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else float("nan")


def _template_offset(manifest_template: dict[str, Any], model_template: dict[str, Any] | None) -> float | None:
    """Largest landmark difference between two templates, as a share of the crop side (scale-free)."""
    if model_template is None:
        return None
    points = [(np.asarray(t["landmarks"], np.float64) + 0.5) / t["size"] for t in (manifest_template, model_template)]
    return float(np.abs(points[0] - points[1]).max())


def load_entry(entry: SuiteEntry, model: ExpressionModel, own_classes: bool = False) -> tuple[np.ndarray, pd.DataFrame, list[str], list[str]]:
    """Crops at the model's input size, their labels table, class names, and notes for the report.

    ``own_classes`` keeps a class folder's own names (for probes); otherwise labels are ``EMOTIONS``.
    """
    size = model.config.input_size
    notes: list[str] = []
    if entry.prepared is not None:
        from deepfever.data.prepare import load_prepared

        crops, frame = load_prepared(entry.prepared)
        manifest = frame.attrs["manifest"]
        class_names = list(manifest["options"].get("class_names") or EMOTIONS)
        offset = _template_offset(manifest["template"], model.config.template)
        if offset is not None and offset > TEMPLATE_TOLERANCE:
            notes.append(f"cache template differs from the model's by {offset:.1%} of the crop side; crops are framed differently")
        if entry.split is not None:
            chosen = (frame["split"] == entry.split).to_numpy()
            crops, frame = crops[chosen], frame[chosen].reset_index(drop=True)
        crops = np.asarray(crops)
        if crops.shape[1] != size:
            notes.append(f"cache crops are {crops.shape[1]} px, resized to the model's {size} px")
            crops = np.stack([cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) for crop in crops]) if len(crops) else crops
        return crops, frame, class_names, notes
    from deepfever.data.arrays import load_crop_array
    from deepfever.data.formats import read_dataset
    from deepfever.data.formats.generic import folder_class_names

    options = dict(entry.options)
    if own_classes and entry.format == "folder" and "class_names" not in options:
        options["class_names"] = folder_class_names(entry.root)
    splits = read_dataset(entry.format, entry.root, **options)
    if entry.split is not None and entry.split not in splits:
        raise ValueError(f"{entry.name}: split {entry.split!r} not in {entry.root}; splits: {', '.join(splits)}")
    samples = [s for name, split in splits.items() if entry.split in (None, name) for s in split.samples]
    frame = pd.DataFrame({
        "path": [s.path or "" for s in samples], "label": [s.label for s in samples],
        "valence": [s.valence for s in samples], "arousal": [s.arousal for s in samples], "subject": [s.subject for s in samples],
    })
    return load_crop_array(samples, size), frame, list(options.get("class_names") or EMOTIONS), notes


def predict(model: ExpressionModel, crops: np.ndarray, suite: Suite, device: str) -> dict[str, np.ndarray]:
    """``predict_arrays`` on grey or RGB crops (``crops_to_tensor`` converts them to the model's channels)."""
    return predict_arrays(model, crops, suite.batch_size, suite.flip_tta, device)


def emotion_task(model: ExpressionModel, entry: SuiteEntry, suite: Suite, device: str) -> dict[str, Any]:
    crops, frame, _, notes = load_entry(entry, model)
    labels = frame["label"].to_numpy()
    outputs = predict(model, crops, suite, device)
    class_names = list(model.config.class_names)
    classification, metrics = {}, {}
    for protocol, names in (("8-class", EMOTIONS), ("7-class", EMOTIONS_7)):
        if not set(names) <= set(class_names):
            notes.append(f"{protocol}: the model lacks classes {sorted(set(names) - set(class_names))}")
            continue
        keep = (labels >= 0) & (labels < len(names))  # EMOTIONS_7 is EMOTIONS without its last class
        if not keep.any():
            continue
        columns = [class_names.index(name) for name in names]
        summary = classification_summary(labels[keep], outputs["probabilities"][keep][:, columns].argmax(1), names)
        classification[protocol] = summary
        metrics[f"accuracy_{protocol[0]}"] = summary["accuracy"]
        metrics[f"macro_f1_{protocol[0]}"] = summary["macro_f1"]
    dimensions = frame[["valence", "arousal"]].to_numpy(np.float64)
    rated = np.isfinite(dimensions).all(axis=1)
    if "valence_arousal" in model.config.trained_heads and rated.any():
        for column, name in enumerate(("valence", "arousal")):
            truth, predicted = dimensions[rated, column], outputs["valence_arousal"][rated, column]
            metrics[f"{name}_ccc"] = concordance(truth, predicted)
            metrics[f"{name}_rmse"] = float(np.sqrt(np.mean((truth - predicted) ** 2)))
        metrics["valence_arousal_n"] = int(rated.sum())
    elif rated.any():
        notes.append("valence/arousal not scored: the model has no trained valence_arousal head")
    if not classification and "valence_ccc" not in metrics:
        raise ValueError(f"{entry.name}: no sample has a label the model can score ({len(frame)} samples)")
    headline = next((key for key in ("accuracy_8", "accuracy_7", "valence_ccc") if key in metrics))
    return {"headline": {"metric": headline, "value": metrics[headline]}, "metrics": metrics, "n": int(len(frame)),
            "classification": classification, "notes": notes}


def ferplus_task(model: ExpressionModel, entry: SuiteEntry, suite: Suite, device: str) -> dict[str, Any]:
    from deepfever.evaluation.ferplus import evaluate_ferplus

    summary = evaluate_ferplus(model, entry.root, entry.split or "valid", flip_tta=suite.flip_tta, device=device)
    return {"headline": {"metric": "accuracy", "value": summary["accuracy"]}, "n": summary["n"],
            "metrics": {"accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"]},
            "classification": {"8-class": summary}, "notes": [f"split {summary['split']}"]}


FEC_TYPE_CODES = {"ONE_CLASS_TRIPLET": 1, "TWO_CLASS_TRIPLET": 2, "THREE_CLASS_TRIPLET": 3}


def fec_task(model: ExpressionModel, entry: SuiteEntry, suite: Suite, device: str) -> dict[str, Any]:
    from deepfever.data.formats.fec import fec_face_stem, read_fec_triplets
    from deepfever.data.triplets import TripletSet
    from deepfever.evaluation.triplets import triplet_accuracy

    split = entry.split or "test"
    triplets = read_fec_triplets(entry.root, split)
    crops, frame, _, notes = load_entry(entry if entry.prepared is not None else replace(entry, format="fec", split=split), model)
    row_of = {Path(path).stem: row for row, path in enumerate(frame["path"])}
    indices, types, dropped = [], [], {"no majority odd one out": 0, "face image not available": 0}
    for triplet in triplets:
        odd = triplet.majority_odd_one_out
        rows = [row_of.get(fec_face_stem(face)) for face in triplet.faces]
        if odd is None:
            dropped["no majority odd one out"] += 1
        elif None in rows:
            dropped["face image not available"] += 1
        else:
            indices.append([rows[i] for i in range(3) if i != odd - 1] + [rows[odd - 1]])  # odd one out last
            types.append(FEC_TYPE_CODES[triplet.triplet_type])
    if not indices:
        raise ValueError(f"{entry.name}: none of {len(triplets)} FEC {split} triplets is usable ({dropped})")
    embeddings = predict(model, crops, suite, device)["embedding"]
    result = triplet_accuracy(embeddings, TripletSet(np.array(indices, np.int64), np.array(types, np.int8)))
    metrics = {"accuracy": result["accuracy"], **{f"{name}_accuracy": value["accuracy"] for name, value in result["per_type"].items()}}
    return {"headline": {"metric": "triplet_accuracy", "value": result["accuracy"]}, "n": result["n"], "metrics": metrics,
            "per_type": result["per_type"], "dropped": dropped, "notes": notes}


def probe_task(model: ExpressionModel, entry: SuiteEntry, suite: Suite, device: str) -> dict[str, Any]:
    from deepfever.evaluation.probe import evaluate_probe

    crops, frame, class_names, notes = load_entry(entry, model, own_classes=True)
    labelled = (frame["label"] >= 0).to_numpy()
    present = sorted(set(frame["label"][labelled]))
    labels = frame["label"][labelled].map({label: i for i, label in enumerate(present)}).to_numpy()
    subjects = frame["subject"][labelled]
    grouped = subjects.notna().all()
    if not grouped:
        notes.append("folds are stratified by class, not by subject: the data does not name every person")
    features = predict(model, crops[labelled], suite, device)["embedding"]
    report = evaluate_probe(features, labels, [class_names[label] for label in present],
                            subjects.tolist() if grouped else None, n_splits=entry.folds, shots=(), seed=suite.seed)
    report.pop("predicted")
    return {"headline": {"metric": "probe_accuracy", "value": report["accuracy"]["mean"]}, "n": int(labelled.sum()),
            "metrics": {"accuracy": report["accuracy"]["mean"], "accuracy_std": report["accuracy"]["std"],
                        "macro_f1": report["macro_f1"]["mean"]},
            "classification": {"pooled": report["pooled"]}, "protocol": report["protocol"], "notes": notes}


def zero_shot_task(model: ExpressionModel, entry: SuiteEntry, suite: Suite, device: str) -> dict[str, Any]:
    from deepfever.evaluation.transfer import zero_shot_summary

    crops, frame, _, notes = load_entry(entry, model)
    labels = frame["label"].to_numpy()
    class_names = list(model.config.class_names)
    evaluated = entry.classes or tuple(class_names[label] for label in sorted(set(labels[labels >= 0])))
    outputs = predict(model, crops, suite, device)
    summary = zero_shot_summary(outputs["probabilities"], labels, class_names, evaluated)
    notes.append(f"argmax over all {len(class_names)} outputs, {model.config.output_prior} prior, classes {', '.join(evaluated)}")
    return {"headline": {"metric": "zero_shot_accuracy", "value": summary["accuracy"]}, "n": summary["n"],
            "metrics": {"accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"],
                        **{f"recall_{name}": value for name, value in summary["per_class_recall"].items()}},
            "classification": {"zero-shot": summary}, "notes": notes}


TASK_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "emotion": emotion_task, "ferplus": ferplus_task, "fec": fec_task, "probe": probe_task, "zero_shot": zero_shot_task,
}
