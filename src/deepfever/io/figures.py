"""Write matplotlib figures without pyplot, so no module switches the backend for whoever imports it.

Draw on ``matplotlib.figure.Figure(...)`` (its own Agg canvas is made when saving), then call
``save_figure``; pyplot's global state, and the backend of a user's notebook, stay untouched.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepfever.io.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (a reader never sees half an image); returns the path.

    Example:
        >>> from matplotlib.figure import Figure
        >>> figure = Figure(figsize=(4, 3), layout="tight")
        >>> figure.subplots().plot([0, 1], [1, 0])  # doctest: +SKIP
        >>> save_figure(figure, "curve.png")  # doctest: +SKIP
    """
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
