"""Dataset formats by name. Importing this package registers every format."""
from deepfever.data.formats import affectnet, ckplus, expw, fec, fer2013, ferplus, generic, jaffe, rafdb  # noqa: F401  (registration side effect)
from deepfever.data.formats.base import DatasetSplit, NO_LABEL, Sample, list_formats, read_dataset, register_format

__all__ = ["DatasetSplit", "NO_LABEL", "Sample", "list_formats", "read_dataset", "register_format"]
