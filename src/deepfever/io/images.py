"""Decode any image a user may hand us into an RGB uint8 array, or say clearly why not."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfever.defaults import MAX_IMAGE_PIXELS  # the decompression-bomb guard; 80 MP covers every camera we know of
from deepfever.errors import ImageReadError
from deepfever.io.names import is_utf8_name, printable_name

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"})


def as_uint8_pixels(pixels: np.ndarray, caller: str = "load_image") -> np.ndarray:
    """The one pixel-value converter: any array of pixels (an image or a stack of crops) as ``uint8``, shape kept.

    ``uint8`` passes unchanged, ``uint16`` is scaled from its full range (65535 -> 255), integer arrays
    of another dtype are accepted when every value lies in [0, 255]. Floats are refused: whether they
    mean [0, 1] or [0, 255] cannot be told from the values. ``caller`` names the entry point in errors.
    """
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"{caller}: expected a numpy array, got {type(pixels).__name__}; use deepfever.io.load_image(path)")
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.floating):
        raise ImageReadError(
            f"{caller}: got a {pixels.dtype} image; expected uint8 in [0, 255] (or uint16). Floats are ambiguous: "
            "pass (x * 255).round().astype(np.uint8) for values in [0, 1], or x.round().astype(np.uint8) for [0, 255]"
        )
    if not np.issubdtype(pixels.dtype, np.integer) or (pixels.size and (pixels.min() < 0 or pixels.max() > 255)):
        raise ImageReadError(f"{caller}: got dtype {pixels.dtype} with values outside [0, 255]; expected uint8 "
                             "(or uint16); scale the values to [0, 255] and pass .astype(np.uint8)")
    return pixels.astype(np.uint8)


def as_rgb_uint8(image: np.ndarray, caller: str = "load_image") -> np.ndarray:
    """The one converter of image arrays: RGB ``uint8`` (H, W, 3), contiguous, or an error saying what to pass.

    Pixel values go through ``as_uint8_pixels``; grey (H, W) and (H, W, 1) become RGB, alpha is dropped.
    """
    image = as_uint8_pixels(image, caller)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ImageReadError(f"{caller}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert grey, 16-bit, palette and alpha images to 8-bit RGB (alpha composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.dtype != np.uint16:  # mode I (32-bit) holds 16-bit PNGs in some Pillow versions
            array = np.clip(array, 0, 65535).astype(np.uint16)
        image = Image.fromarray(as_rgb_uint8(array, "load_image"))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        return background
    return image.convert("RGB")


class CorruptImageError(ImageReadError):
    """The file is an image format but its data is damaged or cut short (as opposed to not an image at all)."""


class NotAnImageError(ImageReadError):
    """The file or bytes are in no image format we can read."""


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than the limit (read from its header, before decoding)."""


def load_image(source: str | os.PathLike | bytes | np.ndarray | Image.Image, max_pixels: int = MAX_IMAGE_PIXELS,
               name: str | None = None) -> np.ndarray:
    """Return an RGB ``uint8`` array of shape (H, W, 3), with EXIF orientation applied.

    The one decoder of the package, and the one decompression-bomb guard: accepts a path, the bytes
    of a file (downloaded or uploaded), a PIL image or an array (grey ``(H, W)``, RGB or RGBA; see
    ``as_rgb_uint8``). Files and bytes above ``max_pixels`` are refused from their header, before
    decoding. ``name`` labels bytes in messages (default ``<downloaded bytes>``).
    Raises ``ImageReadError`` with the reason: ``ImageTooLargeError`` above the limit,
    ``NotAnImageError`` for no image format, ``CorruptImageError`` for damaged or truncated data, the
    base class for missing or zero-byte files, for arrays of the wrong dtype or shape, and for a file
    name that is not UTF-8 (no table could name the rows it gives; the message shows it escaped).

    Example:
        >>> load_image(uploaded_bytes, max_pixels=40_000_000, name="photo.jpg").shape  # doctest: +SKIP
        (1080, 1920, 3)
    """
    if isinstance(source, np.ndarray):
        return as_rgb_uint8(source)
    if isinstance(source, Image.Image):
        return np.asarray(_to_rgb(ImageOps.exif_transpose(source)))
    if isinstance(source, (bytes, bytearray)):
        path, opened = name or "<downloaded bytes>", io.BytesIO(source)
        if not source:
            raise ImageReadError(f"{path}: empty (0 bytes)")
    else:
        path = opened = Path(source)
        if not is_utf8_name(path):
            raise ImageReadError(f"{printable_name(path)}: the file name is not valid UTF-8, so no table can name its rows; "
                                 "rename the file (convmv converts a folder of names)")
        if not path.is_file():
            raise ImageReadError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limit below gives the message; PIL's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(opened) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels:,}"
                        " (possible decompression bomb); resize it first"
                    )
                image.load()
                return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{path}: image exceeds the limit of {max_pixels:,} pixels ({error})") from error
    except UnidentifiedImageError as error:
        raise NotAnImageError(f"{path}: not a readable image ({error.__class__.__name__})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"{path}: corrupt or truncated image ({error})") from error
