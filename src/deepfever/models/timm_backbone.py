"""Any timm model as a backbone: architecture ``timm`` with ``arch_kwargs={"name": "<timm model name>"}``.

Registered only when timm is installed (``pip install deepfever[timm]``). Presence is checked with
``find_spec`` rather than an import, because importing timm (and torchvision) costs seconds and this
module is imported whenever an architecture is looked up; timm itself is imported on first use.

timm's networks keep their ImageNet stems (total stride 32), so a 48 px crop leaves a 2x2 map at the
last stage: prefer ``input_size`` 112 or more, or the crop-sized ``resnet18``/``resnet50``.

Example:
    >>> model = create_model("timm", arch_kwargs={"name": "resnet34"}, input_size=112)  # doctest: +SKIP
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from deepfever.models.config import ModelConfig
from deepfever.models.expression import ExpressionModel
from deepfever.models.registry import register_model

DEFAULT_TIMM_MODEL = "resnet18"

if find_spec("timm") is not None:

    @register_model
    def timm(config: ModelConfig, name: str = DEFAULT_TIMM_MODEL, init_weights: str | None = None) -> ExpressionModel:
        """timm model ``name`` without its classifier; ``init_weights``: a local weights file timm loads and adapts.

        timm maps the file's first convolution to ``config.in_chans`` and drops its classifier itself.
        """
        import timm as library

        options = {"pretrained": init_weights is not None, "num_classes": 0, "in_chans": config.in_chans}
        if init_weights is not None:
            if not Path(init_weights).is_file():
                raise FileNotFoundError(f"timm backbone {name!r}: no weights file at {init_weights}")
            options["pretrained_cfg_overlay"] = {"file": str(init_weights)}
        backbone = library.create_model(name, **options)
        return ExpressionModel(backbone, backbone.num_features, config)
