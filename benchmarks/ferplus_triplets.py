"""Triplet accuracy on FER+ FER2013Valid vote triplets: does the embedding pick the raters' odd one out?

Triplets come from the 10-rater vote distributions (``deepfever.data.triplets.vote_triplets``, fixed
seed); the prediction is the face outside the closest pair by embedding distance. Reports the
model, and raw pixels (each crop standardised, flattened) as the baseline.
Target (issue 3): >= 80 % for the recipe model; raw pixels ~35 %.
Run: .venv/bin/python benchmarks/ferplus_triplets.py [--model NAME_OR_PATH | --checkpoint runs/X/checkpoints/last.safetensors]
"""
from __future__ import annotations

import argparse

import numpy as np

from _common import SHARED, result_name, save_result
from deepfever.data.arrays import load_crop_array
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.triplets import ferplus_vote_triplets, triplet_accuracy
from deepfever.models import DEFAULT_MODEL, load_model
from deepfever.training.state import load_checkpoint_model


def raw_pixel_embeddings(crops: np.ndarray) -> np.ndarray:
    flat = crops.reshape(len(crops), -1).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=DEFAULT_MODEL, help="packaged name or .safetensors model file")
    source.add_argument("--checkpoint", help="a training checkpoint (checkpoints/last.safetensors) instead of a model file")
    parser.add_argument("--root", default=str(SHARED / "data" / "ferplus"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--flip-tta", action="store_true")
    args = parser.parse_args()
    model = load_checkpoint_model(args.checkpoint) if args.checkpoint else load_model(args.model)
    samples, triplets = ferplus_vote_triplets(args.root, "valid", args.count, args.seed, args.margin)
    crops = load_crop_array(samples, model.config.input_size, model.config.in_chans)
    embeddings = predict_arrays(model, crops, flip_tta=args.flip_tta)["embedding"]
    save_result(result_name("ferplus_triplets", args.checkpoint or args.model), {
        "model": args.checkpoint or args.model, "split": "valid", "images": len(samples), "seed": args.seed,
        "margin": args.margin, "flip_tta": args.flip_tta, "type_counts": triplets.type_counts(),
        "model_embedding": triplet_accuracy(embeddings, triplets),
        "raw_pixels": triplet_accuracy(raw_pixel_embeddings(crops), triplets),
    })


if __name__ == "__main__":
    main()
