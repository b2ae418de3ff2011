"""End to end on a GPU against this machine's CPU, in one run: photos/s on the shared photos and frames/s
on every frame of the shared clip, with the default detector (which follows ``--device``).

On CUDA the embedder and MTCNN run in torch on the GPU and YuNet in ONNX Runtime's CUDA provider when
``onnxruntime-gpu`` is installed (``detector_engine`` in the result says where it ran).
Run (on a machine with a GPU): .venv/bin/python benchmarks/gpu_end_to_end.py [--repeats 3] [--batch-size 256]
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.models import DEFAULT_MODEL
from deepfever.pipeline import ExtractionReport

PHOTOS = SHARED / "data" / "photos"
CLIP = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"


def measure(extractor: Extractor, repeats: int) -> dict:
    extractor.extract([PHOTOS])  # warm-up: weights, first calls, CUDA context
    photos, frames = [], []
    for _ in range(repeats):
        photos.append(ExtractionReport.of_table(extractor.extract([PHOTOS])).images_per_second)
        report = ExtractionReport.of_table(extractor.extract([CLIP]))
        frames.append(report.videos[0]["frames"] / report.seconds)
    detector = extractor.detector_for()
    return {"device": str(extractor.device_), "detector": detector.name, "detector_engine": getattr(detector, "engine", "torch"),
            "photos_images_per_second": round(max(photos), 2), "video_frames_per_second": round(max(frames), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="faces per model batch on the GPU")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_end_to_end.py: no CUDA device here, nothing measured; run it on a machine with a GPU")
    cpu = measure(Extractor(model=args.model, device="cpu"), args.repeats)
    gpu = measure(Extractor(model=args.model, device="cuda", batch_size=args.batch_size), args.repeats)
    save_result(result_name("gpu_end_to_end", args.model), {
        "gpu": torch.cuda.get_device_name(0), "cpu": cpu, "cuda": gpu,
        "photos_ratio_gpu_to_cpu": round(gpu["photos_images_per_second"] / cpu["photos_images_per_second"], 2),
        "video_ratio_gpu_to_cpu": round(gpu["video_frames_per_second"] / cpu["video_frames_per_second"], 2),
    })


if __name__ == "__main__":
    main()
