"""The torch device a run asked for, checked once: asking for CUDA without it is an error, not a silent fallback."""
from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``, ``cuda`` and ``cuda:k`` are taken as they are.

    Raises ``ValueError`` naming the device when CUDA is asked for but not available.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use device 'cpu' or 'auto'")
    return torch.device(name)
