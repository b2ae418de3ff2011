"""Defaults several entry points share, in a module light enough for ``deepfever --help`` to import.

The library and the CLI read them here, so a command's help text and the function it calls cannot disagree.
"""
from __future__ import annotations

# Chosen by measurement on ../shared/data/photos (benchmarks/photos_end_to_end.py): YuNet finds every
# face MTCNN finds there and runs several times faster; see README "Face detection and alignment".
DEFAULT_DETECTOR = "yunet"

DEFAULT_CHUNK_SIZE = 256
"""Inputs per saved chunk of an extraction run: small enough to lose little to an interruption, large
enough to keep batches full."""
