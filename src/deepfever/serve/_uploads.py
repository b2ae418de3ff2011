"""Uploaded bytes -> RGB array, or a client error whose HTTP status says what kind of problem it is.

The bytes are decoded in memory and never written to disk (the multipart body is parsed into
memory too, see ``serve._edge.InMemoryFormRoute``); the upload's file name is only a label.
The reasons read like the CLI's (``deepfever.io.images.load_image``) so a user sees one vocabulary.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from deepfever.errors import DeepFeverError
from deepfever.io.images import load_image


class ClientInputError(DeepFeverError, ValueError):
    """A request the server refuses because of what it sent; ``status`` is the HTTP code to answer."""

    def __init__(self, status: int, reason: str, failures: list[dict[str, object]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.failures = failures


def decode_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """RGB ``uint8`` (H, W, 3) with EXIF orientation applied, from the bytes of an uploaded image file.

    Raises ``ClientInputError``: 413 above ``max_pixels`` (checked from the header, before decoding),
    415 when the bytes are no image format, 422 when they are empty, truncated or corrupt.
    """
    if not data:
        raise ClientInputError(422, f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limit gives the message; PIL's bomb warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ClientInputError(413, f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels:,}; resize it first")
                image.load()
                return load_image(image)
    except ClientInputError:
        raise
    except Image.DecompressionBombError as error:
        raise ClientInputError(413, f"{name}: image exceeds the pixel limit ({error})") from error
    except UnidentifiedImageError as error:
        raise ClientInputError(415, f"{name}: not a readable image ({error.__class__.__name__}); send a JPEG, PNG, WebP, "
                                    "BMP, TIFF or GIF file") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ClientInputError(422, f"{name}: corrupt or truncated image ({error})") from error
