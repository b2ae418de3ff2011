"""Tracking benchmark (issue 19): real faces pasted on generated backgrounds, moving, crossing, hidden and cut
between shots, detected by YuNet, and scored with py-motmetrics (IDF1, ID switches, MOTA) per scenario.

Run: .venv/bin/python benchmarks/tracking.py [--seeds report|dev|0,1,2] [--trackers new,old,norfair]

Faces come from the shared photos (each face detected and cut out with its hair and some collar) and from
the shared unlabelled crops (mostly grey), half of the people with shoulders in a random colour. Clips are
320x180 at 25 frames/s. Every tracker sees the same YuNet detections and is run as ``video.extract`` runs it
(``max_age`` = 3 s, ``min_hits`` = 2; rows of tracks never confirmed are dropped, and a confirmed track's
earlier rows carry its id). Ground truth is each person's face box wherever at least half of it shows;
a face less than half visible is "don't care": a detection on it counts neither way (as in MOTChallenge).
A detection matches a person at IoU >= 0.5.

Rows: ``new`` (video.tracking with video.scenecut), ``old`` (the tracker at ``--baseline-ref``),
``norfair`` (norfair-enough: IoU matching plus re-identification by the same appearance descriptors,
threshold mirroring ours), and ``oracle`` (each detection labelled with its true person: the ceiling that
these detections allow). Tuning used the dev seeds (0-8) only; the report seeds (100-105) were not
looked at clip by clip.
Detections are cached in runs/tracking_detections/ (git-ignored) keyed by scenario, seed and generator version.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

import cv2
import numpy as np

from _common import REPO, SHARED, save_result
from deepfever.faces.boxes import box_iou
from deepfever.faces.detect import create_detector
from deepfever.video import tracking as new_tracking
from deepfever.video.scenecut import SceneCutDetector

WIDTH, HEIGHT, FPS = 320, 180, 25
GENERATOR_VERSION = 1
DEV_SEEDS, REPORT_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7, 8), (100, 101, 102, 103, 104, 105)
BASELINE_REF = "4e0f382"
"""The commit whose tracker issue 19 reports on ("old")."""
CACHE = REPO / "runs" / "tracking_detections"
MATCH_IOU = 0.5


@dataclass
class Sprite:
    """A face cut out with its surroundings: RGB, alpha in [0, 1], and the detector's face box inside it."""

    rgb: np.ndarray
    alpha: np.ndarray
    face: np.ndarray


@dataclass
class Person:
    """Where one person's face is at each frame: centre x, y and face width (NaN = absent), and depth."""

    sprite: Sprite
    track: np.ndarray  # (frames, 3)
    depth: float
    shoulders: tuple[int, int, int] | None


@dataclass
class Clip:
    """A generated scenario: people, pillars (x1, x2, colour) in front of everyone, and the shot of each frame."""

    frames: int
    people: list[Person]
    pillars: list[tuple[float, float, tuple[int, int, int]]] = field(default_factory=list)
    shots: np.ndarray | None = None
    backgrounds: list[np.ndarray] = field(default_factory=list)


