"""Where downloaded weights, prepared arrays and exported models are kept between runs."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DEEPFEVER_CACHE"
DEFAULT_CACHE = "~/.cache/deepfever"


def cache_dir() -> Path:
    """``$DEEPFEVER_CACHE`` (``~`` expanded), or ``~/.cache/deepfever`` when it is unset or empty.

    An empty value counts as unset: ``DEEPFEVER_CACHE= deepfever ...`` must not scatter caches over
    the current directory.

    Example:
        >>> cache_dir() / "onnx"  # doctest: +SKIP
        PosixPath('/home/me/.cache/deepfever/onnx')
    """
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
