"""What expression vectors are for: compare faces, find similar ones, map them.

How much identity leaks into the vectors is measured in ``deepfever.evaluation.identity``.

Example:
    >>> from deepfever import Extractor
    >>> from deepfever.applications import compare_faces
    >>> compare_faces(Extractor(), "a.jpg", "b.jpg")["cosine_similarity"]  # doctest: +SKIP
"""
from deepfever.applications.compare import (
    ReferenceDistances,
    compare_faces,
    compare_vectors,
    load_reference,
    odd_one_out,
    odd_one_out_vectors,
)
from deepfever.applications.maps import plot_map, project_2d
from deepfever.applications.search import FaceIndex, IndexMismatchError, build_index, load_index, save_index

__all__ = [
    "FaceIndex",
    "IndexMismatchError",
    "ReferenceDistances",
    "build_index",
    "compare_faces",
    "compare_vectors",
    "load_index",
    "load_reference",
    "odd_one_out",
    "odd_one_out_vectors",
    "plot_map",
    "project_2d",
    "save_index",
]