def build_sprites(detector) -> list[Sprite]:
    """Faces of the shared photos and 60 of the unlabelled crops (a fixed sample), with the box YuNet gives them."""
    sprites = []
    for path in sorted((SHARED / "data" / "photos").glob("*.jpg")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        scale = 640 / max(image.shape[:2])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        for face in detector.detect(small):
            x1, y1, x2, y2 = face.box
            w, h = x2 - x1, y2 - y1
            if face.score < 0.8 or w < 40:
                continue
            left, top = int(max(0, x1 - 0.35 * w)), int(max(0, y1 - 0.5 * h))
            right, bottom = int(min(small.shape[1], x2 + 0.35 * w)), int(min(small.shape[0], y2 + 0.35 * h))
            sprites.append(_sprite(small[top:bottom, left:right], face.box - [left, top, left, top]))
    rng = np.random.default_rng(0)
    for number in rng.choice(8000, 90, replace=False):
        crop = cv2.cvtColor(cv2.imread(str(SHARED / "data" / "unlabeled_faces" / f"u{number:05d}.jpg")), cv2.COLOR_BGR2RGB)
        faces = [face for face in detector.detect(crop) if face.score > 0.8]
        if len(faces) == 1 and len(sprites) < 200:
            sprites.append(_sprite(crop, faces[0].box))
    return sprites


def _sprite(rgb: np.ndarray, face: np.ndarray) -> Sprite:
    height, width = rgb.shape[:2]
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (width // 2, height // 2), (int(width * 0.46), int(height * 0.48)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, width / 30))
    return Sprite(np.ascontiguousarray(rgb), alpha, np.asarray(face, np.float64))


def background(rng: np.random.Generator) -> np.ndarray:
    """A room-like backdrop: a two-colour gradient, soft blotches and a few blurred furniture blocks."""
    a, b = rng.integers(20, 235, 3), rng.integers(20, 235, 3)
    ramp = np.linspace(0, 1, WIDTH)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, HEIGHT)[:, None, None]
    image = np.broadcast_to(a + (b - a) * ramp, (HEIGHT, WIDTH, 3)).astype(np.float32).copy()
    image += cv2.resize(rng.normal(0, 25, (5, 8, 3)).astype(np.float32), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(2, 6)):
        x, y = rng.integers(0, WIDTH), rng.integers(0, HEIGHT)
        cv2.rectangle(image, (int(x), int(y)), (int(x + rng.integers(20, 120)), int(y + rng.integers(20, 90))),
                      rng.integers(0, 255, 3).tolist(), -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.5) + rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def face_box(person: Person, t: int) -> np.ndarray | None:
    cx, cy, width = person.track[t]
    if np.isnan(cx):
        return None
    face = person.sprite.face
    height = width * (face[3] - face[1]) / (face[2] - face[0])
    return np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2])


