"""Run an exported expression model with ONNX Runtime: the ``onnxruntime`` backend of ``Extractor``.

``OnnxModel`` reads the config and fingerprint from the file's metadata (see ``onnx_export``) and
predicts exactly what ``deepfever.models.predict.predict_arrays`` returns for a torch model, so
the extractor treats both backends alike. An int8 export (``deepfever export onnx --int8``) is the
fast CPU path; on CUDA, ONNX Runtime's CUDA provider is used when its GPU build is installed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from deepfever.io.cache import cache_dir
from deepfever.io.optional import import_optional
from deepfever.models.config import ModelConfig
from deepfever.models.files import ONNX_OUTPUTS, read_model_info, resolve_weights
from deepfever.models.fingerprint import model_fingerprint
from deepfever.models.preprocess import crops_to_array
from deepfever.models.prior import prior_offset

FINGERPRINT_KEYS = ("model_id", "template_id", "crop_size")


class OnnxModel:
    """An exported model in an ONNX Runtime session.

    Args:
        path: ``.onnx`` file written by ``export_onnx``.
        device: ``cpu`` or ``cuda[:k]``; CUDA needs the ``onnxruntime-gpu`` build.
        threads: intra-op threads (``None``: ``OMP_NUM_THREADS`` when set, as torch honours it — torchrun and Ray
            set it to 1 per worker process —, else ONNX Runtime's default, one per physical core).

    Example:
        >>> model = OnnxModel("model.int8.onnx")  # doctest: +SKIP
        >>> model.predict_arrays(crops)["embedding"].shape  # doctest: +SKIP
        (N, 128)
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        ort = import_optional("OnnxModel", ("onnxruntime",), "onnx")[0]
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"OnnxModel: {self.path} is not a file; write one with: deepfever export onnx MODEL -o FILE.onnx")
        self.device = str(device)
        providers: list = ["CPUExecutionProvider"]
        if self.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("OnnxModel: device cuda needs onnxruntime's CUDA provider; pip install onnxruntime-gpu, "
                                 "or use backend 'torch' on the GPU")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(self.device.partition(":")[2] or 0)}))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _threads_asked_for()
        options.inter_op_num_threads = 1
        # Idle threads sleep rather than spin: the model shares the cores with decoding and detection
        # (measured on 2 cores with other work running: 653 vs 598 faces/s, and less CPU per video).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        metadata = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in ("deepfever_config", *FINGERPRINT_KEYS) if key not in metadata]
        if missing:
            raise ValueError(f"OnnxModel: {self.path} lacks the metadata {missing}; it was not written by deepfever export onnx")
        try:
            self.config = ModelConfig.from_dict(json.loads(metadata["deepfever_config"]))
        except (TypeError, ValueError) as error:
            raise ValueError(f"OnnxModel: {self.path}: its deepfever_config metadata is damaged ({error}); "
                             "export the model again with deepfever export onnx") from error
        self.precision = metadata.get("precision", "fp32")
        self.fingerprint = {"model_id": metadata["model_id"], "template_id": metadata["template_id"],
                            "crop_size": int(metadata["crop_size"])}

    def predict_arrays(self, crops: np.ndarray, batch_size: int = 256, flip_tta: bool = False,
                       prior: str | float | None = None) -> dict[str, np.ndarray]:
        """``probabilities``, ``embedding`` and ``valence_arousal`` of aligned crops, as ``predict_arrays`` gives.

        ``prior`` (``train``, ``uniform``, a strength in [0, 1]; None: the model's recorded one) as in ``predict_arrays``.
        """
        offset = prior_offset(self.config, prior)
        shift = offset if offset is not None else np.float32(0)
        outputs: dict[str, list[np.ndarray]] = {"probabilities": [], "embedding": [], "valence_arousal": []}
        for start in range(0, len(crops), batch_size):
            batch = crops_to_array(crops[start:start + batch_size], self.config)
            embedding, logits, valence_arousal = self._run(batch)
            probabilities = _softmax(logits + shift)
            if flip_tta:
                mirrored = self._run(np.ascontiguousarray(batch[..., ::-1]))
                probabilities = (probabilities + _softmax(mirrored[1] + shift)) / 2
                embedding = embedding + mirrored[0]
                embedding /= np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
                valence_arousal = (valence_arousal + mirrored[2]) / 2
            outputs["probabilities"].append(probabilities)
            outputs["embedding"].append(embedding)
            outputs["valence_arousal"].append(valence_arousal)
        return {key: np.concatenate(values) if values else np.zeros((0, 0), np.float32) for key, values in outputs.items()}

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(ONNX_OUTPUTS), {"input": batch})


def _threads_asked_for() -> int:
    """``OMP_NUM_THREADS`` as a positive thread count, or 0 (ONNX Runtime's default) when unset or not a number."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() else 0


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def load_onnx_backend(model: str | os.PathLike, device: str = "cpu") -> OnnxModel:
    """The ``onnxruntime`` backend's model: an exported ``.onnx`` file as it is, or a torch model
    (packaged name or ``.safetensors``) exported to fp32 ONNX once and cached under
    ``$DEEPFEVER_CACHE/onnx`` by its fingerprint, so later runs start at once, without torch.

    The cache is keyed by the whole fingerprint (weights and every config field), so an edited sidecar
    beside the same weights is another model: it is checked and exported again, never served stale.
    """
    if str(model).endswith(".onnx"):
        return OnnxModel(model, device)
    weights = resolve_weights(model)
    try:
        config = ModelConfig.from_dict(read_model_info(weights)["model"])
    except (TypeError, ValueError):
        config = None  # loading below refuses the file, naming the field
    cached = None if config is None else cache_dir() / "onnx" / f"{model_fingerprint(weights, config)['model_id']}.onnx"
    if cached is None or not cached.is_file():
        from deepfever.models.checkpoint import load_model
        from deepfever.models.fuse import fuse_batchnorm
        from deepfever.models.onnx_export import export_onnx

        # Loading checks the file as the torch backend does; the graph is the model it would run (BatchNorm fused).
        torch_model = fuse_batchnorm(load_model(weights, "cpu"))
        fingerprint = model_fingerprint(weights, torch_model.config)
        cached = export_onnx(torch_model, fingerprint, cache_dir() / "onnx" / f"{fingerprint['model_id']}.onnx")
    return OnnxModel(cached, device)
