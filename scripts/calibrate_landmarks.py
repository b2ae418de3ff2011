"""Fit the landmark calibration (deepfever.faces.calibration) on unlabelled faces both detectors agree on.

For every face found by MTCNN (the template's convention) and by another detector with boxes that
overlap (IoU >= --min-iou), the other detector's landmarks are compared with MTCNN's in the face frame
of the other detector (eye-centre origin, inter-ocular unit, roll removed). Faces are drawn from the
first half of the sorted unlabelled files (the benchmark uses the second) and split (seeded) into a fit
part and a held-out part; the offsets are a robust mean over the fit part and the
residuals are reported on both, plus on the shared photos (a different kind of image, never fitted).
Alignment weights are the inverse residual variance of each landmark after a similarity fit to the
template, iterated (weighted least squares), on the fit part's MTCNN-convention landmarks.

Usage:
    python scripts/calibrate_landmarks.py --unlabelled ../shared/data/unlabeled_faces \
        --photos ../shared/data/photos --n-images 800 --seed 0
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deepfever.faces.align import AlignmentTemplate, estimate_similarity, transform_points
from deepfever.faces.calibration import (CALIBRATION_FILE, LandmarkCalibration, crop_displacement, template_id, to_face_frame,
                                         to_template_convention)
from deepfever.faces.detect import create_detector
from deepfever.faces.template import load_default_template, robust_mean
from deepfever.faces.types import LANDMARK_NAMES, Face
from deepfever.io import atomic_write, load_image

logger = logging.getLogger("calibrate_landmarks")

REFERENCE = "mtcnn"
# Each unlabelled crop is resized so its longer side is drawn log-uniformly from this range: how YuNet's
# landmarks differ from MTCNN's depends on the face's size in pixels (mouth offset 0.01-0.07 inter-ocular
# distances between 160 and 640 px), so the offsets average over the sizes faces come in.
DETECTION_SIDES = (128, 640)
KEEP = 0.9


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def matched_pairs(reference: list[Face], other: list[Face], min_iou: float) -> list[tuple[Face, Face, float]]:
    """Each reference face with the other detector's face of highest box IoU, when that IoU reaches ``min_iou``."""
    pairs = []
    for face in reference:
        scored = [(box_iou(face.box, candidate.box), candidate) for candidate in other]
        if scored:
            iou, best = max(scored, key=lambda item: item[0])
            if iou >= min_iou:
                pairs.append((face, best, iou))
    return pairs


def calibration_half(paths: list[Path]) -> list[Path]:
    """The first half of the sorted unlabelled files: calibration draws only from it, so
    ``benchmarks/face_fidelity.py`` can check detector agreement on the other half."""
    return paths[:len(paths) // 2]


def detect_unlabelled(path: Path, side: float, detectors: dict) -> dict[str, list[Face]]:
    """Faces of one unlabelled crop resized to a ``side``-px longer side (coordinates stay in the resized image)."""
    image = load_image(path)
    factor = side / max(image.shape[:2])
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA)
    return {name: detector.detect(big) for name, detector in detectors.items()}


