"""Import the packages of an optional extra, or say which extra installs them."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Sequence


def import_optional(caller: str, modules: Sequence[str], extra: str) -> tuple[ModuleType, ...]:
    """The imported ``modules``, or an ``ImportError`` naming ``caller``, the missing module and ``pip install`` lines.

    Example:
        >>> onnx, onnxruntime = import_optional("export_onnx", ("onnx", "onnxruntime"), "onnx")  # doctest: +SKIP
    """
    try:
        return tuple(importlib.import_module(name) for name in modules)
    except ImportError as error:
        raise ImportError(
            f"{caller}: needs {' and '.join(modules)} ({error.name} is missing); install them with "
            f"pip install 'deepfever[{extra}]' (or pip install {' '.join(modules)})"
        ) from error
