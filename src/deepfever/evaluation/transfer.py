"""Zero-shot transfer: the emotion head, as trained, on a dataset it never saw.

A general extractor must work on data it never saw, so the head is scored on the classes a
dataset shares with ours, with argmax over *all* the model's outputs (predicting ``neutral`` or
``contempt`` for a CK+ anger frame counts as wrong). CK+48's protocol: 927 frames of anger,
disgust, fear, happy, sadness, surprise (contempt, which FER+ rarely saw, is left out).

Example:
    >>> from deepfever.models import load_model                      # doctest: +SKIP
    >>> ckplus_zero_shot(load_model("fevernet_s.ferplus"), "CK+48/")["accuracy"]  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from deepfever.evaluation.metrics import classification_summary
from deepfever.models.predict import predict_arrays
from deepfever.models.expression import ExpressionModel
from deepfever.models.prior import resolve_prior

CKPLUS_SHARED_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "sad", "surprise")


def zero_shot_summary(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                      evaluated: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class recall and confusion matrix over the samples whose label is in ``evaluated``.

    ``labels`` index ``class_names`` (the model's classes); predictions are the argmax over all of them.
    """
    unknown = sorted(set(evaluated) - set(class_names))
    if unknown:
        raise ValueError(f"zero_shot_summary: classes {unknown} are not among the model's {list(class_names)}")
    keep = np.isin(labels, [list(class_names).index(name) for name in evaluated])
    if not keep.any():
        raise ValueError(f"zero_shot_summary: no sample is labelled with one of {list(evaluated)}")
    summary = classification_summary(labels[keep], probabilities[keep].argmax(1), list(class_names))
    summary["per_class_recall"] = {name: summary["per_class"][name]["recall"] for name in evaluated}
    summary["evaluated_classes"] = list(evaluated)
    return summary


def ckplus_zero_shot(model: ExpressionModel, root: str, detector: str = "none", flip_tta: bool = False,
                     prior: str | float | None = None, device: str = "cpu") -> dict[str, Any]:
    """CK+48 zero-shot accuracy on its 6 shared classes, through the face path ``detector`` names.

    ``detector`` ``none`` feeds CK+48's own crops resized; ``mtcnn``/``yunet`` detect and align them to
    the model's template (a ``data prepare`` cache; frames without a face are counted as ``failed``).
    """
    from deepfever.data.splits import load_split

    split = load_split("ckplus48", root, {}, "all", detector, "", model.config.input_size, model.config.in_chans)
    probabilities = predict_arrays(model, split.images, flip_tta=flip_tta, device=device, prior=prior)["probabilities"]
    summary = zero_shot_summary(probabilities, split.labels, model.config.class_names, CKPLUS_SHARED_CLASSES)
    summary.update(dataset="ckplus48", detector=detector, flip_tta=flip_tta, prior=resolve_prior(model.config, prior),
                   face_path=split.face_path)
    return summary
