"""FER+ evaluation: majority-label accuracy, macro-F1 and confusion matrix over the 8 emotions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfever.data.arrays import load_crop_array
from deepfever.data.formats import read_dataset
from deepfever.evaluation.metrics import classification_summary
from deepfever.io.figures import save_figure
from deepfever.models.predict import predict_arrays
from deepfever.models.expression import ExpressionModel
from deepfever.models.prior import resolve_prior


def evaluate_ferplus(model: ExpressionModel, root: str, split: str = "valid", flip_tta: bool = True, device: str = "cpu",
                     prior: str | float | None = None) -> dict[str, Any]:
    """Score ``model`` on FER+ ``split`` (images whose raters agree by FERPlus's majority rule).

    ``prior`` is the class prior of the probabilities (None: the model's recorded ``output_prior``).
    """
    dataset = read_dataset("ferplus", root, splits=(split,))
    if split not in dataset:
        raise FileNotFoundError(f"evaluate_ferplus: split {split!r} not found under {root}")
    samples = dataset[split].samples
    crops = load_crop_array(samples, model.config.input_size, model.config.in_chans)
    truth = np.array([sample.label for sample in samples])
    probabilities = predict_arrays(model, crops, flip_tta=flip_tta, device=device, prior=prior)["probabilities"]
    summary = classification_summary(truth, probabilities.argmax(1), model.config.class_names)
    summary.update({"dataset": "ferplus", "split": split, "flip_tta": flip_tta, "prior": resolve_prior(model.config, prior),
                    "skipped": dict(dataset[split].skipped)})
    return summary


def plot_confusion(summary: dict[str, Any], path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix with counts, written atomically as PNG."""
    from matplotlib.figure import Figure  # slow to import; only plotting needs it

    matrix = np.asarray(summary["confusion_matrix"], dtype=float)
    names = summary["class_names"]
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(7, 6), layout="tight")
    axis = figure.subplots()
    axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(names)):
        for column in range(len(names)):
            axis.text(column, row, f"{int(matrix[row, column])}", ha="center", va="center",
                      color="white" if rates[row, column] > 0.5 else "black", fontsize=8)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    save_figure(figure, path)
