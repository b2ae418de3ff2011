"""Extraction as a long job: faces become rows (``rows``), rows go to a locked, resumable, sharded run (``run``).

``Extractor`` (in ``deepfever.api``) turns inputs into rows; ``ExtractionRun`` owns everything around
that which makes a large job safe: inputs, chunks, the parts folder and its manifest, the lock, resume
and the merge into one output. The CLI, Python users and ``torchrun`` ranks all use the same object.

Example:
    >>> from deepfever import Extractor
    >>> from deepfever.extraction import ExtractionRun
    >>> report = ExtractionRun(Extractor(), "faces.parquet", resume=True).run(["photos/"])  # doctest: +SKIP
"""
from deepfever.io.lock import RunLock, RunLockedError
from deepfever.extraction.run import DEFAULT_CHUNK_SIZE, ExtractionRun, OutputNotWritableError

__all__ = ["DEFAULT_CHUNK_SIZE", "ExtractionRun", "OutputNotWritableError", "RunLock", "RunLockedError"]
