"""Linear probes of frozen vectors: do expression vectors transfer to a dataset they never saw?

Standardised features feed a logistic regression (or a small MLP); k-fold cross-validation keeps
every person out of their own test fold when subjects are known, since faces of one person are far
easier to match than new people. A learning curve shows how few labelled examples per class suffice;
its small training sets are drawn inside each training fold, so no test face ever helps choose them.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 20)
    >>> features = rng.normal(size=(40, 8)) + labels[:, None] * 3
    >>> report = evaluate_probe(features, labels, ["a", "b"], n_splits=5, shots=(1, None), repeats=2)
    >>> report["accuracy"]["mean"] > 0.9
    True
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from deepfever.evaluation.metrics import classification_summary

logger = logging.getLogger(__name__)

CLASSIFIERS = ("logistic", "mlp")
DEFAULT_SHOTS: tuple[int | None, ...] = (1, 5, 10, 20, None)
"""Training examples per class on the learning curve; ``None`` is every example of the training fold."""

Fold = tuple[np.ndarray, np.ndarray]


def build_classifier(kind: str = "logistic", seed: int = 0) -> Pipeline:
    """An unfitted ``StandardScaler`` + classifier pipeline; ``kind`` is ``logistic`` or ``mlp``."""
    if kind == "logistic":
        head = LogisticRegression(C=1.0, max_iter=5000)
    elif kind == "mlp":
        # One hidden layer is enough to show whether the vectors hold non-linear structure; weight
        # decay keeps it from memorising the few hundred faces of a typical probe dataset.
        head = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-2, max_iter=1000, random_state=seed)
    else:
        raise ValueError(f"build_classifier: unknown classifier {kind!r}; valid: {', '.join(CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), head)


def fit_classifier(features: np.ndarray, labels: np.ndarray, kind: str = "logistic", seed: int = 0) -> Pipeline:
    """Fit ``build_classifier(kind, seed)`` in float64, so a NumPy re-implementation can match it exactly."""
    return build_classifier(kind, seed).fit(np.asarray(features, np.float64), np.asarray(labels))


def make_folds(labels: np.ndarray, subjects: Sequence[str] | None = None, n_splits: int = 10, seed: int = 0) -> list[Fold]:
    """(train, test) index pairs: by subject when ``subjects`` is given, stratified by class otherwise.

    Subject folds are also stratified as far as whole people allow (``StratifiedGroupKFold``).
    """
    labels = np.asarray(labels)
    if n_splits < 2:
        raise ValueError(f"make_folds: n_splits must be at least 2, got {n_splits}")
    placeholder = np.zeros(len(labels))
    if subjects is not None:
        groups = np.asarray(subjects)
        if len(groups) != len(labels):
            raise ValueError(f"make_folds: {len(labels)} labels but {len(groups)} subjects; give one subject per label")
        people = len(np.unique(groups))
        if people < n_splits:
            raise ValueError(f"make_folds: {n_splits} subject-wise folds need at least {n_splits} subjects, got {people}; use fewer folds")
        splits = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(placeholder, labels, groups)
    else:
        largest = int(np.bincount(labels).max())
        if largest < n_splits:
            raise ValueError(f"make_folds: {n_splits} stratified folds need a class with at least {n_splits} examples, "
                             f"the largest has {largest}; use fewer folds")
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(placeholder, labels)
    return [(train, test) for train, test in splits]


def cross_validate_probe(
    features: np.ndarray, labels: np.ndarray, class_names: Sequence[str], folds: Sequence[Fold], kind: str = "logistic", seed: int = 0
) -> dict[str, Any]:
    """Mean ± std (over folds, ddof 0) of accuracy and macro-F1, plus a summary of all out-of-fold predictions."""
    predicted = np.full(len(labels), -1)
    accuracy, macro_f1 = [], []
    for train, test in folds:
        predicted[test] = fit_classifier(features[train], labels[train], kind, seed).predict(np.asarray(features[test], np.float64))
        fold = classification_summary(labels[test], predicted[test], class_names)
        accuracy.append(fold["accuracy"])
        macro_f1.append(fold["macro_f1"])
    return {
        "accuracy": _spread(accuracy),
        "macro_f1": _spread(macro_f1),
        "pooled": classification_summary(labels, predicted, class_names),
        "predicted": predicted,
    }


def sample_per_class(labels: np.ndarray, pool: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``shots`` indices of each class drawn without replacement from ``pool`` (all of a rarer class)."""
    chosen = []
    for label in np.unique(labels[pool]):
        members = pool[labels[pool] == label]
        chosen.append(rng.choice(members, size=min(shots, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def probe_learning_curve(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    folds: Sequence[Fold],
    shots: Sequence[int | None] = DEFAULT_SHOTS,
    repeats: int = 5,
    kind: str = "logistic",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Test accuracy against training examples per class, mean ± std over folds x repeats.

    Each repeat draws its examples with its own fixed seed; ``None`` (all examples) needs one draw.
    """
    if repeats < 1:
        raise ValueError(f"probe_learning_curve: repeats must be at least 1, got {repeats}")
    points = []
    for count in shots:
        if count is not None and count < 1:
            raise ValueError(f"probe_learning_curve: examples per class must be at least 1 (or None for all), got {count}")
        accuracy, macro_f1, sizes = [], [], []
        for fold_index, (train, test) in enumerate(folds):
            for repeat in range(1 if count is None else repeats):
                rng = np.random.default_rng((seed, fold_index, repeat, count or 0))
                subset = train if count is None else sample_per_class(labels, train, count, rng)
                model = fit_classifier(features[subset], labels[subset], kind, seed)
                fold = classification_summary(labels[test], model.predict(np.asarray(features[test], np.float64)), class_names)
                accuracy.append(fold["accuracy"])
                macro_f1.append(fold["macro_f1"])
                sizes.append(len(subset))
        points.append({"per_class": "all" if count is None else int(count), "accuracy": _spread(accuracy),
                       "macro_f1": _spread(macro_f1), "train_size_mean": float(np.mean(sizes))})
        logger.info("learning curve: %s per class -> accuracy %.4f", points[-1]["per_class"], points[-1]["accuracy"]["mean"])
    return points


def evaluate_probe(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    subjects: Sequence[str] | None = None,
    kind: str = "logistic",
    n_splits: int = 10,
    shots: Sequence[int | None] = DEFAULT_SHOTS,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Cross-validated report and learning curve (skipped when ``shots`` is empty).

    All of it is JSON-ready except ``predicted``: each example's out-of-fold class index (an array).
    """
    labels = np.asarray(labels)
    folds = make_folds(labels, subjects, n_splits, seed)
    report = cross_validate_probe(features, labels, class_names, folds, kind, seed)
    report["protocol"] = {
        "classifier": kind, "folds": n_splits, "seed": seed, "examples": int(len(labels)),
        "grouping": "subject" if subjects is not None else "none (stratified by class; people may repeat across folds)",
    }
    if shots:
        # The "all" point is exactly the cross-validation above (same folds, same deterministic fits): reuse it.
        points = probe_learning_curve(features, labels, class_names, folds, [s for s in shots if s is not None], repeats, kind, seed)
        if None in shots:
            points.append({"per_class": "all", "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                           "train_size_mean": float(np.mean([len(train) for train, _ in folds]))})
        report["learning_curve"] = {"repeats": repeats, "points": points}
    return report


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}
