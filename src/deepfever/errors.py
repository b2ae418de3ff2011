"""Exceptions that tell the user what was expected, what was received and how to fix it.

Each error also subclasses the built-in it refines, so ``except ValueError`` keeps working.
"""


class DeepFeverError(Exception):
    """Base class of every error raised on purpose by deepfever."""


class ImageReadError(DeepFeverError, ValueError):
    """A file could not be decoded as an image (corrupt, truncated, not an image, too large)."""


class WeightsUnavailableError(DeepFeverError, RuntimeError):
    """Model files are not in the local cache and could not be fetched."""


class DataFormatError(DeepFeverError, ValueError):
    """A dataset file does not follow its official format."""


class HeadUnavailableError(DeepFeverError, KeyError):
    """The model has no trained head of that name, so it cannot report it."""
