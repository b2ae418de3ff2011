"""Run a model over an in-memory array of crops in batches: the one inference loop of torch models."""
from __future__ import annotations

import numpy as np
import torch

from deepfever.models.expression import ExpressionModel
from deepfever.models.preprocess import crops_to_tensor
from deepfever.models.prior import prior_offset


@torch.inference_mode()
def predict_arrays(
    model: ExpressionModel, crops: np.ndarray, batch_size: int = 256, flip_tta: bool = False, device: str | torch.device = "cpu",
    prior: str | float | None = None,
) -> dict[str, np.ndarray]:
    """Return ``probabilities`` (N, classes), ``embedding`` (N, D) and ``valence_arousal`` (N, 2).

    ``flip_tta`` averages the prediction of each crop and its mirror image. ``prior`` (``train``,
    ``uniform`` or a strength in [0, 1]; None: the model's recorded ``output_prior``) is the class prior the probabilities assume.
    """
    was_training = model.training
    model.eval()
    offset = prior_offset(model.config, prior)
    shift = torch.from_numpy(offset).to(device) if offset is not None else 0.0
    outputs: dict[str, list[np.ndarray]] = {"probabilities": [], "embedding": [], "valence_arousal": []}
    for start in range(0, len(crops), batch_size):
        batch = crops_to_tensor(crops[start : start + batch_size], model.config).to(device)
        batch = batch.contiguous(memory_format=torch.channels_last)
        result = model(batch)
        probabilities = (result["emotion"].float() + shift).softmax(dim=1)
        embedding = result["embedding"].float()
        valence_arousal = result["valence_arousal"].float()
        if flip_tta:
            mirrored = model(batch.flip(3))
            probabilities = (probabilities + (mirrored["emotion"].float() + shift).softmax(dim=1)) / 2
            embedding = torch.nn.functional.normalize(embedding + mirrored["embedding"].float(), dim=1)
            valence_arousal = (valence_arousal + mirrored["valence_arousal"].float()) / 2
        outputs["probabilities"].append(probabilities.cpu().numpy())
        outputs["embedding"].append(embedding.cpu().numpy())
        outputs["valence_arousal"].append(valence_arousal.cpu().numpy())
    model.train(was_training)
    return {key: np.concatenate(values) if values else np.zeros((0, 0), np.float32) for key, values in outputs.items()}
