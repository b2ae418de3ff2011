"""Embedding throughput: aligned crops in, vectors out, on this machine's CPU threads.

Target (issue 2): >= 500 faces/s at batch 64 on 2 CPU cores.
Run: .venv/bin/python benchmarks/embed_throughput.py [--model NAME] [--batch-size 64] [--seconds 10]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import result_name, save_result
from deepfever import Extractor
from deepfever.models import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    extractor = Extractor(model=args.model, batch_size=args.batch_size).load()
    size = extractor.model_.config.input_size
    crops = np.random.default_rng(0).integers(0, 256, (args.batch_size, size, size, 3), dtype=np.uint8)
    for _ in range(3):
        extractor.embed(crops)
    batches, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        extractor.embed(crops)
        batches += 1
    elapsed = time.perf_counter() - started
    save_result(result_name("embed_throughput", args.model), {
        "model": extractor.fingerprint_["model_id"], "batch_size": args.batch_size,
        "faces_per_second": batches * args.batch_size / elapsed, "batches": batches, "seconds": elapsed,
    })


if __name__ == "__main__":
    main()
