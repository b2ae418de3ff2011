"""Which class prior emotion probabilities assume: the training data's, uniform, or a strength between.

FER+ is 32 % neutral and 1.6 % disgust; a model that reports probabilities under that prior
under-calls rare expressions on data whose classes are balanced (CK+, lab recordings), while a
fully uniform prior over-calls them on in-the-wild faces. Bayes' rule moves between priors by
adding ``log(prior)`` terms to the logits (Menon et al., ICLR 2021, "Long-tail learning via logit
adjustment"). A strength ``s`` in [0, 1] reports ``p ∝ p_train · prior^(−s·a)``: ``s = 0`` is the
training prior, ``s = 1`` uniform classes, where ``a`` is the model's own distance between the two
(``logit_adjustment`` when it was trained with that term, whose raw logits are then uniform; 1
otherwise, whose raw logits are the training prior's).

Example:
    >>> from deepfever.models.config import ModelConfig
    >>> config = ModelConfig("fevernet_s", class_prior=(0.5, 0.5, 0, 0, 0, 0, 0, 0))
    >>> prior_offset(config, "train") is None
    True
    >>> [round(float(value), 3) for value in prior_offset(config, 0.5)[:2]]
    [0.347, 0.347]
"""
from __future__ import annotations

import numpy as np

from deepfever.models.config import OUTPUT_PRIORS, ModelConfig, normalize_prior

PRIOR_FLOOR = 1e-4
"""Smallest prior probability used in ``log``: a class absent from training is not pushed to -inf."""


def prior_strength(prior: str | float) -> float:
    """``prior`` as a strength: 0.0 for ``train``, 1.0 for ``uniform``, the number itself otherwise."""
    prior = normalize_prior(prior)
    if prior == "train":
        return 0.0
    return 1.0 if prior == "uniform" else float(prior)


def native_prior(config: ModelConfig) -> str:
    """The prior the raw logits assume: uniform after a logit-adjusted loss, else the training prior."""
    return "uniform" if config.logit_adjustment > 0 else "train"


def resolve_prior(config: ModelConfig, prior: str | float | None = None, owner: str = "prior") -> str | float:
    """The canonical prior probabilities will use: ``prior`` normalised, or the model's recorded one (None).

    ``owner`` names the argument in the error a bad value raises.
    """
    return config.output_prior if prior is None else normalize_prior(prior, owner)


def available_priors(config: ModelConfig) -> list[str | float]:
    """The priors worth reporting, the model's recorded ``output_prior`` first (more only when it records its training prior)."""
    if config.class_prior is None:
        return [config.output_prior]
    return [config.output_prior] + [prior for prior in OUTPUT_PRIORS if prior != config.output_prior]


def prior_offset(config: ModelConfig, prior: str | float | None = None) -> np.ndarray | None:
    """Vector to add to raw logits so softmax reports probabilities under ``prior`` (None: no change).

    ``prior`` is ``train``, ``uniform`` or a strength in [0, 1] (see the module docstring); None means
    the model's recorded ``output_prior``.
    """
    prior = resolve_prior(config, prior)
    strength = prior_strength(prior)
    native = prior_strength(native_prior(config))
    if strength == native:
        return None
    if config.class_prior is None:
        raise ValueError(
            f"prior {prior!r}: model {config.arch} does not record its training class prior, so only its native "
            f"{native_prior(config)!r} probabilities are available; pass prior={native_prior(config)!r}"
        )
    scale = config.logit_adjustment if config.logit_adjustment > 0 else 1.0
    log_prior = scale * np.log(np.maximum(np.asarray(config.class_prior, np.float64), PRIOR_FLOOR))
    # Raw logits sit at strength ``native``; each unit of strength removes one ``log_prior``.
    return ((native - strength) * log_prior).astype(np.float32)
