"""Names a package exports but loads on first use, so importing it (``deepfever --help``) stays cheap."""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name from its home module when first read.

    Example:
        >>> __getattr__ = lazy_attributes(__name__, {"read_table": "deepfever.io.tables"})  # doctest: +SKIP
    """
    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(home), name)

    return __getattr__
