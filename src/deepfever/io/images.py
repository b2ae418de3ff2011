"""Decode any image a user may hand us into an RGB uint8 array, or say clearly why not."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfever.errors import ImageReadError

# Decompression-bomb guard: 80 megapixels covers every camera we know of (a 4352x2903 photo is
# 12.6 MP) while refusing crafted files that would expand to gigabytes.
MAX_IMAGE_PIXELS = 80_000_000

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"})


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert grey, 16-bit, palette and alpha images to 8-bit RGB (alpha composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        return background
    return image.convert("RGB")


def load_image(source: str | os.PathLike | np.ndarray | Image.Image) -> np.ndarray:
    """Return an RGB ``uint8`` array of shape (H, W, 3), with EXIF orientation applied.

    Accepts a path, a PIL image or an array (grey ``(H, W)``, RGB or RGBA). Raises
    ``ImageReadError`` with the reason for zero-byte, truncated, non-image or oversized files.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return np.asarray(_to_rgb(ImageOps.exif_transpose(source)))
    path = Path(source)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limit below gives the message; PIL's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageReadError(
                        f"{path}: {width}x{height} pixels exceeds the limit of {MAX_IMAGE_PIXELS:,}"
                        " (possible decompression bomb); resize it first"
                    )
                image.load()
                return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{path}: image exceeds the limit of {MAX_IMAGE_PIXELS:,} pixels ({error})") from error
    except UnidentifiedImageError as error:
        raise ImageReadError(f"{path}: not a readable image ({error.__class__.__name__})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: corrupt or truncated image ({error})") from error


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageReadError(f"load_image: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])
