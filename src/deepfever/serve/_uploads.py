"""Uploaded bytes -> RGB array, or a client error whose HTTP status says what kind of problem it is.

The bytes are decoded in memory and never written to disk (the multipart body is parsed into
memory too, see ``serve._edge.InMemoryFormRoute``); the upload's file name is only a label.
The reasons read like the CLI's (``deepfever.io.images.load_image``) so a user sees one vocabulary.
"""
from __future__ import annotations

import numpy as np

from deepfever.errors import DeepFeverError, ImageReadError
from deepfever.io.images import ImageTooLargeError, NotAnImageError, load_image


class ClientInputError(DeepFeverError, ValueError):
    """A request the server refuses because of what it sent; ``status`` is the HTTP code to answer."""

    def __init__(self, status: int, reason: str, failures: list[dict[str, object]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.failures = failures


def decode_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """RGB ``uint8`` (H, W, 3) with EXIF orientation applied, from the bytes of an uploaded image file.

    The package's one decoder (``load_image``) does the work; its reasons become statuses here.
    Raises ``ClientInputError``: 413 above ``max_pixels`` (checked from the header, before decoding),
    415 when the bytes are no image format, 422 when they are empty, truncated or corrupt.
    """
    try:
        return load_image(data, max_pixels=max_pixels, name=name)
    except ImageTooLargeError as error:
        raise ClientInputError(413, str(error)) from error
    except NotAnImageError as error:
        raise ClientInputError(415, f"{error}; send a JPEG, PNG, WebP, BMP, TIFF or GIF file") from error
    except ImageReadError as error:
        raise ClientInputError(422, str(error)) from error
