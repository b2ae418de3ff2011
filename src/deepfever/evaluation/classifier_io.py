"""Probe classifiers on disk: arrays in ``.safetensors``, everything else in a JSON sidecar; no pickle.

Why not pickle or joblib: loading one runs arbitrary code and breaks across scikit-learn versions.
Prediction re-implements the forward pass in NumPy from the saved arrays, so a classifier file needs
neither. The JSON names the extractor (model, template, crop size) whose vectors the classifier was
fitted on: vectors of another model live in another space, so such a classifier is refused. It also
records the face stage (detector, template, crop size, model) the vectors came from, so applying it to
photos detects faces as it was fitted, and a different face stage is named.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfever.errors import DeepFeverError
from deepfever.io.atomic import atomic_write, refuse_overwrite
from deepfever.io.hashing import file_sha256
from deepfever.models.fingerprint import model_id_change

FORMAT = "deepfever-classifier"
FORMAT_VERSION = 1
FINGERPRINT_KEYS = ("model_id", "template_id", "crop_size")
FACE_STAGE_KEYS = ("detector", *FINGERPRINT_KEYS)
# Keys that describe the files themselves: written by ``save_classifier``, never carried in ``info``.
_FILE_KEYS = ("format", "format_version", "classifier", "class_names", "input_dim", "layers", "weights_file",
              "weights_sha256", "deepfever_version")


class ClassifierFileError(DeepFeverError, ValueError):
    """A classifier file is damaged or inconsistent: wrong shapes, non-finite values, bad metadata."""


class FingerprintMismatchError(DeepFeverError, ValueError):
    """A classifier was applied to vectors of another extractor than the one it was fitted on."""


@dataclass
class SavedClassifier:
    """Standardisation + dense layers (ReLU between, softmax or sigmoid at the end), in float64.

    ``weights[i]`` is (inputs, outputs); ``info`` holds ``extractor`` (the fingerprint), cross-validation
    metrics, a description of the training data and versions.

    Example:
        >>> clf = SavedClassifier.from_pipeline(fit_classifier(x, y), ["calm", "joy"], info)  # doctest: +SKIP
        >>> clf.check_fingerprint(extractor.fingerprint_); clf.predict(extractor.embed(crops))  # doctest: +SKIP
    """

    kind: str
    class_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, pipeline, class_names: list[str], info: dict[str, Any]) -> "SavedClassifier":
        """Copy the arrays of a fitted ``StandardScaler`` + ``LogisticRegression``/``MLPClassifier`` pipeline.

        Its ``classes_`` are indices into ``class_names``; only the classes it saw are kept.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        scaler, head = pipeline[0], pipeline[-1]
        if not isinstance(scaler, StandardScaler) or len(pipeline) != 2:
            raise TypeError(f"SavedClassifier.from_pipeline: expected StandardScaler + classifier, got {pipeline}")
        if isinstance(head, LogisticRegression):
            kind, weights, biases = "logistic", [head.coef_.T], [head.intercept_]
        elif isinstance(head, MLPClassifier) and head.activation == "relu":
            kind, weights, biases = "mlp", list(head.coefs_), list(head.intercepts_)
        else:
            raise TypeError(f"SavedClassifier.from_pipeline: expected LogisticRegression or a ReLU MLPClassifier, got {head}")
        return cls(kind, [class_names[int(c)] for c in head.classes_], np.asarray(scaler.mean_, np.float64),
                   np.asarray(scaler.scale_, np.float64), [np.asarray(w, np.float64) for w in weights],
                   [np.asarray(b, np.float64) for b in biases], dict(info))

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities for vectors (N, input_dim)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ValueError(f"SavedClassifier.predict_proba: expected vectors of shape (N, {self.input_dim}), got {features.shape}; "
                             "were they made by the extractor this classifier was fitted on?")
        hidden = (features - self.mean) / self.scale
        for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
            hidden = np.maximum(hidden @ weight + bias, 0.0)
        logits = hidden @ self.weights[-1] + self.biases[-1]
        if logits.shape[1] == 1:  # two classes: one logit for the second, as scikit-learn fits them
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class names (N,) of the most probable class."""
        return np.asarray(self.class_names)[self.predict_proba(features).argmax(axis=1)]

    @property
    def face_stage(self) -> dict[str, Any]:
        """The face stage the fitted vectors came from: detector, model, template and crop size (None: not recorded)."""
        saved = self.info.get("extractor", {})
        return {key: saved.get(key) for key in FACE_STAGE_KEYS}

    def face_stage_mismatch(self, used: dict[str, Any]) -> str | None:
        """One line naming each part of the face stage ``used`` that differs from the recorded one; None when they agree."""
        differences = [f"{key} {recorded!r} when fitted, {used.get(key)!r} now" for key, recorded in self.face_stage.items()
                       if recorded is not None and recorded != used.get(key)]
        if not differences:
            return None
        hint = " (pass --detector none if the inputs are ready face crops)" if self.face_stage["detector"] == "none" else ""
        return f"the face stage differs from the classifier's: {'; '.join(differences)}{hint}"

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Raise ``FingerprintMismatchError`` unless ``fingerprint`` (``Extractor.fingerprint_``) is the saved one."""
        saved = self.info.get("extractor", {})
        differences = [f"{key} {saved.get(key)!r} != {fingerprint.get(key)!r}" for key in FINGERPRINT_KEYS if saved.get(key) != fingerprint.get(key)]
        if differences:
            hint = f"--model {saved['model']}" if saved.get("model") else "the model it was fitted with"
            why = model_id_change(saved.get("model_id"), fingerprint.get("model_id"))
            raise FingerprintMismatchError(
                f"check_fingerprint: this classifier was fitted on vectors of another extractor ({'; '.join(differences)}; "
                f"saved first{'; ' + why if why else ''}). Vectors of different models are not comparable: use {hint}, "
                "or fit a new classifier with `deepfever probe fit`"
            )