def residuals(other: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(K, 5) distances in inter-ocular units between matched landmark sets (K, 5, 2), in the reference's frame."""
    return np.stack([np.linalg.norm(to_face_frame(o, r) - to_face_frame(r, r), axis=1) for o, r in zip(other, reference)])


def residual_summary(other: np.ndarray, reference: np.ndarray) -> dict:
    """Mean landmark distance (inter-ocular units), overall and per landmark; ``n`` faces."""
    distance = residuals(other, reference)
    return {"n": int(len(distance)), "mean": round(float(distance.mean()), 4),
            "per_landmark": {name: round(float(value), 4) for name, value in zip(LANDMARK_NAMES, distance.mean(axis=0))}}


def mean_crop_displacement(other: np.ndarray, reference: np.ndarray, template: AlignmentTemplate, weights: np.ndarray | None) -> float:
    """Mean ``crop_displacement`` (crop pixels) between the two detectors' alignments of each face."""
    return round(float(np.mean([crop_displacement(estimate_similarity(o, template.array, weights),
                                                  estimate_similarity(r, template.array, weights), template.size)
                                for o, r in zip(other, reference)])), 4)


def fit_weights(landmarks: np.ndarray, template: AlignmentTemplate) -> tuple[np.ndarray, list[float]]:
    """Inverse-variance weights of the five landmarks for the alignment fit.

    Each landmark's variance is how far it falls from the template when the face is aligned on the
    other four (leave-one-out): a point's own residual after a fit that includes it shrinks as its
    weight grows, so iterating on those would end with the eyes alone. Returns the weights (mean 1)
    and the per-landmark leave-one-out RMS in template pixels.
    """
    variance = np.zeros(5)
    for index in range(5):
        others = np.arange(5) != index
        errors = [transform_points(estimate_similarity(points[others], template.array[others]), points[index:index + 1])[0]
                  - template.array[index] for points in landmarks]
        variance[index] = (np.asarray(errors) ** 2).sum(axis=1).mean()
    weights = (1 / variance) / (1 / variance).mean()
    return weights, [round(float(value), 4) for value in np.sqrt(variance)]


def collect(args: argparse.Namespace, detectors: dict) -> tuple[dict, dict]:
    """Matched (other, reference) landmark arrays per detector for unlabelled faces and for photos, plus counts."""
    paths = calibration_half(sorted(Path(args.unlabelled).glob(args.pattern)))
    if not paths:
        raise FileNotFoundError(f"calibrate_landmarks: no {args.pattern} under --unlabelled {args.unlabelled}")
    rng = np.random.default_rng(args.seed)
    sample = [paths[i] for i in sorted(rng.choice(len(paths), size=min(args.n_images, len(paths)), replace=False))]
    others = [name for name in detectors if name != REFERENCE]
    pairs: dict = {"unlabelled": {name: ([], [], []) for name in others}, "photos": {name: ([], [], []) for name in others}}
    counts = {"unlabelled_images": len(sample), "found": {name: 0 for name in detectors}}
    start = time.perf_counter()
    sides = np.exp(rng.uniform(*np.log(DETECTION_SIDES), len(sample)))
    sources = [("unlabelled", path, detect_unlabelled(path, side, detectors)) for path, side in zip(sample, sides)]
    photo_paths = sorted(Path(args.photos).glob("*.jpg")) if args.photos else []
    for path in photo_paths:
        image = load_image(path)
        sources.append(("photos", path, {name: detector.detect(image) for name, detector in detectors.items()}))
    counts["photos"] = len(photo_paths)
    for kind, path, faces in sources:
        if kind == "unlabelled":
            for name, found in faces.items():
                counts["found"][name] += bool(found)
        for name in others:
            for reference, other, _ in matched_pairs(faces[REFERENCE], faces[name], args.min_iou):
                if reference.score >= args.min_score:
                    pairs[kind][name][0].append(other.landmarks.astype(np.float64))
                    pairs[kind][name][1].append(reference.landmarks.astype(np.float64))
                    pairs[kind][name][2].append(path.name)
    logger.info("detected %d images in %.0f s", len(sources), time.perf_counter() - start)
    return pairs, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlabelled", type=Path, default=Path("../shared/data/unlabeled_faces"))
    parser.add_argument("--pattern", default="*.jpg", help="file pattern of the face images under --unlabelled")
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"), help="held-out check only")
    parser.add_argument("--detectors", nargs="+", default=["yunet"], help="detectors to calibrate onto MTCNN's convention")
    parser.add_argument("--out", type=Path, default=Path("src/deepfever/faces") / CALIBRATION_FILE)
    parser.add_argument("--n-images", type=int, default=800)
    parser.add_argument("--held-out", type=float, default=0.3, help="share of matched unlabelled faces kept out of the fit")
    parser.add_argument("--min-iou", type=float, default=0.5)
    parser.add_argument("--min-score", type=float, default=0.95, help="minimum MTCNN score of a face used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if REFERENCE in args.detectors or "none" in args.detectors:
        parser.error(f"--detectors: {REFERENCE} and none are the template's own convention; pass other detectors")
    template = load_default_template()
    detectors = {name: create_detector(name) for name in [REFERENCE, *args.detectors]}
    pairs, counts = collect(args, detectors)
    rng = np.random.default_rng(args.seed + 1)
    offsets, report, fit_reference = {}, {}, []
    for name in args.detectors:
        other, reference, names = (np.asarray(part) if i < 2 else part for i, part in enumerate(pairs["unlabelled"][name]))
        if len(other) < 20:
            raise RuntimeError(f"calibrate_landmarks: only {len(other)} unlabelled faces matched between {REFERENCE} and {name};"
                               " pass more --n-images or a lower --min-iou")
        order = rng.permutation(len(other))
        held = order[:round(len(other) * args.held_out)]
        fit = np.sort(order[len(held):])
        differences = np.stack([to_face_frame(r, o) - to_face_frame(o, o) for o, r in zip(other[fit], reference[fit])])
        offsets[name] = robust_mean(differences, KEEP)
        calibration = LandmarkCalibration(template_id(template), offsets, np.ones(5))
        photos_other, photos_reference = (np.asarray(part) for part in pairs["photos"][name][:2])
        entry = {"matched_unlabelled": int(len(other)), "fit_faces": int(len(fit)), "held_out_faces": int(len(held)),
                 "matched_photo_faces": int(len(photos_other))}
        for part, (o, r) in {"fit": (other[fit], reference[fit]), "held_out": (other[held], reference[held]),
                             "photos": (photos_other, photos_reference)}.items():
            if len(o) == 0:
                continue
            mapped = np.stack([to_template_convention(points, name, calibration) for points in o])
            entry[f"residual_{part}"] = {"before": residual_summary(o, r), "after": residual_summary(mapped, r)}
        fit_reference.append(reference[fit])
        fit_reference.append(np.stack([to_template_convention(points, name, calibration) for points in other[fit]]))
        report[name] = (entry, other, reference, held, photos_other, photos_reference)
    weights, rms = fit_weights(np.concatenate(fit_reference), template)
    calibration = LandmarkCalibration(template_id(template), offsets, weights)
    detectors_report = {}
    for name, (entry, other, reference, held, photos_other, photos_reference) in report.items():
        for part, (o, r) in {"held_out": (other[held], reference[held]), "photos": (photos_other, photos_reference)}.items():
            if len(o) == 0:
                continue
            mapped = np.stack([to_template_convention(points, name, calibration) for points in o])
            entry[f"crop_displacement_{part}_px"] = {
                "raw": mean_crop_displacement(o, r, template, None), "calibrated": mean_crop_displacement(mapped, r, template, None),
                "weighted": mean_crop_displacement(o, r, template, weights), "calibrated_weighted": mean_crop_displacement(mapped, r, template, weights)}
        detectors_report[name] = entry
    provenance = {
        "reference_detector": REFERENCE,
        "frame": "face frame of the detector's own landmarks: origin between the eyes, x along the eye line, unit = inter-ocular distance",
        "source": f"{counts['unlabelled_images']} of the unlabelled faces drawn with numpy default_rng({args.seed}), each resized"
                  f" to a longer side drawn log-uniformly from {DETECTION_SIDES} px; photos only as a held-out check",
        "method": (f"faces found by {REFERENCE} (score >= {args.min_score}) and the detector with box IoU >= {args.min_iou};"
                   f" offsets = mean of the {KEEP:.0%} of fit faces closest to the median difference; weights = inverse"
                   " leave-one-out variance (each landmark's distance from the template when the face is aligned on the other"
                   f" four), mean 1, on the fit faces' {REFERENCE}-convention landmarks"),
        "weights_leave_one_out_rms_px": dict(zip(LANDMARK_NAMES, rms)),
        "found_rate_unlabelled": {name: round(found / counts["unlabelled_images"], 4) for name, found in counts["found"].items()},
        "detectors": detectors_report,
        "command": " ".join(shlex.quote(part) for part in ["python", "scripts/calibrate_landmarks.py", *(sys.argv[1:] if argv is None else argv)]),
        "seed": args.seed,
    }
    calibration = LandmarkCalibration(template_id(template), offsets, weights, provenance)
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
    logger.info("%s", json.dumps(calibration.to_dict(), indent=2))
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
