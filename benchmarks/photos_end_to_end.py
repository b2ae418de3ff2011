"""End-to-end throughput on the shared photos: decode + detect + align + embed, per detector, in one run.

Each detector gets the same number of timed passes, interleaved, so machine load hits all alike; the
best pass counts. It also checks that every face MTCNN finds (the old default) is found by the others
(box IoU > 0.5) — the default detector was chosen on this (README, "Face detection and alignment").
Target (issue 10): the default detector >= 3x MTCNN's images/s, finding every face MTCNN finds (17).
Run: .venv/bin/python benchmarks/photos_end_to_end.py [--detectors yunet mtcnn] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.faces.detect import DEFAULT_DETECTOR
from deepfever.models import DEFAULT_MODEL
from deepfever.pipeline import ExtractionReport

PHOTOS = SHARED / "data" / "photos"


def missed(reference: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Faces of ``reference`` with no box in ``table`` overlapping it by IoU > 0.5, as 'path#face'."""
    lost = []
    columns = ["box_x1", "box_y1", "box_x2", "box_y2"]
    for _, face in reference.iterrows():
        a = face[columns].to_numpy(float)
        others = table.loc[table["path"] == face["path"], columns].to_numpy(float)
        inter = (np.clip(np.minimum(a[2], others[:, 2]) - np.maximum(a[0], others[:, 0]), 0, None)
                 * np.clip(np.minimum(a[3], others[:, 3]) - np.maximum(a[1], others[:, 1]), 0, None))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
        if not len(others) or (inter / union).max() <= 0.5:
            lost.append(f"{face['path']}#{face['face']}")
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--detectors", nargs="+", default=[DEFAULT_DETECTOR, "mtcnn"], choices=("yunet", "mtcnn"))
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per detector after one warm-up pass")
    args = parser.parse_args()
    extractors = {name: Extractor(model=args.model, detector=name) for name in args.detectors}
    tables = {name: extractor.extract([PHOTOS]) for name, extractor in extractors.items()}  # warm-up: weights, first calls
    runs: dict[str, list[dict]] = {name: [] for name in args.detectors}
    for _ in range(args.repeats):
        for name, extractor in extractors.items():
            cpu = time.process_time()
            tables[name] = extractor.extract([PHOTOS])
            report = ExtractionReport.of_table(tables[name])
            # CPU seconds (all threads) are less sensitive than wall time to other jobs on the machine.
            runs[name].append({"images": report.images, "faces": report.faces, "seconds": round(report.seconds, 3),
                               "cpu_seconds": round(time.process_time() - cpu, 3),
                               "images_per_second": round(report.images_per_second, 2)})
    result = {"model": extractors[args.detectors[0]].fingerprint_["model_id"], "default_detector": DEFAULT_DETECTOR}
    for name in args.detectors:
        result[name] = {"runs": runs[name], "best_images_per_second": max(run["images_per_second"] for run in runs[name]),
                        "faces": len(tables[name]), "failures": tables[name].attrs["failures"]}
        if name != "mtcnn" and "mtcnn" in tables:
            result[name]["mtcnn_faces_missed"] = missed(tables["mtcnn"], tables[name])
    if "mtcnn" in result and DEFAULT_DETECTOR in result and DEFAULT_DETECTOR != "mtcnn":
        result["default_speedup_vs_mtcnn"] = round(
            result[DEFAULT_DETECTOR]["best_images_per_second"] / result["mtcnn"]["best_images_per_second"], 2)
    save_result(result_name("photos_end_to_end", args.model), result)


if __name__ == "__main__":
    main()
