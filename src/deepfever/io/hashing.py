"""The sha256 of a file, read in blocks: how model files, wheels and saved classifiers are fingerprinted."""
from __future__ import annotations

import hashlib
import os

_BLOCK = 1 << 20  # 1 MiB reads keep memory flat for multi-gigabyte files


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the bytes of ``path``.

    Example:
        >>> file_sha256("model.safetensors")[:12]  # doctest: +SKIP
        'ebafce4e3c11'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
