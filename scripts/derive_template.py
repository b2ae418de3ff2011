"""Derive the default alignment template from FER+ training crops (see deepfever.faces.template).

Usage:
    python scripts/derive_template.py /path/to/ferplus/FER2013Train \
        --out src/deepfever/faces/ferplus_template.json --n-images 3000 --seed 0
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from deepfever.faces.mtcnn import MTCNN
from deepfever.faces.template import detect_upscaled, robust_mean
from deepfever.io import atomic_write, load_image

logger = logging.getLogger("derive_template")

SIZE = 48
UPSCALE = 4
MIN_SCORE = 0.95
KEEP = 0.9


def derive(folder: Path, n_images: int, seed: int) -> dict:
    """Run MTCNN on a seeded sample of crops and return the template JSON record."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"derive_template: no *.png files in {folder}; pass the FER2013Train folder")
    rng = np.random.default_rng(seed)
    sample = [paths[i] for i in sorted(rng.choice(len(paths), size=min(n_images, len(paths)), replace=False))]
    detector = MTCNN()
    found = []
    for index, path in enumerate(sample, 1):
        crop = load_image(path)
        if crop.shape[:2] != (SIZE, SIZE):
            raise ValueError(f"derive_template: expected {SIZE}x{SIZE} crops, {path} is {crop.shape[1]}x{crop.shape[0]}")
        faces = detect_upscaled(detector, crop, UPSCALE)
        if len(faces) == 1 and faces[0].score >= MIN_SCORE:
            found.append(faces[0].landmarks)
        if index % 500 == 0:
            logger.info("%d / %d images, %d usable", index, len(sample), len(found))
    if not found:
        raise RuntimeError("derive_template: MTCNN found no confident single face in any sampled crop")
    landmarks = robust_mean(np.stack(found).astype(np.float64), KEEP)
    return {
        "size": SIZE,
        "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in landmarks],
        "source": f"FER+ FER2013Train, {len(sample)} of {len(paths)} crops drawn with numpy default_rng({seed})",
        "n_images": len(sample),
        "n_used": len(found),
        "method": (
            f"bicubic x{UPSCALE} upscale, deepfever MTCNN (defaults), keep crops with exactly one face of score"
            f" >= {MIN_SCORE}, landmarks mapped back to {SIZE}-px pixel positions; mean of the {KEEP:.0%} of"
            " faces closest (mean point distance) to the per-coordinate median"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="FER2013Train folder with 48x48 PNGs")
    parser.add_argument("--out", type=Path, default=Path("src/deepfever/faces/ferplus_template.json"))
    parser.add_argument("--n-images", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; the nets are tiny, so one thread avoids contention overhead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = derive(args.folder, args.n_images, args.seed)
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s: %d of %d crops used, landmarks %s", args.out, record["n_used"], record["n_images"], record["landmarks"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