def render(clip: Clip, t: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray, float]]]:
    """Frame ``t`` and each present person's (index, face box, visible fraction of the box)."""
    shot = 0 if clip.shots is None else int(clip.shots[t])
    canvas = clip.backgrounds[shot].astype(np.float32)
    covers: list[tuple[int, np.ndarray]] = []
    order = sorted(range(len(clip.people)), key=lambda index: -clip.people[index].depth)  # far first
    for index in order:
        person, box = clip.people[index], face_box(clip.people[index], t)
        if box is None:
            continue
        mask = np.zeros((HEIGHT, WIDTH), np.float32)
        width, height = box[2] - box[0], box[3] - box[1]
        if person.shoulders is not None:
            shoulders = np.zeros_like(mask)
            cv2.ellipse(shoulders, (int((box[0] + box[2]) / 2), int(box[3] + 0.95 * height)), (int(1.1 * width), int(0.7 * height)),
                        0, 0, 360, 1.0, -1)
            canvas = canvas * (1 - shoulders[..., None]) + shoulders[..., None] * np.array(person.shoulders, np.float32)
            mask = np.maximum(mask, shoulders)
        scale = width / (person.sprite.face[2] - person.sprite.face[0])
        size = (max(1, round(person.sprite.rgb.shape[1] * scale)), max(1, round(person.sprite.rgb.shape[0] * scale)))
        rgb = cv2.resize(person.sprite.rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        alpha = cv2.resize(person.sprite.alpha, size, interpolation=cv2.INTER_LINEAR)
        left, top = int(round(box[0] - person.sprite.face[0] * scale)), int(round(box[1] - person.sprite.face[1] * scale))
        x1, y1, x2, y2 = max(0, left), max(0, top), min(WIDTH, left + size[0]), min(HEIGHT, top + size[1])
        if x2 > x1 and y2 > y1:
            a = alpha[y1 - top:y2 - top, x1 - left:x2 - left, None]
            canvas[y1:y2, x1:x2] = canvas[y1:y2, x1:x2] * (1 - a) + rgb[y1 - top:y2 - top, x1 - left:x2 - left] * a
            mask[y1:y2, x1:x2] = np.maximum(mask[y1:y2, x1:x2], a[..., 0])
        covers.append((index, mask > 0.5))
    for x1, x2, colour in clip.pillars:
        stripes = (np.arange(int(x1), int(x2)) // 6 % 2)[None, :, None] * 18.0
        canvas[:, int(x1):int(x2)] = np.array(colour, np.float32) + stripes
        pillar = np.zeros((HEIGHT, WIDTH), bool)
        pillar[:, int(x1):int(x2)] = True
        covers.append((-1, pillar))
    present = []
    for position, (index, _) in enumerate(covers):
        if index < 0:
            continue
        box = face_box(clip.people[index], t)
        hidden = np.zeros((HEIGHT, WIDTH), bool)
        for _, mask in covers[position + 1:]:
            hidden |= mask
        bx1, by1, bx2, by2 = (int(round(v)) for v in box)
        area = max(1, (bx2 - bx1) * (by2 - by1))
        inside = hidden[max(0, by1):max(0, by2), max(0, bx1):max(0, bx2)]
        present.append((index, box, float((~inside).sum()) / area))
    return np.clip(canvas, 0, 255).astype(np.uint8), present


def _path(frames: int, start: tuple[float, float], velocity: tuple[float, float], width: float) -> np.ndarray:
    t = np.arange(frames)[:, None]
    return np.concatenate([np.array(start) + t * np.array(velocity), np.full((frames, 1), width)], axis=1)


def crossing(rng: np.random.Generator, speed: float) -> Clip:
    """Two people walk past each other at ``speed`` px/frame each, one in front of the other."""
    width = rng.uniform(34, 50)
    gap = width + 50
    frames = int(2 * gap / speed) + 10
    y = rng.uniform(60, 110)
    left = _path(frames, (WIDTH / 2 - gap, y + rng.uniform(-6, 6)), (speed, 0), width)
    right = _path(frames, (WIDTH / 2 + gap, y + rng.uniform(-6, 6)), (-speed, 0), width * rng.uniform(0.9, 1.1))
    depths = rng.permutation(2).astype(float)
    return Clip(frames, [Person(None, left, depths[0], None), Person(None, right, depths[1], None)])


def occlusion(rng: np.random.Generator, low_s: float, high_s: float) -> Clip:
    """One person walks behind a pillar and is hidden for ``low_s``-``high_s`` s, changing pace behind it; another stands by."""
    hidden = rng.uniform(low_s, high_s) * FPS
    width = rng.uniform(32, 46)
    speed = min(rng.uniform(1.0, 3.0), 130 / hidden)
    pillar_width = speed * hidden
    x1 = WIDTH / 2 - pillar_width / 2
    start = x1 - width / 2 - 25 * speed
    direction = 1 if rng.random() < 0.5 else -1
    frames = int(hidden + 2 * width / speed + 50)
    after = rng.uniform(0.75, 1.3)  # pace after the pillar differs from before
    xs = [start]
    for t in range(1, frames):
        behind = xs[-1] + width / 2 > x1 + pillar_width / 2
        xs.append(xs[-1] + speed * (after if behind else 1.0))
    xs = np.array(xs) if direction > 0 else WIDTH - np.array(xs)
    y = rng.uniform(60, 110)
    walker = np.stack([xs, np.full(frames, y), np.full(frames, width)], axis=1)
    corner = WIDTH * (0.12 if direction < 0 else 0.88)
    bystander = _path(frames, (corner, rng.uniform(50, 120)), (0, rng.uniform(-0.2, 0.2)), rng.uniform(30, 44))
    colour = tuple(int(v) for v in rng.integers(30, 220, 3))
    return Clip(frames, [Person(None, walker, 1.0, None), Person(None, bystander, 1.0, None)],
                pillars=[(x1, x1 + pillar_width, colour)])


def crowd(rng: np.random.Generator) -> Clip:
    """Four to six people of different sizes walking straight in random directions: many crossings."""
    frames, people = 125, []
    for depth in rng.permutation(int(rng.integers(4, 7))):
        width = rng.uniform(26, 50)
        start = (rng.uniform(30, WIDTH - 30), rng.uniform(40, HEIGHT - 50))
        end = (rng.uniform(30, WIDTH - 30), rng.uniform(40, HEIGHT - 50))
        velocity = ((end[0] - start[0]) / frames, (end[1] - start[1]) / frames)
        people.append(Person(None, _path(frames, start, velocity, width), float(depth), None))
    return Clip(frames, people)


def zoom(rng: np.random.Generator) -> Clip:
    """One to three people side by side, each face growing or shrinking by up to 2x while drifting."""
    frames, count, people = 100, int(rng.integers(1, 4)), []
    for number in range(count):
        ratio = rng.uniform(0.5, 2.0)
        sizes = rng.uniform(28, 40) * ratio ** (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, frames)))
        track = _path(frames, ((number + 0.5) * WIDTH / count, rng.uniform(70, 100)), tuple(rng.uniform(-0.3, 0.3, 2)), 0)
        track[:, 2] = sizes
        people.append(Person(None, track, float(number), None))
    return Clip(frames, people)


