"""End-to-end throughput on the shared photos: decode + detect + align + embed, per detector.

Run: .venv/bin/python benchmarks/photos_end_to_end.py [--detector mtcnn] [--repeats 2]
"""
from __future__ import annotations

import argparse

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.models import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--detector", default="mtcnn", choices=("mtcnn", "yunet"))
    parser.add_argument("--repeats", type=int, default=2, help="timed passes after one warm-up pass")
    args = parser.parse_args()
    options = {"model_path": str(SHARED / "models" / "face_detection_yunet_2026may.onnx")} if args.detector == "yunet" else None
    extractor = Extractor(model=args.model, detector=args.detector, detector_options=options)
    photos = SHARED / "data" / "photos"
    table = extractor.extract([photos])  # warm-up: loads weights, first-call overheads
    runs = []
    for _ in range(args.repeats):
        table = extractor.extract([photos])
        report = extractor.report_
        runs.append({"images": report.images, "faces": report.faces, "seconds": report.seconds,
                     "images_per_second": report.images_per_second})
    best = min(runs, key=lambda run: run["seconds"])
    save_result(result_name(f"photos_end_to_end_{args.detector}", args.model), {
        "detector": args.detector, "model": extractor.fingerprint_["model_id"], "runs": runs,
        "best_images_per_second": best["images_per_second"], "faces_per_image": table.groupby("path").size().to_dict(),
        "failures": table.attrs["failures"],
    })


if __name__ == "__main__":
    main()