def detector_for_photos(requested: str | None, recorded: str | None, default: str) -> str:
    """The detector a classifier is applied with: ``requested``; else the ``recorded`` one if it finds faces; else ``default``.

    ``none`` (each whole image taken as one face) is right for the ready crops a classifier may have been
    fitted on, and wrong for photos: it is used only when asked for.
    """
    if requested:
        return requested
    return recorded if recorded and recorded != "none" else default


def classifier_paths(path: str | Path) -> tuple[Path, Path]:
    """(JSON, safetensors) for ``clf``, ``clf.json`` or ``clf.safetensors``."""
    base = Path(path)
    if base.suffix in (".json", ".safetensors"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".safetensors")


def save_classifier(classifier: SavedClassifier, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``path.safetensors`` then ``path.json`` atomically; returns the JSON path."""
    from safetensors.numpy import save_file

    from deepfever._version import __version__

    document_path, weights_path = classifier_paths(path)
    for target in (document_path, weights_path):
        refuse_overwrite(target, overwrite)
    tensors = {"scaler.mean": classifier.mean, "scaler.scale": classifier.scale}
    for index, (weight, bias) in enumerate(zip(classifier.weights, classifier.biases)):
        tensors[f"layer{index}.weight"], tensors[f"layer{index}.bias"] = weight, bias
    with atomic_write(weights_path) as tmp:
        # The class names travel with the weights too, so an edited (reordered, shortened) JSON list is noticed.
        save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(tmp),
                  metadata={"format": FORMAT, "class_names": json.dumps(list(classifier.class_names))})
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "classifier": classifier.kind,
        "class_names": list(classifier.class_names), "input_dim": classifier.input_dim, "layers": len(classifier.weights),
        "weights_file": weights_path.name, "weights_sha256": file_sha256(weights_path), "deepfever_version": __version__,
        **{key: value for key, value in classifier.info.items() if key not in _FILE_KEYS},
    }
    with atomic_write(document_path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    return document_path


def load_classifier(path: str | Path) -> SavedClassifier:
    """Read a classifier written by ``save_classifier``, checking format, version and file integrity."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    document_path, _ = classifier_paths(path)
    if not document_path.is_file():
        raise FileNotFoundError(f"load_classifier: {document_path} not found; expected the .json written by `deepfever probe fit -o`")
    try:
        document = json.loads(document_path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ClassifierFileError(f"load_classifier: {document_path} is not valid JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ClassifierFileError(f"load_classifier: {document_path} is not a deepfever classifier (format {found!r}, expected {FORMAT!r})")
    version = document.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ClassifierFileError(f"load_classifier: {document_path}: format_version {version!r} is not one this deepfever reads "
                                  f"(up to {FORMAT_VERSION}); upgrade deepfever, or fit the classifier again")
    _check_document(document, document_path)
    weights_path = document_path.with_name(document["weights_file"])
    if not weights_path.is_file() or file_sha256(weights_path) != document["weights_sha256"]:
        raise ClassifierFileError(f"load_classifier: {weights_path} is missing or does not match the checksum in {document_path}; "
                         "copy both files of the classifier together")
    arrays = load_file(str(weights_path))
    with safe_open(str(weights_path), "np") as handle:
        saved_names = (handle.metadata() or {}).get("class_names")
    if saved_names is not None and json.loads(saved_names) != document["class_names"]:
        raise ClassifierFileError(f"load_classifier: class_names in {document_path} ({document['class_names']}) differ from those "
                                  f"saved with the weights ({json.loads(saved_names)}); restore the JSON or fit again")
    stored = sum(1 for name in arrays if name.startswith("layer") and name.endswith(".weight"))
    if document["layers"] != stored:  # before any list is sized by the number in the JSON
        raise ClassifierFileError(f"load_classifier: {document_path}: layers {document['layers']} but {weights_path} holds "
                                  f"{stored}; copy both files of the classifier together, or fit it again")
    layers = range(document["layers"])
    missing = [name for name in ["scaler.mean", "scaler.scale", *(f"layer{i}.{part}" for i in layers for part in ("weight", "bias"))]
               if name not in arrays]
    if missing:
        raise ClassifierFileError(f"load_classifier: {weights_path} lacks {', '.join(missing)} for the {document['layers']} layers "
                                  f"{document_path} declares; copy both files of the classifier together")
    info = {key: value for key, value in document.items() if key not in _FILE_KEYS}
    classifier = SavedClassifier(document["classifier"], list(document["class_names"]), arrays["scaler.mean"], arrays["scaler.scale"],
                                 [arrays[f"layer{i}.weight"] for i in layers], [arrays[f"layer{i}.bias"] for i in layers], info)
    _check_arrays(classifier, document["input_dim"], document_path)
    return classifier


def _check_document(document: dict[str, Any], source: Path) -> None:
    """Types and counts of the JSON fields the arrays are read with."""
    def refuse(problem: str) -> ClassifierFileError:
        return ClassifierFileError(f"load_classifier: {source}: {problem}; fit it again with `deepfever probe fit`")

    names = document.get("class_names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(name, str) and name for name in names):
        raise refuse(f"class_names must be a list of at least 2 names, got {names!r}")
    if len(set(names)) != len(names):
        raise refuse(f"class_names repeats a name: {names}")
    if document.get("classifier") not in ("logistic", "mlp"):
        raise refuse(f"classifier must be 'logistic' or 'mlp', got {document.get('classifier')!r}")
    layers = document.get("layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1 or (document["classifier"] == "logistic" and layers != 1):
        raise refuse(f"layers must be a positive integer (1 for logistic), got {layers!r}")
    if not isinstance(document.get("input_dim"), int) or isinstance(document["input_dim"], bool) or document["input_dim"] < 1:
        raise refuse(f"input_dim must be a positive integer, got {document.get('input_dim')!r}")
    weights_file = document.get("weights_file")
    if not isinstance(weights_file, str) or not weights_file or Path(weights_file).name != weights_file or weights_file in (".", ".."):
        raise refuse(f"weights_file must be the plain name of the .safetensors file beside it, got {weights_file!r}")
    if not isinstance(document.get("weights_sha256"), str):
        raise refuse(f"weights_sha256 must be a string, got {document.get('weights_sha256')!r}")
    extractor = document.get("extractor", {})
    if not isinstance(extractor, dict):
        raise refuse(f"extractor must be an object (the fingerprint of the vectors it was fitted on), got {extractor!r}")
    for key, kinds in (("model_id", str), ("template_id", str), ("crop_size", int), ("detector", str), ("model", str)):
        value = extractor.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise refuse(f"extractor.{key} must be a {kinds.__name__}, got {value!r}")


def _check_arrays(classifier: SavedClassifier, input_dim: int, source: Path) -> None:
    """Shapes chain from input_dim to the classes, every value is finite and the scaler never divides by 0."""
    problems = []
    if classifier.mean.shape != (input_dim,) or classifier.scale.shape != (input_dim,):
        problems.append(f"scaler shapes {classifier.mean.shape}, {classifier.scale.shape} (expected (input_dim,) = ({input_dim},))")
    width = input_dim
    for index, (weight, bias) in enumerate(zip(classifier.weights, classifier.biases)):
        if weight.ndim != 2 or weight.shape[0] != width or bias.shape != (weight.shape[1],):
            problems.append(f"layer {index} weight {weight.shape} / bias {bias.shape} (expected ({width}, K) / (K,))")
            break
        width = weight.shape[1]
    classes = len(classifier.class_names)
    if not problems and not (width == classes or (classes == 2 and width == 1)):
        problems.append(f"{width} outputs for {classes} class_names")
    arrays = {"scaler.mean": classifier.mean, "scaler.scale": classifier.scale,
              **{f"layer{i}.weight": w for i, w in enumerate(classifier.weights)}, **{f"layer{i}.bias": b for i, b in enumerate(classifier.biases)}}
    nonfinite = [name for name, array in arrays.items() if not np.isfinite(array).all()]
    if nonfinite:
        problems.append(f"non-finite values in {', '.join(nonfinite)}")
    if classifier.scale.size and np.isfinite(classifier.scale).all() and not (classifier.scale > 0).all():
        problems.append("scaler.scale has zeros or negative values")
    if problems:
        raise ClassifierFileError(f"load_classifier: {source}: {'; '.join(problems)}; the file is damaged or was edited — "
                                  "fit it again with `deepfever probe fit`")


