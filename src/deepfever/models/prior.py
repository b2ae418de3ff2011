"""Which class prior emotion probabilities assume: the training data's, or uniform.

FER+ is 32 % neutral and 1.6 % disgust; a model that reports probabilities under that prior
under-calls rare expressions on data whose classes are balanced (CK+, lab recordings). Bayes'
rule moves between priors by adding ``tau * log(prior)`` to the logits (Menon et al., ICLR 2021,
"Long-tail learning via logit adjustment"): a model trained with that term in its loss has raw
logits for uniform classes, one trained without has logits for the training prior (tau = 1).

Example:
    >>> from deepfever.models.config import ModelConfig
    >>> config = ModelConfig("fevernet_s", class_prior=(0.5, 0.5, 0, 0, 0, 0, 0, 0))
    >>> prior_offset(config, "train") is None
    True
"""
from __future__ import annotations

import numpy as np

from deepfever.models.config import OUTPUT_PRIORS, ModelConfig

PRIOR_FLOOR = 1e-4
"""Smallest prior probability used in ``log``: a class absent from training is not pushed to -inf."""


def native_prior(config: ModelConfig) -> str:
    """The prior the raw logits assume: uniform after a logit-adjusted loss, else the training prior."""
    return "uniform" if config.logit_adjustment > 0 else "train"


def available_priors(config: ModelConfig) -> list[str]:
    """The priors the model can report, its recorded ``output_prior`` first (both only when it records its training prior)."""
    if config.class_prior is None:
        return [config.output_prior]
    return [config.output_prior] + [prior for prior in OUTPUT_PRIORS if prior != config.output_prior]


def prior_offset(config: ModelConfig, prior: str | None = None) -> np.ndarray | None:
    """Vector to add to raw logits so softmax reports probabilities under ``prior`` (None: no change).

    ``prior=None`` means the model's recorded ``output_prior``.
    """
    prior = prior or config.output_prior
    if prior not in OUTPUT_PRIORS:
        raise ValueError(f"prior must be one of {', '.join(OUTPUT_PRIORS)}, got {prior!r}")
    native = native_prior(config)
    if prior == native:
        return None
    if config.class_prior is None:
        raise ValueError(
            f"prior {prior!r}: model {config.arch} does not record its training class prior, so only its native "
            f"{native!r} probabilities are available; pass prior={native!r}"
        )
    tau = config.logit_adjustment if config.logit_adjustment > 0 else 1.0
    log_prior = tau * np.log(np.maximum(np.asarray(config.class_prior, np.float64), PRIOR_FLOOR))
    return (log_prior if prior == "train" else -log_prior).astype(np.float32)