def cuts(rng: np.random.Generator) -> Clip:
    """Two or three people in three shots (other backdrop, places and sizes each), cut after 40 and 80 frames."""
    frames, count = 120, int(rng.integers(2, 4))
    tracks = np.zeros((count, frames, 3))
    for shot in range(3):
        places = rng.permutation(count)
        width = rng.uniform(28, 56)
        for number in range(count):
            x = (places[number] + 0.5) * WIDTH / count + rng.uniform(-15, 15)
            tracks[number, shot * 40:(shot + 1) * 40] = _path(40, (x, rng.uniform(60, 110)), (rng.uniform(-0.5, 0.5), 0),
                                                              width * rng.uniform(0.9, 1.1))
    clip = Clip(frames, [Person(None, tracks[number], float(number), None) for number in range(count)])
    clip.shots = np.arange(frames) // 40
    return clip


def enter_leave(rng: np.random.Generator) -> Clip:
    """Three people walk in from an edge at different times and out the other side."""
    frames, people = 150, []
    for number in range(3):
        width, speed = rng.uniform(30, 48), rng.uniform(2.0, 4.0)
        direction = 1 if rng.random() < 0.5 else -1
        enter = int(rng.integers(0, 60))
        track = np.full((frames, 3), np.nan)
        x0 = -width if direction > 0 else WIDTH + width
        track[enter:] = _path(frames - enter, (x0, rng.uniform(50, 120)), (direction * speed, 0), width)
        track[(track[:, 0] < -width) | (track[:, 0] > WIDTH + width)] = np.nan
        people.append(Person(None, track, float(number), None))
    return Clip(frames, people)


SCENARIOS: dict[str, Callable[[np.random.Generator], Clip]] = {
    "cross_slow": lambda rng: crossing(rng, 1.0),
    "cross_medium": lambda rng: crossing(rng, 2.5),
    "cross_fast": lambda rng: crossing(rng, 6.0),
    "occlusion_0.3-1s": lambda rng: occlusion(rng, 0.3, 1.0),
    "occlusion_1-2s": lambda rng: occlusion(rng, 1.0, 2.0),
    "occlusion_2-3s": lambda rng: occlusion(rng, 2.0, 3.0),
    "crowd_4-6": crowd,
    "size_change": zoom,
    "camera_cuts": cuts,
    "enter_leave": enter_leave,
}


def make_clip(name: str, seed: int, sprites: list[Sprite]) -> Clip:
    """Scenario ``name`` for ``seed``: people get distinct faces, half of them shoulders, each shot a backdrop."""
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    clip = SCENARIOS[name](rng)
    chosen = rng.choice(len(sprites), len(clip.people), replace=False)
    for person, number in zip(clip.people, chosen):
        person.sprite = sprites[number]
        person.shoulders = tuple(int(v) for v in rng.integers(20, 235, 3)) if rng.random() < 0.5 else None
    shots = 1 if clip.shots is None else int(clip.shots.max()) + 1
    clip.backgrounds = [background(rng) for _ in range(shots)]
    return clip


Rendered = list[tuple[np.ndarray, list[tuple[int, np.ndarray, float]]]]
"""A clip's frames, each with its people's (index, face box, visible fraction)."""


def detect_clip(name: str, seed: int, rendered: Rendered, detector) -> list[np.ndarray]:
    """YuNet boxes of every frame, from the cache when the same clip was detected before."""
    path = CACHE / f"v{GENERATOR_VERSION}_{name}_{seed}.npz"
    if path.exists():
        with np.load(path) as stored:
            return [stored[f"f{t}"] for t in range(len(rendered))]
    boxes = []
    for frame, _ in rendered:
        boxes.append(np.array([face.box for face in detector.detect(frame)], np.float64).reshape(-1, 4))
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=CACHE, suffix=".npz", delete=False) as handle:
        np.savez(handle, **{f"f{t}": value for t, value in enumerate(boxes)})
    Path(handle.name).replace(path)
    return boxes


