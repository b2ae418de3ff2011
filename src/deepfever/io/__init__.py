"""Reading images and writing outputs safely."""
from deepfever.io.atomic import atomic_write, refuse_overwrite
from deepfever.io.images import MAX_IMAGE_PIXELS, load_image

__all__ = ["MAX_IMAGE_PIXELS", "atomic_write", "load_image", "refuse_overwrite"]
