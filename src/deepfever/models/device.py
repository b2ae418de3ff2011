"""The device a run asked for, checked once: asking for CUDA without it is an error, not a silent fallback."""
from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a CPU run decides without importing torch (seconds of start-up)
    import torch

CUDA_DRIVER = {"win32": "nvcuda.dll", "darwin": None}.get(sys.platform, "libcuda.so.1")
"""The CUDA driver library; without it no torch build can reach a GPU."""


def cuda_driver_present() -> bool:
    """Whether this machine has a CUDA driver, found without importing torch (``auto`` is then the CPU)."""
    if CUDA_DRIVER is None:
        return False
    try:
        ctypes.CDLL(CUDA_DRIVER)
    except OSError:
        return False
    return True


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``, ``cuda`` and ``cuda:k`` are taken as they are.

    Raises ``ValueError`` naming the device when CUDA is asked for but not available.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    import torch

    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use device 'cpu' or 'auto'")
    return torch.device(name)


def resolve_device_name(name: str) -> str:
    """``resolve_device`` as a name (``cpu``, ``cuda``, ``cuda:k``), importing torch only where a GPU may be."""
    if name == "cpu" or (name == "auto" and not cuda_driver_present()):
        return "cpu"
    return str(resolve_device(name))
