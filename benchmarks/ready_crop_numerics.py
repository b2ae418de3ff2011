"""How far the one ready-crop path moves pixels and vectors from the old plain resize (issue 16).

Before issue 16, ``data/arrays.py`` resized ready crops with ``cv2.resize(INTER_LINEAR)`` while
``--detector none`` warped them like detected faces (area averaging while shrinking > 2x, then
bilinear). Both now use the warp. This compares, on shared face crops, the old resize + OpenCV grey
with the new path, for square crops (only resampling differs) and others (the old resize stretched them):
mean absolute pixel difference, and the cosine and prediction agreement of the
bundled model's vectors. CK+48 crops are already 48 px, so there the two must be identical.
Run: .venv/bin/python benchmarks/ready_crop_numerics.py [--count 500]
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from _common import SHARED, save_result
from deepfever import Extractor
from deepfever.data.arrays import ready_crop_path
from deepfever.io.images import load_image


def old_crop(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def compare(extractor: Extractor, images: list[np.ndarray], size: int) -> dict:
    path = ready_crop_path(size, 1)
    old = np.stack([old_crop(image, size) for image in images])
    new = np.stack([path.model_crops(path.ready_crop(image)) for image in images])
    a, b = extractor.predict(old), extractor.predict(new)
    cosine = (a["embedding"] * b["embedding"]).sum(1)
    return {"images": len(images), "sizes": sorted({f"{i.shape[1]}x{i.shape[0]}" for i in images}),
            "identical_crops": float((old == new).all(axis=(1, 2)).mean()),
            "mean_abs_pixel_difference": float(np.abs(old.astype(int) - new.astype(int)).mean()),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "same_emotion": float((a["probabilities"].argmax(1) == b["probabilities"].argmax(1)).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    extractor = Extractor(device="cpu").load()
    size = extractor.stage_.crop_size
    faces = [load_image(file) for file in sorted((SHARED / "data" / "unlabeled_faces").glob("*.jpg"))[: args.count]]
    result = {
        # Square crops: only the resampling differs. Others: the old resize stretched them to a square,
        # the warp keeps their proportions (a similarity fit, as for every detected face).
        "unlabeled_faces_square": compare(extractor, [face for face in faces if face.shape[0] == face.shape[1]], size),
        "unlabeled_faces_not_square": compare(extractor, [face for face in faces if face.shape[0] != face.shape[1]], size),
        "ckplus48": compare(extractor, [load_image(file) for file in sorted((SHARED / "data" / "ckplus48").rglob("*.png"))[: args.count]], size),
    }
    save_result("ready_crop_numerics", result)


if __name__ == "__main__":
    main()
