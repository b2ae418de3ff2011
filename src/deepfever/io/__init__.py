"""Reading images and writing outputs safely.

Importing this package is cheap: a submodule (``hashing``, ``cache``, ``failures``...) loads only what it
needs, and the names below load numpy, PIL or pandas on first access.
"""
from __future__ import annotations

from deepfever._lazy import lazy_attributes

_LAZY = {
    "MAX_IMAGE_PIXELS": "deepfever.io.images",
    "load_image": "deepfever.io.images",
    "atomic_write": "deepfever.io.atomic",
    "refuse_overwrite": "deepfever.io.atomic",
    "read_table": "deepfever.io.tables",
    "write_table": "deepfever.io.tables",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
