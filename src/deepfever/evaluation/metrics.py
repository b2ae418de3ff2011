"""Classification metrics computed from label arrays (no model in sight)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def classification_summary(truth: np.ndarray, predicted: np.ndarray, class_names: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, macro-F1 over classes present in ``truth``, per-class recall/precision/F1, confusion matrix."""
    matrix = confusion_matrix(truth, predicted, len(class_names))
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    correct = np.diag(matrix)
    recall = np.divide(correct, support, out=np.zeros(len(class_names)), where=support > 0)
    precision = np.divide(correct, predicted_count, out=np.zeros(len(class_names)), where=predicted_count > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(class_names)), where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(support.sum()),
        "accuracy": float(correct.sum() / max(1, support.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"support": int(support[i]), "recall": float(recall[i]), "precision": float(precision[i]), "f1": float(f1[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }
