"""Face-path fidelity: do detected, aligned faces give the model what the ready crops give it? (issue 16)

(a) Placed faces: labelled 48x48 crops (FER2013Valid with FER+ majority labels; CK+48's 6 shared
    classes) are pasted into synthetic photos (640x480; bicubic upscale 3-6x, shift, rotation within
    +-20 degrees, one of four background kinds, JPEG quality 60-95). Per face path: the share of faces
    found (a detection whose landmarks lie within 0.5 inter-ocular distances of the true ones),
    accuracy (a face not found counts as wrong), and the cosine / prediction agreement of its vector
    with the ready-crop vector (the ``none`` path on the original crop). ``oracle`` aligns with the
    true landmarks: the loss from resampling and JPEG alone.
(b) Stability: the same placed face shifted (<= 4 px), scaled (+-5 %), rotated (+-3 degrees) and all
    three at once, same background and JPEG quality -> vector cosine and prediction agreement with the
    unperturbed placement, over faces found in both.
(c) Cross-detector agreement on real images (the shared photos; unlabelled faces from the half that
    the landmark calibration never saw, upscaled to 320 px): faces found by both detectors (landmarks
    within 0.5 inter-ocular distances) -> vector cosine and prediction agreement between paths.
Speed: detector-only faces/s on the synthetic photos (one thread, OpenCV/torch as configured).

Face paths: a detector's raw landmarks, ``calibrated`` (mapped onto the template's MTCNN convention,
``deepfever.faces.calibration``), ``weighted`` (alignment weights), or both.
Run: .venv/bin/python benchmarks/face_fidelity.py [--limit 400] [--stability-limit 100] [--seed 0]
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from _common import RESULTS, SHARED, result_name, save_result
from deepfever.api import Extractor
from deepfever.data.formats import read_dataset
from deepfever.data.labels import EMOTIONS
from deepfever.evaluation.transfer import CKPLUS_SHARED_CLASSES
from deepfever.faces.align import AlignmentTemplate, align_face, estimate_similarity, transform_points
from deepfever.faces.calibration import LandmarkCalibration, crop_displacement, landmarks_for_alignment, load_calibration
from deepfever.faces.detect import DEFAULT_DETECTOR, create_detector
from deepfever.faces.types import Face
from deepfever.io import atomic_write, load_image
from deepfever.models import DEFAULT_MODEL

CANVAS = (480, 640)  # height, width
FOUND_WITHIN = 0.5  # inter-ocular distances between a detection's landmarks and the true ones
UNLABELLED_SIDE = 320


@dataclass(frozen=True)
class FacePath:
    """One way from a detection to a crop."""

    name: str
    detector: str
    calibrate: bool
    weighted: bool


PATHS = (
    FacePath("mtcnn", "mtcnn", False, False),
    FacePath("mtcnn_weighted", "mtcnn", False, True),
    FacePath("yunet", "yunet", False, False),
    FacePath("yunet_calibrated", "yunet", True, False),
    FacePath("yunet_weighted", "yunet", False, True),
    FacePath("yunet_calibrated_weighted", "yunet", True, True),
)


@dataclass(frozen=True)
class Placement:
    """Where a crop goes in a synthetic photo and how the photo looks."""

    scale: float
    angle: float
    centre: tuple[float, float]
    background: int
    background_seed: int
    quality: int


def random_placement(rng: np.random.Generator) -> Placement:
    scale, angle = float(rng.uniform(3, 6)), float(rng.uniform(-20, 20))
    half = 48 * scale * 0.75  # half the rotated crop's extent, at most
    centre = (float(rng.uniform(half, CANVAS[1] - half)), float(rng.uniform(half, CANVAS[0] - half)))
    return Placement(scale, angle, centre, int(rng.integers(4)), int(rng.integers(2**31)), int(rng.integers(60, 96)))


def background(kind: int, seed: int) -> np.ndarray:
    """One of four backgrounds: flat colour, linear gradient, blurred colour noise, stripes."""
    rng = np.random.default_rng(seed)
    height, width = CANVAS
    colour = rng.uniform(0, 255, 3)
    if kind == 0:
        return np.broadcast_to(colour, (height, width, 3)).astype(np.uint8)
    if kind == 1:
        ramp = np.linspace(0, 1, width)[None, :, None]
        return np.broadcast_to(colour * ramp + rng.uniform(0, 255, 3) * (1 - ramp), (height, width, 3)).astype(np.uint8)
    if kind == 2:
        noise = rng.uniform(0, 255, (height // 8, width // 8, 3)).astype(np.float32)
        return cv2.GaussianBlur(cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 3).clip(0, 255).astype(np.uint8)
    period = rng.uniform(10, 60)
    stripes = (np.sin(np.arange(width) / period * 2 * np.pi)[None, :, None] > 0)
    return np.broadcast_to(np.where(stripes, colour, 255 - colour), (height, width, 3)).astype(np.uint8)


def place(crop: np.ndarray, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic photo (RGB uint8) and the (2, 3) matrix taking crop pixels to photo pixels."""
    matrix = cv2.getRotationMatrix2D((23.5, 23.5), placement.angle, placement.scale)
    matrix[:, 2] += np.asarray(placement.centre) - 23.5
    size = (CANVAS[1], CANVAS[0])
    face = cv2.warpAffine(crop, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    mask = cv2.warpAffine(np.ones((48, 48), np.float32), matrix, size, flags=cv2.INTER_LINEAR)[..., None]
    photo = (face * mask + background(placement.background, placement.background_seed) * (1 - mask)).clip(0, 255).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, placement.quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy(), matrix


def nearest_face(faces: list[Face], truth: np.ndarray) -> Face | None:
    """The detection whose landmarks lie closest to ``truth`` (5, 2), if within ``FOUND_WITHIN`` inter-ocular distances."""
    interocular = float(np.linalg.norm(truth[1] - truth[0]))
    scored = [(float(np.linalg.norm(face.landmarks - truth, axis=1).mean()), face) for face in faces]
    distance, face = min(scored, key=lambda item: item[0], default=(np.inf, None))
    return face if distance <= FOUND_WITHIN * interocular else None


def path_landmarks(path: FacePath, landmarks: np.ndarray, template: AlignmentTemplate, calibration: LandmarkCalibration) -> np.ndarray:
    """Landmarks ``align_face`` needs for this face path."""
    if not (path.calibrate or path.weighted):
        return landmarks
    return landmarks_for_alignment(landmarks, path.detector, template, calibration, calibrate=path.calibrate, weighted=path.weighted)


class Runner:
    """Detectors, model and template shared by every part; detector time is accumulated for the speed table."""

    def __init__(self, model: str, calibration: LandmarkCalibration) -> None:
        self.calibration = calibration
        self.extractor = Extractor(model=model, batch_size=256).load()
        self.template = self.extractor.template_
        self.detectors = {name: create_detector(name) for name in sorted({path.detector for path in PATHS})}
        self.detect_seconds = {name: 0.0 for name in self.detectors}
        self.detect_images = {name: 0 for name in self.detectors}

    def detect(self, image: np.ndarray) -> dict[str, list[Face]]:
        found = {}
        for name, detector in self.detectors.items():
            start = time.perf_counter()
            found[name] = detector.detect(image)
            self.detect_seconds[name] += time.perf_counter() - start
            self.detect_images[name] += 1
        return found

    def crops(self, image: np.ndarray, faces: dict[str, Face | None]) -> dict[str, np.ndarray | None]:
        """Each path's crop of one face (None where its detector missed it)."""
        return {path.name: None if faces[path.detector] is None else
                align_face(image, path_landmarks(path, faces[path.detector].landmarks, self.template, self.calibration), self.template)
                for path in PATHS}

    def predict(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not crops:
            return np.zeros((0, 1), np.float32), np.zeros((0,), np.int64)
        result = self.extractor.predict(np.stack(crops))
        return result["embedding"], result["probabilities"].argmax(1)


def predict_paths(runner: Runner, crops: list[dict[str, np.ndarray | None]]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per path: found mask (N,), embeddings (N, D) and predictions (N,) with zeros / -1 where not found."""
    out = {}
    for name in crops[0]:
        found = np.array([item[name] is not None for item in crops])
        vectors, labels = runner.predict([item[name] for item in crops if item[name] is not None])
        full_vectors = np.zeros((len(crops), vectors.shape[1]), np.float32)
        full_labels = np.full(len(crops), -1)
        full_vectors[found], full_labels[found] = vectors, labels
        out[name] = (found, full_vectors, full_labels)
    return out


def paired_interval(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> list[float]:
    """95 % paired-bootstrap interval of mean(a) - mean(b), in points."""
    index = rng.integers(0, len(a), (n, len(a)))
    differences = (a[index].mean(1) - b[index].mean(1)) * 100
    return [round(float(v), 2) for v in np.percentile(differences, [2.5, 97.5])]


def placed_faces(runner: Runner, name: str, crops: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Part (a) for one dataset."""
    rng = np.random.default_rng(seed)
    reference_vectors, reference_labels = runner.predict(list(crops))
    items, displacement = [], {path.name: [] for path in PATHS}
    for crop in crops:
        photo, matrix = place(crop, random_placement(rng))
        truth = transform_points(matrix, runner.template.array)
        detected = runner.detect(photo)
        faces = {detector: nearest_face(found, truth) for detector, found in detected.items()}
        item = runner.crops(photo, faces)
        item["oracle"] = align_face(photo, truth, runner.template)
        items.append(item)
        oracle_matrix = estimate_similarity(truth, runner.template.array)
        for path in PATHS:
            if faces[path.detector] is not None:
                points = path_landmarks(path, faces[path.detector].landmarks, runner.template, runner.calibration)
                displacement[path.name].append(crop_displacement(estimate_similarity(points, runner.template.array), oracle_matrix, runner.template.size))
    predictions = predict_paths(runner, items)
    correct_reference = (reference_labels == labels).astype(np.float64)
    result = {"n": int(len(crops)), "ready_crop_accuracy": round(float(correct_reference.mean()), 4), "paths": {}}
    interval_rng = np.random.default_rng(seed + 1)
    for path_name, (found, vectors, predicted) in predictions.items():
        correct = (predicted == labels).astype(np.float64)
        cosine = (vectors[found] * reference_vectors[found]).sum(1)
        result["paths"][path_name] = {
            "found_rate": round(float(found.mean()), 4),
            "accuracy": round(float(correct.mean()), 4),
            "accuracy_minus_ready_crop_points": round(float((correct.mean() - correct_reference.mean()) * 100), 2),
            "accuracy_minus_ready_crop_ci95": paired_interval(correct, correct_reference, interval_rng),
            "cosine_to_ready_crop": round(float(cosine.mean()), 4),
            "agreement_with_ready_crop": round(float((predicted[found] == reference_labels[found]).mean()), 4),
            # how far the path's crop is from the ready crop's framing (template on the true landmarks); median: a few wrong
            # detections would dominate a mean
            "crop_error_median_px": round(float(np.median(displacement[path_name])), 3) if path_name in displacement else 0.0,
        }
    mtcnn_correct = (predictions["mtcnn"][2] == labels).astype(np.float64)
    common = np.logical_and.reduce([predictions[path.name][0] for path in PATHS])  # found by every detector
    mtcnn_cosine = (predictions["mtcnn"][1][common] * reference_vectors[common]).sum(1)
    result["found_by_every_detector"] = {"n": int(common.sum()),
                                         "ready_crop_accuracy": round(float(correct_reference[common].mean()), 4), "paths": {}}
    for path in PATHS:
        found, vectors, predicted = predictions[path.name]
        correct = (predicted == labels).astype(np.float64)
        entry = result["paths"][path.name]
        entry["accuracy_minus_mtcnn_ci95"] = paired_interval(correct, mtcnn_correct, interval_rng)
        entry["bar"] = {"within_1_point_of_ready_crops": bool(entry["accuracy_minus_ready_crop_points"] >= -1),
                        "at_least_mtcnn_accuracy": bool(correct.mean() >= mtcnn_correct.mean()),
                        "found_at_least_as_often_as_mtcnn": bool(found.mean() >= predictions["mtcnn"][0].mean())}
        cosine = (vectors[common] * reference_vectors[common]).sum(1)
        result["found_by_every_detector"]["paths"][path.name] = {
            "accuracy": round(float(correct[common].mean()), 4),
            "accuracy_minus_ready_crop_ci95": paired_interval(correct[common], correct_reference[common], interval_rng),
            "cosine_to_ready_crop": round(float(cosine.mean()), 4),
            "cosine_minus_mtcnn_ci95": [round(v / 100, 5) for v in paired_interval(cosine, mtcnn_cosine, interval_rng)],
            "agreement_with_ready_crop": round(float((predicted[common] == reference_labels[common]).mean()), 4),
        }
    print(f"{name}: ready crops {result['ready_crop_accuracy']:.4f}; " + ", ".join(
        f"{key} {value['accuracy']:.4f} (found {value['found_rate']:.3f}, cos {value['cosine_to_ready_crop']:.3f})"
        for key, value in result["paths"].items()))
    return result


PERTURBATIONS = {
    "shift": lambda p, rng: (0, 0, *rng.uniform(-4, 4, 2)),
    "scale": lambda p, rng: (rng.choice([-1, 1]) * rng.uniform(0.02, 0.05), 0, 0, 0),
    "rotate": lambda p, rng: (0, rng.choice([-1, 1]) * rng.uniform(1, 3), 0, 0),
    "all": lambda p, rng: (rng.choice([-1, 1]) * rng.uniform(0.02, 0.05), rng.choice([-1, 1]) * rng.uniform(1, 3), *rng.uniform(-4, 4, 2)),
}


def stability(runner: Runner, crops: np.ndarray, seed: int) -> dict:
    """Part (b)."""
    rng = np.random.default_rng(seed)
    base_items, moved_items = [], {kind: [] for kind in PERTURBATIONS}
    for crop in crops:
        placement = random_placement(rng)
        for kind, perturb in [("base", None), *PERTURBATIONS.items()]:
            if perturb is None:
                moved = placement
            else:
                scale, angle, dx, dy = perturb(placement, rng)
                moved = Placement(placement.scale * (1 + scale), placement.angle + angle,
                                  (placement.centre[0] + dx, placement.centre[1] + dy), placement.background,
                                  placement.background_seed, placement.quality)
            photo, matrix = place(crop, moved)
            truth = transform_points(matrix, runner.template.array)
            faces = {detector: nearest_face(found, truth) for detector, found in runner.detect(photo).items()}
            item = runner.crops(photo, faces)
            item["oracle"] = align_face(photo, truth, runner.template)
            (base_items if perturb is None else moved_items[kind]).append(item)
    base = predict_paths(runner, base_items)
    result = {"n": int(len(crops)), "perturbations": {"shift": "<= 4 px in x and y", "scale": "2-5 %", "rotate": "1-3 degrees",
                                                     "all": "the three at once"}, "paths": {}}
    for kind, items in moved_items.items():
        moved = predict_paths(runner, items)
        for name, (found, vectors, labels) in moved.items():
            both = found & base[name][0]
            entry = result["paths"].setdefault(name, {})
            entry[kind] = {"cosine": round(float((vectors[both] * base[name][1][both]).sum(1).mean()), 4),
                           "agreement": round(float((labels[both] == base[name][2][both]).mean()), 4), "n_found_both": int(both.sum())}
    for name, entry in result["paths"].items():
        entry["mean_cosine"] = round(float(np.mean([entry[kind]["cosine"] for kind in PERTURBATIONS])), 4)
        entry["mean_agreement"] = round(float(np.mean([entry[kind]["agreement"] for kind in PERTURBATIONS])), 4)
    print("stability: " + ", ".join(f"{name} cos {entry['mean_cosine']:.4f} agree {entry['mean_agreement']:.3f}"
                                    for name, entry in result["paths"].items()))
    return result


def cross_detector(runner: Runner, images: list[np.ndarray], kind: str) -> dict:
    """Part (c) on one kind of real image: each pair of paths on faces both detectors found."""
    items, counts = [], {name: 0 for name in runner.detectors}
    for image in images:
        detected = runner.detect(image)
        for name, found in detected.items():
            counts[name] += len(found)
        for face in detected["mtcnn"]:
            other = nearest_face(detected["yunet"], face.landmarks)
            if other is not None:
                items.append(runner.crops(image, {"mtcnn": face, "yunet": other}))
    result = {"images": len(images), "faces_found": counts, "faces_matched": len(items), "pairs": {}}
    if not items:
        return result
    predictions = predict_paths(runner, items)
    for reference in ("mtcnn", "mtcnn_weighted"):
        for path in PATHS:
            if path.detector == "yunet":
                vectors, labels = predictions[path.name][1:]
                ref_vectors, ref_labels = predictions[reference][1:]
                result["pairs"][f"{path.name} vs {reference}"] = {
                    "cosine": round(float((vectors * ref_vectors).sum(1).mean()), 4),
                    "agreement": round(float((labels == ref_labels).mean()), 4)}
    print(f"cross-detector {kind}: " + ", ".join(f"{key} cos {value['cosine']:.4f} agree {value['agreement']:.3f}"
                                                 for key, value in result["pairs"].items()))
    return result


def load_labelled(dataset: str, root: Path, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A seeded sample of RGB crops and their labels (EMOTIONS indices) and the population size."""
    if dataset == "ferplus":
        samples = read_dataset("ferplus", str(root), splits=("valid",))["valid"].samples
    else:
        shared = {EMOTIONS.index(name) for name in CKPLUS_SHARED_CLASSES}
        samples = [s for s in read_dataset("ckplus48", str(root))["all"].samples if s.label in shared]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(samples), size=min(limit, len(samples)), replace=False))
    crops = np.stack([load_image(samples[i].path) for i in chosen])
    return crops, np.array([samples[i].label for i in chosen]), len(samples)


def markdown(result: dict) -> str:
    """The README tables."""
    names = ["oracle", *(path.name for path in PATHS)]
    placed = result["placed_faces"]
    fer, ck = placed["ferplus"], placed["ckplus48"]
    lines = [f"Face-path fidelity (`benchmarks/face_fidelity.py`, model `{result['model']}`, prior `{result['output_prior']}`, seed"
             f" {result['seed']}): FER2013Valid (n={fer['n']}) and CK+48 (n={ck['n']}, 6 shared classes) crops placed into"
             " synthetic photos. acc: a face not found counts as wrong; acc (both): on the faces both detectors found"
             f" (FER+ n={fer['found_by_every_detector']['n']}, CK+ n={ck['found_by_every_detector']['n']}); cos: mean cosine"
             " to the ready crop's vector; framing: median crop-pixel distance from the ready crop's framing;"
             f" stability: same face shifted/scaled/rotated (n={result['stability']['n']}).",
             "",
             "| face path | FER+ found | FER+ acc | FER+ acc (both) | FER+ cos | CK+ found | CK+ acc | CK+ acc (both) | CK+ cos |"
             " framing px (FER+/CK+) | stability cos | stability agree | faces/s (detector) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
             f"| ready crops (`none`) | 1.000 | {fer['ready_crop_accuracy']:.3f} | {fer['found_by_every_detector']['ready_crop_accuracy']:.3f}"
             f" | 1.000 | 1.000 | {ck['ready_crop_accuracy']:.3f} | {ck['found_by_every_detector']['ready_crop_accuracy']:.3f} | 1.000 | 0 / 0 | | | |"]
    for name in names:
        f, c = fer["paths"][name], ck["paths"][name]
        both_f = fer["found_by_every_detector"]["paths"].get(name, {}).get("accuracy")
        both_c = ck["found_by_every_detector"]["paths"].get(name, {}).get("accuracy")
        stable = result["stability"]["paths"][name]
        detector = next((path.detector for path in PATHS if path.name == name), None)
        speed = f"{result['speed_faces_per_s'][detector]:.1f}" if detector else ""
        lines.append(f"| {name} | {f['found_rate']:.3f} | {f['accuracy']:.3f} | {'' if both_f is None else f'{both_f:.3f}'} |"
                     f" {f['cosine_to_ready_crop']:.3f} | {c['found_rate']:.3f} | {c['accuracy']:.3f} |"
                     f" {'' if both_c is None else f'{both_c:.3f}'} | {c['cosine_to_ready_crop']:.3f} |"
                     f" {f['crop_error_median_px']:.2f} / {c['crop_error_median_px']:.2f} | {stable['mean_cosine']:.4f} |"
                     f" {stable['mean_agreement']:.3f} | {speed} |")
    default = DEFAULT_DETECTOR
    verdict = []
    for label, data in (("FER+", fer), ("CK+", ck)):
        entry, both = data["paths"][default], data["found_by_every_detector"]["paths"][default]
        ready_both = data["found_by_every_detector"]["ready_crop_accuracy"]
        verdict.append(f"{label}: {entry['accuracy_minus_ready_crop_points']:+.1f} points vs ready crops"
                       f" (95 % CI {entry['accuracy_minus_ready_crop_ci95']}; on faces both detectors found"
                       f" {(both['accuracy'] - ready_both) * 100:+.1f}), {(entry['accuracy'] - data['paths']['mtcnn']['accuracy']) * 100:+.1f}"
                       f" vs the mtcnn path (CI {entry['accuracy_minus_mtcnn_ci95']}), found {entry['found_rate']:.3f} vs"
                       f" {data['paths']['mtcnn']['found_rate']:.3f} (true landmarks, every face: {data['paths']['oracle']['accuracy_minus_ready_crop_points']:+.1f})")
    lines += ["", f"Default path `{default}` (raw landmarks) against the bar of issue 16: " + "; ".join(verdict) + "."]
    lines += ["", "Cross-detector agreement on real images (YuNet path vs MTCNN path, faces both found):", "",
              "| pair | photos cos | photos agree | unlabelled cos | unlabelled agree |", "|---|---|---|---|---|"]
    photos, unlabelled = result["cross_detector"]["photos"], result["cross_detector"]["unlabelled"]
    for pair in unlabelled["pairs"]:
        p, u = photos["pairs"].get(pair, {}), unlabelled["pairs"][pair]
        lines.append(f"| {pair} | {p.get('cosine', float('nan')):.4f} | {p.get('agreement', float('nan')):.3f} | "
                     f"{u['cosine']:.4f} | {u['agreement']:.3f} |")
    lines += ["", f"Faces matched: photos {photos['faces_matched']} (found: {photos['faces_found']}), unlabelled "
              f"{unlabelled['faces_matched']} of {unlabelled['images']}. Detector speed: {result['speed_note']}.", "",
              f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="packaged model name or .safetensors path")
    parser.add_argument("--limit", type=int, default=400, help="faces per labelled dataset in part (a)")
    parser.add_argument("--stability-limit", type=int, default=100, help="faces in part (b)")
    parser.add_argument("--unlabelled-limit", type=int, default=300, help="unlabelled faces in part (c)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="landmark calibration JSON to evaluate (default: the packaged one); results get a __<file stem> suffix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    calibration = load_calibration(args.calibration)
    runner = Runner(args.model, calibration)
    result = {"model": str(args.model), "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "seed": args.seed,
              "command": " ".join(shlex.quote(part) for part in ["python", "benchmarks/face_fidelity.py", *(sys.argv[1:] if argv is None else argv)]),
              "output_prior": runner.extractor.prior_, "calibration": {"file": str(args.calibration or "packaged"), "template_id": calibration.template_id,
              "offsets": {k: v.round(4).tolist() for k, v in calibration.offsets.items()}, "weights": calibration.weights.round(4).tolist()},
              "placed_faces": {}}
    start = time.perf_counter()
    fer_crops, fer_labels, fer_total = load_labelled("ferplus", SHARED / "data" / "ferplus", args.limit, args.seed)
    result["placed_faces"]["ferplus"] = {"population": fer_total, **placed_faces(runner, "ferplus", fer_crops, fer_labels, args.seed)}
    ck_crops, ck_labels, ck_total = load_labelled("ckplus48", SHARED / "data" / "ckplus48", args.limit, args.seed)
    result["placed_faces"]["ckplus48"] = {"population": ck_total, **placed_faces(runner, "ckplus48", ck_crops, ck_labels, args.seed)}
    result["speed_faces_per_s"] = {name: round(runner.detect_images[name] / runner.detect_seconds[name], 2) for name in runner.detectors}
    result["speed_note"] = f"detector only, {CANVAS[1]}x{CANVAS[0]} synthetic photos with one face, {args.threads} thread(s)"
    result["stability"] = stability(runner, fer_crops[:args.stability_limit], args.seed + 2)
    photos = [load_image(path) for path in sorted((SHARED / "data" / "photos").glob("*.jpg"))]
    paths = sorted((SHARED / "data" / "unlabeled_faces").glob("*.jpg"))
    benchmark_half = paths[len(paths) // 2:]  # scripts/calibrate_landmarks.py fits on the first half
    rng = np.random.default_rng(args.seed + 3)
    unlabelled = []
    for index in sorted(rng.choice(len(benchmark_half), size=min(args.unlabelled_limit, len(benchmark_half)), replace=False)):
        image = load_image(benchmark_half[index])
        factor = UNLABELLED_SIDE / max(image.shape[:2])
        unlabelled.append(cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC))
    result["cross_detector"] = {"photos": cross_detector(runner, photos, "photos"),
                                "unlabelled": cross_detector(runner, unlabelled, "unlabelled")}
    result["seconds"] = round(time.perf_counter() - start, 1)
    name = result_name("face_fidelity", args.model) + (f"__{args.calibration.stem}" if args.calibration else "")
    save_result(name, result)
    with atomic_write(RESULTS / f"{name}.md") as tmp:
        tmp.write_text(markdown(result), encoding="utf-8")


if __name__ == "__main__":
    main()
