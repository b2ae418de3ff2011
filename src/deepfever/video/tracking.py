"""Link per-frame face detections into tracks with stable ids.

Matching is one assignment problem per frame (Hungarian, ``scipy.optimize.linear_sum_assignment``) on
a cost that is mostly spatial (IoU with the track's motion-predicted box) plus a little appearance.
Appearance is a colour descriptor of the face and hair region (``appearance_descriptor``) when given,
since expression vectors are meant to carry little identity; they are the fallback. A pair must
overlap to be matched, except that a track lost for a while (someone hidden behind another person)
is re-identified by a clearly similar descriptor near where it was last seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from deepfever.faces.types import Face

TENTATIVE, CONFIRMED, DELETED = "tentative", "confirmed", "deleted"


@dataclass(eq=False)
class Track:
    """One face followed over time. ``id`` is ``None`` until the track is confirmed."""

    box: np.ndarray
    embedding: np.ndarray | None
    appearance: np.ndarray | None = None
    id: int | None = None
    state: str = TENTATIVE
    hits: int = 1
    misses: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    def predicted_box(self) -> np.ndarray:
        """Where the face should be now: the last box moved on by its velocity for every missed frame."""
        return self.box + self.velocity * (self.misses + 1)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) ``x1, y1, x2, y2`` boxes -> (N, M)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)[None]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


APPEARANCE_BINS = (8, 4, 4)
"""Hue, saturation and value bins of the appearance descriptor (128 values)."""


def appearance_descriptor(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Colour histogram (HSV, square-rooted, unit length) of a face and the hair and clothes around it.

    The region is the box widened by a quarter each side and extended half a face up and down, so
    hair colour and collar count: cues that tell two people apart but say nothing of expression.
    The dot product of two descriptors is their Bhattacharyya coefficient, 1 for equal colours.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    left, right = int(max(0, x1 - 0.25 * width)), int(min(rgb.shape[1], x2 + 0.25 * width))
    top, bottom = int(max(0, y1 - 0.5 * height)), int(min(rgb.shape[0], y2 + 0.5 * height))
    if right <= left or bottom <= top:
        return np.zeros(int(np.prod(APPEARANCE_BINS)))
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[top:bottom, left:right]), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(APPEARANCE_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    root = np.sqrt(histogram / max(float(histogram.sum()), 1.0))
    return root / max(float(np.linalg.norm(root)), 1e-12)


class FaceTracker:
    """Assign each detection of a frame to a track; call ``update`` once per processed frame, in order.

    Args:
        max_age: frames a confirmed track survives without a detection (occlusion, a missed face).
        min_hits: consecutive detections before a new track is confirmed and gets an id; a tentative
            track that misses one frame is dropped, which filters one-off false detections.
        min_iou: a detection must overlap a track's predicted box at least this much to join it.
        appearance_weight: share of the cost taken by appearance: descriptors when given, else the
            cosine distance of embeddings (0 = boxes only).
        smoothing: how much of the old velocity and appearance is kept at each update (0 = latest only).
        reid_similarity: a confirmed track that has missed frames may take a detection it does not
            overlap when their appearance descriptors are at least this similar (0 disables) ...
        reid_radius: ... and the detection lies within this many face widths of where it was last seen.

    Ids are 0, 1, 2, ... in the order tracks are confirmed, so the same input always gives the same ids.

    Example:
        >>> tracker = FaceTracker(min_hits=1)
        >>> [track.id for track in tracker.update(np.array([[0, 0, 10, 10]]))]
        [0]
    """

    def __init__(self, max_age: int = 24, min_hits: int = 3, min_iou: float = 0.1,
                 appearance_weight: float = 0.3, smoothing: float = 0.5, reid_similarity: float = 0.9,
                 reid_radius: float = 3.0) -> None:
        if max_age < 0 or min_hits < 1:
            raise ValueError(f"FaceTracker: need max_age >= 0 and min_hits >= 1, got max_age={max_age}, min_hits={min_hits}")
        if not 0 <= min_iou < 1 or not 0 <= appearance_weight < 1 or not 0 <= smoothing < 1:
            raise ValueError(
                f"FaceTracker: min_iou, appearance_weight and smoothing must lie in [0, 1), got {min_iou}, "
                f"{appearance_weight}, {smoothing}"
            )
        self.max_age = max_age
        self.min_hits = min_hits
        self.min_iou = min_iou
        self.appearance_weight = appearance_weight
        self.smoothing = smoothing
        self.reid_similarity = reid_similarity
        self.reid_radius = reid_radius
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None,
               appearances: np.ndarray | None = None) -> list[Track]:
        """Match this frame's (N, 4) boxes (optional (N, D) unit embeddings and ``appearance_descriptor`` s);
        returns the track of each.

        A returned track may still be tentative (``id is None``); it becomes confirmed or deleted in a
        later update, so hold on to the objects, not to the ids.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        for name, values in (("embeddings", embeddings), ("appearances", appearances)):
            if values is not None and len(values) != len(boxes):
                raise ValueError(f"FaceTracker.update: {len(boxes)} boxes but {len(values)} {name}; pass one per box")
        live = [track for track in self.tracks if track.state != DELETED]
        pairs = self._match(live, boxes, embeddings, appearances)
        assigned: list[Track | None] = [None] * len(boxes)
        for track_index, box_index in pairs:
            track = live[track_index]
            self._absorb(track, boxes[box_index], None if embeddings is None else embeddings[box_index],
                         None if appearances is None else appearances[box_index])
            assigned[box_index] = track
        matched = {track_index for track_index, _ in pairs}
        for track_index, track in enumerate(live):
            if track_index not in matched:
                track.misses += 1
                if track.state == TENTATIVE or track.misses > self.max_age:
                    track.state = DELETED
        for box_index, track in enumerate(assigned):
            if track is None:
                embedding = None if embeddings is None else np.asarray(embeddings[box_index], np.float64)
                appearance = None if appearances is None else np.asarray(appearances[box_index], np.float64)
                assigned[box_index] = track = Track(box=boxes[box_index].copy(), embedding=embedding, appearance=appearance)
                self.tracks.append(track)
        for track in self.tracks:  # creation order, so ids follow it
            if track.state == TENTATIVE and track.hits >= self.min_hits:
                track.state, track.id = CONFIRMED, self._next_id
                self._next_id += 1
        self.tracks = [track for track in self.tracks if track.state != DELETED]
        return assigned  # type: ignore[return-value]

    def _match(self, tracks: list[Track], boxes: np.ndarray, embeddings: np.ndarray | None,
               appearances: np.ndarray | None) -> list[tuple[int, int]]:
        if not tracks or not len(boxes):
            return []
        iou = box_iou(np.stack([track.predicted_box() for track in tracks]), boxes)
        cost = 1.0 - iou
        allowed = iou >= max(self.min_iou, 1e-9)
        looks = None
        if appearances is not None and all(t.appearance is not None for t in tracks):
            looks = np.stack([track.appearance for track in tracks]) @ np.asarray(appearances, np.float64).T
            if self.reid_similarity > 0:
                allowed |= self._reidentifiable(tracks, boxes, looks)
        elif embeddings is not None and all(t.embedding is not None for t in tracks):
            looks = (1.0 + np.stack([track.embedding for track in tracks]) @ np.asarray(embeddings, np.float64).T) / 2
        if looks is not None and self.appearance_weight > 0:
            cost = (1 - self.appearance_weight) * cost + self.appearance_weight * (1.0 - looks)
        # Confirmed tracks win ties against tentative ones; a tiny bias keeps the assignment deterministic.
        cost = cost + np.array([0.0 if track.state == CONFIRMED else 1e-3 for track in tracks])[:, None]
        rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e6))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]

    def _reidentifiable(self, tracks: list[Track], boxes: np.ndarray, looks: np.ndarray) -> np.ndarray:
        """(tracks, boxes) pairs a lost confirmed track may take without overlap: alike, and close to where it was."""
        lost = np.array([track.state == CONFIRMED and track.misses > 0 for track in tracks])
        last = np.stack([track.box for track in tracks])
        distance = np.linalg.norm(_centres(last)[:, None] - _centres(boxes)[None], axis=2)
        width = np.maximum(last[:, 2] - last[:, 0], 1.0)[:, None]
        return lost[:, None] & (looks >= self.reid_similarity) & (distance <= self.reid_radius * width)

    def _absorb(self, track: Track, box: np.ndarray, embedding: np.ndarray | None, appearance: np.ndarray | None) -> None:
        velocity = (box - track.box) / (track.misses + 1)
        track.velocity = self.smoothing * track.velocity + (1 - self.smoothing) * velocity
        track.box = box.copy()
        track.hits += 1
        track.misses = 0
        track.embedding = self._mix(track.embedding, embedding)
        track.appearance = self._mix(track.appearance, appearance)

    def _mix(self, old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
        """Moving average of unit vectors, renormalised."""
        if new is None:
            return old
        new = np.asarray(new, np.float64)
        mixed = new if old is None else self.smoothing * old + (1 - self.smoothing) * new
        return mixed / max(float(np.linalg.norm(mixed)), 1e-12)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def follow_faces(previous_grey: np.ndarray, grey: np.ndarray, faces: list[Face]) -> list[Face]:
    """Move faces found in the previous frame to this one by optical flow of their five landmarks.

    Used between detector runs (``detect_every > 1``): Lucas-Kanade on five points costs well under a
    millisecond, a detector tens. Boxes follow the landmarks' mean shift and spread; a face whose
    landmarks cannot be followed is dropped (the tracker then counts a miss).
    """
    if not faces:
        return []
    points = np.concatenate([face.landmarks for face in faces]).astype(np.float32).reshape(-1, 1, 2)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(previous_grey, grey, points, None, winSize=(21, 21), maxLevel=3)
    moved, status = moved.reshape(-1, 5, 2), status.reshape(-1, 5)
    followed = []
    for face, old, new, ok in zip(faces, points.reshape(-1, 5, 2), moved, status):
        if not ok.all():
            continue
        spread_old = float(np.linalg.norm(old - old.mean(0), axis=1).mean())
        scale = float(np.linalg.norm(new - new.mean(0), axis=1).mean()) / max(spread_old, 1e-6)
        centre = (face.box[:2] + face.box[2:]) / 2
        half = (face.box[2:] - face.box[:2]) / 2 * scale
        centre = centre + (new.mean(0) - old.mean(0))
        box = np.concatenate([centre - half, centre + half]).astype(np.float32)
        followed.append(Face(box=box, landmarks=new.astype(np.float32), score=face.score))
    return followed