def load_baseline(ref: str) -> ModuleType:
    """``video/tracking.py`` as of git ``ref``, imported under its own name (the tracker before issue 19)."""
    source = subprocess.run(["git", "show", f"{ref}:src/deepfever/video/tracking.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_tracking.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_tracking", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_tracking"] = module
    spec.loader.exec_module(module)
    return module


class NorfairTracker:
    """norfair-enough's tracker behind ``FaceTracker.update``: IoU distance, and re-identification of lost
    objects by our appearance descriptors (``reid_distance_function``), as its docs suggest."""

    def __init__(self, max_age: int, min_hits: int) -> None:
        from norfair import Tracker

        def reid_distance(new, old) -> float:
            looks = [detection.embedding for detection in old.past_detections if detection.embedding is not None]
            if not looks or new.last_detection.embedding is None:
                return 1.0
            return 1.0 - float(new_tracking.appearance_similarity(np.stack(looks), new.last_detection.embedding[None])[0])

        self.tracker = Tracker(distance_function="iou", distance_threshold=0.9, hit_counter_max=max_age,
                               initialization_delay=min_hits - 1, reid_distance_function=reid_distance,
                               reid_distance_threshold=1 - new_tracking.FaceTracker().reid_similarity, reid_hit_counter_max=max_age, past_detections_length=8)
        self._frame = -1

    def update(self, boxes: np.ndarray, appearances: np.ndarray | None = None, scene_cut: bool = False):
        from norfair import Detection

        self._frame += 1
        detections = [Detection(points=box.reshape(2, 2), embedding=None if appearances is None else appearances[number],
                                data=(self._frame, number)) for number, box in enumerate(boxes)]
        self.tracker.update(detections=detections)
        owners = {}
        for tracked in self.tracker.tracked_objects:  # norfair keeps a copy of the detection, with its data
            if tracked.last_detection is not None and tracked.last_detection.data[0] == self._frame:
                owners[tracked.last_detection.data[1]] = tracked
        return [_NorfairTrack(owners.get(number)) for number in range(len(detections))]


class _NorfairTrack:
    """A norfair object seen through ``Track``'s ``id`` (``None`` until initialised)."""

    def __init__(self, tracked) -> None:
        self.tracked = tracked

    @property
    def id(self) -> int | None:
        return None if self.tracked is None else self.tracked.id


def run_tracker(kind: str, rendered: Rendered, boxes: list[np.ndarray], baseline: ModuleType | None) -> list[list[tuple[int, np.ndarray]]]:
    """Each frame's (track id, box) rows as ``video.extract`` would write them.

    ``oracle`` labels each detection with the person it covers best (IoU >= 0.5), or drops it: the best
    any tracker can score on these detections.
    """
    if kind == "oracle":
        return [_oracle(present, boxes[t]) for t, (_, present) in enumerate(rendered)]
    max_age, min_hits = round(3.0 * FPS), 2
    module = baseline if kind == "old" else new_tracking
    if kind == "norfair":
        tracker = NorfairTracker(max_age, min_hits)
    else:
        tracker = module.FaceTracker(max_age=max_age, min_hits=min_hits)
    cuts = SceneCutDetector() if kind in ("new", "norfair") else None
    assigned = []
    for t, (frame, _) in enumerate(rendered):
        looks = np.stack([module.appearance_descriptor(frame, box) for box in boxes[t]]) if len(boxes[t]) else None
        if kind == "old":
            tracks = tracker.update(boxes[t], None, looks)
        else:
            cut = cuts.is_cut(frame)
            tracks = tracker.update(boxes[t], appearances=looks, scene_cut=cut) if kind == "new" else tracker.update(boxes[t], looks)
        assigned.append(list(zip(tracks, boxes[t])))
    return [[(track.id, box) for track, box in frame if track.id is not None] for frame in assigned]


def _oracle(present: list[tuple[int, np.ndarray, float]], boxes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    if not present or not len(boxes):
        return []
    iou = box_iou(boxes, np.stack([box for _, box, _ in present]))
    return [(present[int(iou[k].argmax())][0], box) for k, box in enumerate(boxes) if iou[k].max() >= MATCH_IOU]


def accumulate(rendered: Rendered, rows: list[list[tuple[int, np.ndarray]]]):
    """A motmetrics accumulator over the clip; faces less than half visible are don't-care."""
    import motmetrics

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for t, (_, present) in enumerate(rendered):
        truth = [(index, box) for index, box, visible in present if visible >= 0.5]
        ignored = [box for _, box, visible in present if 0 < visible < 0.5]
        hypotheses = rows[t]
        if ignored and hypotheses:
            to_truth = box_iou(np.stack([b for _, b in hypotheses]), np.stack([b for _, b in truth])).max(1) if truth else np.zeros(len(hypotheses))
            to_ignored = box_iou(np.stack([b for _, b in hypotheses]), np.stack(ignored)).max(1)
            hypotheses = [row for row, keep in zip(hypotheses, (to_ignored < 0.3) | (to_truth >= to_ignored)) if keep]
        if truth and hypotheses:
            iou = box_iou(np.stack([b for _, b in truth]), np.stack([b for _, b in hypotheses]))
            distances = np.where(iou >= MATCH_IOU, 1 - iou, np.nan)
        else:
            distances = np.zeros((len(truth), len(hypotheses)))
        accumulator.update([index for index, _ in truth], [track for track, _ in hypotheses], distances)
    return accumulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="report", help="report, dev, or comma-separated integers")
    parser.add_argument("--trackers", default="new,old,norfair,oracle", help="comma-separated: new, old, norfair, oracle")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, from: " + ", ".join(SCENARIOS))
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git commit of the 'old' tracker")
    parser.add_argument("--name", default=None, help="results file name (default tracking or tracking_dev)")
    args = parser.parse_args(argv)
    import motmetrics

    seeds = {"report": REPORT_SEEDS, "dev": DEV_SEEDS}.get(args.seeds) or tuple(int(s) for s in args.seeds.split(","))
    trackers = args.trackers.split(",")
    scenarios = args.scenarios.split(",")
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; choose from {list(SCENARIOS)}")
    detector = create_detector("yunet")
    sprites = build_sprites(detector)
    baseline = load_baseline(args.baseline_ref) if "old" in trackers else None
    metrics = motmetrics.metrics.create()
    names = ["idf1", "num_switches", "mota", "num_false_positives", "num_misses", "num_objects", "num_unique_objects"]
    table: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    for scenario in scenarios:
        clips = []
        for seed in seeds:
            clip = make_clip(scenario, seed, sprites)
            clips.append((seed, [render(clip, t) for t in range(clip.frames)]))
        detections = {seed: detect_clip(scenario, seed, rendered, detector) for seed, rendered in clips}
        table[scenario] = {}
        for kind in trackers:
            accumulators = [accumulate(rendered, run_tracker(kind, rendered, detections[seed], baseline)) for seed, rendered in clips]
            summary = metrics.compute_many(accumulators, metrics=names, names=[str(seed) for seed, _ in clips], generate_overall=True)
            overall = summary.loc["OVERALL"]
            table[scenario][kind] = {"idf1": round(float(overall["idf1"]), 4), "id_switches": int(overall["num_switches"]),
                                     "mota": round(float(overall["mota"]), 4), "false_positives": int(overall["num_false_positives"]),
                                     "misses": int(overall["num_misses"]), "objects": int(overall["num_objects"]),
                                     "switches_per_seed": {str(seed): int(summary.loc[str(seed), "num_switches"]) for seed, _ in clips}}
        print(scenario, {kind: (row["idf1"], row["id_switches"], row["mota"]) for kind, row in table[scenario].items()}, flush=True)
    lines = ["| scenario | " + " | ".join(f"{kind} IDF1 | {kind} IDsw | {kind} MOTA" for kind in trackers) + " |",
             "|---|" + "---|" * (3 * len(trackers))]
    for scenario, row in table.items():
        lines.append(f"| {scenario} | " + " | ".join(f"{row[k]['idf1']:.3f} | {row[k]['id_switches']} | {row[k]['mota']:.3f}" for k in trackers) + " |")
    print("\n".join(lines))
    name = args.name or ("tracking" if args.seeds == "report" else "tracking_dev")
    save_result(name, {"seeds": list(seeds), "trackers": trackers, "baseline_ref": args.baseline_ref, "fps": FPS,
                       "frame_size": [WIDTH, HEIGHT], "max_age_s": 3.0, "min_hits": 2, "match_iou": MATCH_IOU,
                       "sprites": len(sprites), "seconds": round(time.perf_counter() - started, 1), "scenarios": table,
                       "markdown": lines})


if __name__ == "__main__":
    main()
