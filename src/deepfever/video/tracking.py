"""Link per-frame face detections into tracks with stable ids, through occlusions, crossings and cuts.

Motion is observation-centric (after OC-SORT, Cao et al. 2023): a track's velocity comes only from
*reliable* observations, boxes that keep the track's recent size and touch no other face (detected, or
where a just-hidden track is predicted). While a face is being covered its box shrinks and slides;
those frames move the box but teach the track neither motion nor looks, and a lost track is predicted
from its last reliable box. When it is found again the velocity is re-estimated from that box and the
new one, as if the gap had been observed.

Matching is two assignment problems per frame (Hungarian, ``scipy.optimize.linear_sum_assignment`` for crowds):
first tracks take detections overlapping their predicted box, on a cost of overlap and appearance
(appearance decides most where one face overlaps several predictions, as when two people cross; a
lost track must also look alike; a pair is never forced in just so that everyone gets a partner); then
lost tracks (kept ``max_age`` frames) take what is left, or what a new track took, when they look alike
and the face lies near the path from their last reliable box to their predicted one. A new track that a
lost one nearly recognises waits for its id (``reid_wait``): a face coming out from behind something
shows a sliver first, and looks like itself a few frames later.

Appearance is ``appearance_descriptor``: colours of the face and of each half (a half covered face
still matches) and the pattern of the upper face, all from inside the face box, so a new background
does not change it. After a scene cut (``update(..., scene_cut=True)``, from
``deepfever.video.scenecut.SceneCutDetector``) positions mean nothing: tracks are found by appearance alone.

``benchmarks/tracking.py`` measures it against the tracker it replaced and against norfair-enough.
"""
from __future__ import annotations

from collections import deque
from itertools import permutations
from dataclasses import dataclass, field

import cv2
import numpy as np

from deepfever.faces.boxes import box_iou
from deepfever.faces.types import Face

TENTATIVE, CONFIRMED, DELETED = "tentative", "confirmed", "deleted"


@dataclass(eq=False)
class Track:
    """One face followed over time. ``id`` is ``None`` until the track is confirmed.

    ``box`` is the latest observed box; ``anchor`` and ``anchor_frame`` the latest *reliable* one (full
    size, not overlapping another face), from which a lost track is predicted. ``velocity`` is in
    pixels per frame for ``x1, y1, x2, y2``, estimated from reliable observations only.
    """

    box: np.ndarray
    embedding: np.ndarray | None
    appearance: np.ndarray | None = None
    id: int | None = None
    state: str = TENTATIVE
    hits: int = 1
    misses: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    anchor: np.ndarray | None = None
    anchor_frame: int = 0
    last_frame: int = 0
    after_cut: bool = False
    resized_run: int = 0
    history: deque = field(default_factory=lambda: deque(maxlen=16))
    gallery: deque = field(default_factory=lambda: deque(maxlen=8))

    def predicted_box(self, frame: int | None = None) -> np.ndarray:
        """Where the face should be at ``frame`` (default: the next one).

        Seen last frame: the observed box moved on by one frame of velocity. Lost: the last reliable
        box, its centre moved on by the velocity for the whole gap and its size kept, so the frames
        spent shrinking behind someone do not pull the prediction away.
        """
        frame = self.last_frame + self.misses + 1 if frame is None else frame
        if self.misses == 0:
            return self.box + self.velocity
        anchor = self.box if self.anchor is None else self.anchor
        shift = (self.velocity[:2] + self.velocity[2:]) / 2 * (frame - self.anchor_frame)  # the centre moves, the size stays
        return anchor + np.tile(shift, 2)


APPEARANCE_BINS = (8, 4, 4)
"""Hue, saturation and value bins of each colour part's histogram (128 values)."""

APPEARANCE_REGION = (0.1, 0.1, 0.9, 0.9)
"""The face without its border (no background, whatever the shot), as fractions of the face box (left, top,
right, bottom); its colours are measured as a whole and by halves."""

APPEARANCE_PARTS = ("whole", "left half", "right half")
"""Colour parts of the descriptor; each half still matches when the other half is covered."""

PATTERN_REGION, PATTERN_SIZE = (0.15, 0.15, 0.85, 0.6), (16, 8)
"""The upper face (brows, eyes, nose bridge: little expression), as fractions of the face box, as a grey
(width, height) thumbnail."""

APPEARANCE_SIZE = len(APPEARANCE_PARTS) * int(np.prod(APPEARANCE_BINS)) + int(np.prod(PATTERN_SIZE))
"""Length of an ``appearance_descriptor``."""


def appearance_descriptor(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """What a face looks like, apart from where it is and what it expresses: colours and the upper face's pattern.

    Colour histograms (HSV, square-rooted, unit length) of the face inside its border and of its left
    and right halves, then the upper face shrunk to a 16x8 grey thumbnail, zero mean and unit length.
    Only pixels inside the face box count, so a new background after a cut or behind a walking person
    changes nothing. A region outside the image (a half narrower than 2 pixels) is all zeros. Compare
    with ``appearance_similarity``.
    """
    bins = int(np.prod(APPEARANCE_BINS))
    parts = np.zeros(APPEARANCE_SIZE)
    patch = _region(rgb, box, APPEARANCE_REGION)
    if patch is not None:
        # One conversion, one histogram per half; the whole face's is their sum (the halves split it exactly).
        hsv = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)
        x1, x2 = float(box[0]), float(box[2])
        start = int(max(0.0, x1 + APPEARANCE_REGION[0] * (x2 - x1)))  # the patch's first column in the image
        middle = min(max(int(x1 + 0.5 * (x2 - x1)) - start, 0), hsv.shape[1])
        halves = [_histogram(hsv[:, :middle]), _histogram(hsv[:, middle:])]
        for number, (histogram, wide) in enumerate(((halves[0] + halves[1], True), (halves[0], middle >= 2),
                                                    (halves[1], hsv.shape[1] - middle >= 2))):  # APPEARANCE_PARTS' order
            if wide:
                root = np.sqrt(histogram / max(float(histogram.sum()), 1.0))
                parts[number * bins:(number + 1) * bins] = root / max(float(np.linalg.norm(root)), 1e-12)
    patch = _region(rgb, box, PATTERN_REGION)
    if patch is not None:
        grey = cv2.resize(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), PATTERN_SIZE, interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
        grey -= grey.mean()
        norm = float(np.linalg.norm(grey))
        parts[len(APPEARANCE_PARTS) * bins:] = grey / norm if norm > 1e-6 * grey.size else 0.0
    return parts


def _histogram(hsv: np.ndarray) -> np.ndarray:
    if hsv.shape[1] == 0:
        return np.zeros(int(np.prod(APPEARANCE_BINS)), np.float32)
    return cv2.calcHist([np.ascontiguousarray(hsv)], [0, 1, 2], None, list(APPEARANCE_BINS), [0, 180, 0, 256, 0, 256]).ravel()


def _region(rgb: np.ndarray, box: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray | None:
    """Pixels of ``region`` (fractions of ``box``) inside the image, or ``None`` when fewer than 2x2 remain."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    left, right = int(max(0, x1 + region[0] * width)), int(min(rgb.shape[1], x1 + region[2] * width))
    top, bottom = int(max(0, y1 + region[1] * height)), int(min(rgb.shape[0], y1 + region[3] * height))
    if right - left < 2 or bottom - top < 2:
        return None
    return rgb[top:bottom, left:right]


def appearance_similarity(gallery: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """How alike (G, APPEARANCE_SIZE) stored descriptors and (N, APPEARANCE_SIZE) new ones are -> (N,) in [0, 1].

    The mean of two cues: colour, the best Bhattacharyya coefficient over the whole face and its halves
    (a face half covered still matches on the half that shows), and pattern, the thumbnails'
    correlation mapped to [0, 1]. A new descriptor scores its best match in the gallery (a person seen
    over time, in several poses).
    """
    count, bins = len(APPEARANCE_PARTS), int(np.prod(APPEARANCE_BINS))
    g, d = np.asarray(gallery, np.float64), np.asarray(descriptors, np.float64)
    colours = np.einsum("gpk,npk->gnp", g[:, :count * bins].reshape(len(g), count, bins),
                        d[:, :count * bins].reshape(len(d), count, bins)).max(axis=2)
    pattern = (1.0 + g[:, count * bins:] @ d[:, count * bins:].T) / 2
    return (0.5 * colours + 0.5 * pattern).max(axis=0)


REID_DOUBT = 0.1
"""How far below the similarity a lost track needs a new face may look and still make its track wait (``reid_wait``)."""


UNMATCHED_COST = 0.4
"""What leaving a track or a detection unpaired costs in the first round, where a pair costs 0 to 1. Plain
Hungarian pairs as many as it can, and so gave a face to the wrong person for everyone to get a partner;
now a poor pair (over 0.8, both left alone) never pushes a better one aside. Chosen on the dev seeds of
``benchmarks/tracking.py`` (no row changed) and extra seeds 9-29, never the report seeds: fewer switches
in slow crossings and crowds."""


class FaceTracker:
    """Assign each detection of a frame to a track; call ``update`` once per processed frame, in order.

    Args:
        max_age: frames a confirmed track is kept without a detection (occlusion, a missed face, a
            person off screen or in another shot).
        min_hits: consecutive detections before a new track is confirmed and gets an id; a tentative
            track that misses one frame is dropped, which filters one-off false detections.
        min_iou: a detection must overlap a track's predicted box this much to join it in the first round.
        appearance_weight: share of the first round's cost taken by appearance (0.8 at least where a
            detection overlaps several predictions).
        reid_similarity: a lost track takes a detection only when their appearance (descriptors when
            given, else embeddings mapped to [0, 1]) is at least this similar, and in the second round
            only when also ...
        reid_radius: ... the detection's centre lies within this many face widths of the path from
            the track's last reliable box to its predicted one. Without any appearance, a lost track
            needs the overlap of the first round. The defaults were chosen on the dev seeds of
            ``benchmarks/tracking.py`` (same-person descriptors: 5 % below 0.78).
        cut_similarity: after a scene cut, the appearance a track needs to take a detection anywhere.
        velocity_window: frames of reliable observations a velocity is measured over.
        reid_wait: frames a new track may wait for its id, past ``min_hits``, while a lost track near
            its path looks almost alike (within ``REID_DOUBT`` of the similarity it needs). A face coming
            out from behind something shows only a sliver at first and looks like itself a few frames
            later; until the new track has an id, the lost track can still claim it, and its rows.

    Ids are 0, 1, 2, ... in the order tracks are confirmed, so the same input always gives the same ids.

    Example:
        >>> tracker = FaceTracker(min_hits=1)
        >>> [track.id for track in tracker.update(np.array([[0, 0, 10, 10]]))]
        [0]
    """

    def __init__(self, max_age: int = 24, min_hits: int = 3, min_iou: float = 0.1,
                 appearance_weight: float = 0.3, reid_similarity: float = 0.75, reid_radius: float = 1.5,
                 cut_similarity: float = 0.8, velocity_window: int = 6, reid_wait: int = 12) -> None:
        if max_age < 0 or min_hits < 1 or velocity_window < 1 or reid_wait < 0:
            raise ValueError(f"FaceTracker: need max_age >= 0, min_hits >= 1, velocity_window >= 1 and reid_wait >= 0, got "
                             f"max_age={max_age}, min_hits={min_hits}, velocity_window={velocity_window}, reid_wait={reid_wait}")
        for name, value in (("min_iou", min_iou), ("appearance_weight", appearance_weight),
                            ("reid_similarity", reid_similarity), ("cut_similarity", cut_similarity)):
            if not 0 <= value < 1 if name in ("min_iou", "appearance_weight") else not 0 <= value <= 1:
                raise ValueError(f"FaceTracker: {name} must lie in [0, 1), got {value!r}")
        if reid_radius < 0:
            raise ValueError(f"FaceTracker: reid_radius is in face widths and must be >= 0, got {reid_radius!r}")
        self.max_age = max_age
        self.min_hits = min_hits
        self.min_iou = min_iou
        self.appearance_weight = appearance_weight
        self.reid_similarity = reid_similarity
        self.reid_radius = reid_radius
        self.cut_similarity = cut_similarity
        self.velocity_window = velocity_window
        self.reid_wait = reid_wait
        self.tracks: list[Track] = []
        self._next_id = 0
        self._frame = -1

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None,
               appearances: np.ndarray | None = None, scene_cut: bool = False) -> list[Track]:
        """Match this frame's (N, 4) boxes (optional (N, D) unit embeddings and ``appearance_descriptor`` s);
        returns the track of each.

        ``scene_cut`` says the camera cut just before this frame: positions are forgotten and tracks
        are found again by appearance. A returned track may still be tentative (``id is None``); it
        becomes confirmed or deleted in a later update, so hold on to the objects, not to the ids.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        for name, values in (("embeddings", embeddings), ("appearances", appearances)):
            if values is not None and len(values) != len(boxes):
                raise ValueError(f"FaceTracker.update: {len(boxes)} boxes but {len(values)} {name}; pass one per box")
        if appearances is not None and len(appearances) and np.shape(appearances)[1] != APPEARANCE_SIZE:
            raise ValueError(f"FaceTracker.update: appearances must be appearance_descriptor outputs of length "
                             f"{APPEARANCE_SIZE}, got {np.shape(appearances)[1]}")
        self._frame += 1
        if scene_cut:
            for track in self.tracks:
                track.after_cut = True
                if track.state == TENTATIVE:
                    track.state = DELETED
        live = [track for track in self.tracks if track.state != DELETED]
        looks = self._looks(live, boxes, embeddings, appearances)
        predicted = [track.predicted_box(self._frame) for track in live]
        pairs = self._match_overlapping(live, predicted, boxes, looks)
        claimed, doubtful = self._match_lost(live, boxes, looks, pairs)
        taken = {box_index: track_index for track_index, box_index in pairs}
        for track_index, box_index in claimed:
            young = taken.pop(box_index, None)
            if young is not None:  # the new track was this lost one all along: its rows take the old id
                live[young].id, live[young].state = live[track_index].id, DELETED
        pairs = [(track_index, box_index) for box_index, track_index in taken.items()] + claimed
        owner = {box_index: track_index for track_index, box_index in pairs}
        overlapped = [self._crowded(boxes, box_index, live, predicted, owner.get(box_index)) for box_index in range(len(boxes))]
        assigned: list[Track | None] = [None] * len(boxes)
        for track_index, box_index in pairs:
            track = live[track_index]
            self._absorb(track, boxes[box_index], overlapped[box_index],
                         None if embeddings is None else embeddings[box_index],
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
                track = Track(box=boxes[box_index].copy(), embedding=embedding, last_frame=self._frame)
                self._observe(track, boxes[box_index], not overlapped[box_index],
                              None if appearances is None else appearances[box_index])
                assigned[box_index] = track
                self.tracks.append(track)
        waiting = {id(assigned[box_index]) for box_index in doubtful}
        for track in self.tracks:  # creation order, so ids follow it
            if track.state == TENTATIVE and track.hits >= self.min_hits + (self.reid_wait if id(track) in waiting else 0):
                track.state, track.id = CONFIRMED, self._next_id
                self._next_id += 1
        self.tracks = [track for track in self.tracks if track.state != DELETED]
        return assigned  # type: ignore[return-value]

    def _looks(self, tracks: list[Track], boxes: np.ndarray, embeddings: np.ndarray | None,
               appearances: np.ndarray | None) -> np.ndarray | None:
        """(tracks, boxes) appearance similarity in [0, 1], NaN for a track with nothing to compare yet.

        Descriptors when given (a track compares its gallery), else embeddings mapped to [0, 1]. Each track
        counts on its own: a new track whose first box was crowded has no gallery, and must not blind the
        others to appearance, least of all a lost track re-emerging beside it.
        """
        if not tracks or not len(boxes) or (appearances is None and embeddings is None):
            return None
        looks = np.full((len(tracks), len(boxes)), np.nan)
        for index, track in enumerate(tracks):
            if appearances is not None:
                if track.gallery:
                    looks[index] = appearance_similarity(np.stack(track.gallery), np.asarray(appearances, np.float64))
            elif track.embedding is not None:
                looks[index] = (1.0 + np.asarray(embeddings, np.float64) @ track.embedding) / 2
        return looks

    def _match_overlapping(self, tracks: list[Track], predicted: list[np.ndarray], boxes: np.ndarray,
                           looks: np.ndarray | None) -> list[tuple[int, int]]:
        """First round: tracks (of this shot) take detections overlapping their predicted box, by overlap and looks.

        A track lost for a frame or more also needs the look of a re-identification, so that it never
        takes a stranger's face just for standing where it was. Where a detection overlaps the
        predictions of several tracks (two people crossing), appearance decides most of the cost.
        """
        candidates = [index for index, track in enumerate(tracks) if not track.after_cut]
        if not candidates or not len(boxes):
            return []
        iou = box_iou(np.stack([predicted[index] for index in candidates]), boxes)
        allowed = iou >= max(self.min_iou, 1e-9)
        cost = 1.0 - iou
        if looks is not None:
            alike = looks[candidates]
            known = ~np.isnan(alike)  # a track with nothing to compare goes by overlap alone
            lost = np.array([tracks[index].misses > 0 for index in candidates])[:, None]
            allowed &= ~(lost & known) | (alike >= self.reid_similarity)
            weight = np.where(allowed.sum(axis=0) > 1, max(self.appearance_weight, 0.8), self.appearance_weight)
            cost = np.where(known, (1 - weight) * cost + weight * (1.0 - np.nan_to_num(alike)), cost)
        # Confirmed tracks win ties against tentative ones; a tiny bias keeps the assignment deterministic.
        cost = cost + np.array([0.0 if tracks[index].state == CONFIRMED else 1e-3 for index in candidates])[:, None]
        return [(candidates[r], c) for r, c in _assign(cost, allowed, UNMATCHED_COST)]

    def _match_lost(self, tracks: list[Track], boxes: np.ndarray, looks: np.ndarray | None,
                    taken: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[int]]:
        """Second round: confirmed tracks still unmatched take, by appearance and place, the detections left
        or taken by a tentative track (a lost face coming back is often first seen as someone new).

        Place is the distance, in face widths, from the path between the track's last reliable box and
        half as far again as its predicted one (it may have stopped, or sped up); after a scene cut it
        does not count. Returns the pairs, and the detections left that a lost track nearby almost
        claimed (their new tracks wait for an id, ``reid_wait``).
        """
        used_tracks = {t for t, _ in taken}
        confirmed_boxes = {b for t, b in taken if tracks[t].state != TENTATIVE}
        lost = [index for index, track in enumerate(tracks) if index not in used_tracks and track.state == CONFIRMED]
        free = [index for index in range(len(boxes)) if index not in confirmed_boxes]
        if not lost or not free or looks is None:
            return [], []
        predicted = np.stack([tracks[index].predicted_box(self._frame) for index in lost])
        anchors = np.stack([tracks[index].box if tracks[index].anchor is None else tracks[index].anchor for index in lost])
        widths = np.maximum(anchors[:, 2] - anchors[:, 0], 1.0)[:, None]
        reach = _centres(anchors) + 1.5 * (_centres(predicted) - _centres(anchors))  # it may have stopped, or sped up
        distance = _distance_to_segments(_centres(boxes[free]), _centres(anchors), reach) / widths
        after_cut = np.array([tracks[index].after_cut for index in lost])[:, None]
        alike = looks[np.ix_(lost, free)]
        near = after_cut | (distance <= self.reid_radius)
        needed = np.where(after_cut, self.cut_similarity, self.reid_similarity)
        allowed = near & (alike >= needed)
        place = np.where(after_cut, 1.0, np.minimum(distance / max(self.reid_radius, 1e-9), 1.0))
        cost = 0.5 * place + 0.5 * (1.0 - alike)
        rows, cols = _least_cost_assignment(np.where(allowed, cost, 1e6))
        pairs = [(lost[r], free[c]) for r, c in zip(rows, cols) if allowed[r, c]]
        claimed = {b for _, b in pairs}
        almost = (near & (alike >= needed - REID_DOUBT)).any(axis=0)
        return pairs, [box for box, doubt in zip(free, almost) if doubt and box not in claimed]

    def _crowded(self, boxes: np.ndarray, box_index: int, tracks: list[Track], predicted: list[np.ndarray],
                 owner: int | None) -> bool:
        """Whether a detection touches another detection or where another track of this shot is predicted.

        Such a face is covering or being covered (the part of a face that still shows ends where the face
        in front begins, so their boxes touch rather than overlap), or it may be someone else's: its box
        moves the track but teaches it neither motion nor looks. Boxes are grown by a tenth of their size.
        """
        others = [boxes[index] for index in range(len(boxes)) if index != box_index]
        others += [predicted[index] for index, track in enumerate(tracks)
                   if index != owner and track.state == CONFIRMED and not track.after_cut
                   and 0 < track.misses <= 2 * self.velocity_window]
        if not others:
            return False
        grown = _grow(np.stack(others))
        return bool((box_iou(_grow(boxes[box_index][None]), grown) > 0).any())  # overlap > 0 exactly when they intersect

    def _absorb(self, track: Track, box: np.ndarray, overlapped: bool, embedding: np.ndarray | None,
                appearance: np.ndarray | None) -> None:
        if track.after_cut:  # a new shot: the old place and motion say nothing about this one
            track.after_cut, track.anchor = False, None
            track.history.clear()
            track.velocity = np.zeros(4)
        track.hits += 1
        track.misses = 0
        track.last_frame = self._frame
        track.box = box.copy()
        if embedding is not None:
            mixed = np.asarray(embedding, np.float64) if track.embedding is None else 0.5 * track.embedding + 0.5 * np.asarray(embedding)
            track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
        keeps_size = self._keeps_size(track, box)
        track.resized_run = 0 if keeps_size else track.resized_run + 1
        if track.resized_run > 2 * self.velocity_window and not overlapped:  # a lasting change of size (a zoom) is the new normal
            track.history.clear()
            track.velocity = np.zeros(4)
            keeps_size, track.resized_run = True, 0
        self._observe(track, box, keeps_size and not overlapped, appearance)

    def _keeps_size(self, track: Track, box: np.ndarray) -> bool:
        """Whether the box keeps the mean width and height of the track's recent reliable boxes (within about 15 %).

        A face being covered or leaving the frame loses width or height within a few frames; one that
        walks towards the camera grows slowly, and a lasting change is accepted after a while (``_absorb``).
        """
        if not track.history:
            return True
        boxes = np.array([old for _, old in track.history])
        ratio = (box[2:] - box[:2]) / np.maximum((boxes[:, 2:] - boxes[:, :2]).mean(axis=0), 1e-9)
        return bool(np.all((ratio >= 0.85) & (ratio <= 1 / 0.85)))

    def _observe(self, track: Track, box: np.ndarray, reliable: bool, appearance: np.ndarray | None) -> None:
        """Record a reliable observation: new anchor, velocity measured over the window, appearance stored."""
        if not reliable:
            return
        track.history.append((self._frame, box.copy()))
        earlier = [(frame, old) for frame, old in list(track.history)[:-1] if frame >= self._frame - self.velocity_window]
        if not earlier and len(track.history) > 1:  # back after a gap: re-estimate over it (OC-SORT's re-update)
            earlier = [track.history[-2]]
        if earlier:
            frame, old = earlier[0]
            track.velocity = (box - old) / (self._frame - frame)
        track.anchor, track.anchor_frame = box.copy(), self._frame
        if appearance is not None:
            track.appearance = np.asarray(appearance, np.float64)
            if not track.gallery or track.hits % 4 == 0:
                track.gallery.append(track.appearance)


def _assign(cost: np.ndarray, allowed: np.ndarray, unmatched: float) -> list[tuple[int, int]]:
    """Least-cost pairs of rows and columns among the ``allowed`` ones, where leaving a row or a column
    unpaired costs ``unmatched``: a pair costing more than both left alone is never forced in to make
    room for another (plain Hungarian pairs as many as it can, however badly)."""
    rows, cols = cost.shape
    full = np.full((rows + cols, cols + rows), 1e6)
    full[:rows, :cols] = np.where(allowed, cost, 1e6)
    full[:rows, cols:][np.diag_indices(rows)] = unmatched
    full[rows:, :cols][np.diag_indices(cols)] = unmatched
    full[rows:, cols:] = 0.0
    picked_rows, picked_cols = _least_cost_assignment(full)
    return [(int(r), int(c)) for r, c in zip(picked_rows, picked_cols) if r < rows and c < cols and allowed[r, c]]


SMALL_ASSIGNMENT = 4
"""Assignment problems up to this many rows or columns are solved by trying every permutation (at most 24)."""


def _least_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (rows ascending) of the one-to-one assignment of least total cost, as scipy's
    ``linear_sum_assignment`` gives. Small problems (one or two faces: most videos) are solved by trying
    every permutation, so scipy.optimize, a third of a second to import (a tenth of a short clip's whole
    run), loads only for crowds."""
    rows, cols = cost.shape
    if max(rows, cols) > SMALL_ASSIGNMENT:
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(cost)
    if rows > cols:
        picked_cols, picked_rows = _least_cost_assignment(cost.T)
        order = np.argsort(picked_rows)
        return picked_rows[order], picked_cols[order]
    every_row = np.arange(rows)
    best = min(permutations(range(cols), rows), key=lambda chosen: float(cost[every_row, list(chosen)].sum()), default=())
    return every_row if best else np.zeros(0, int), np.asarray(best, int)


def _grow(boxes: np.ndarray, share: float = 0.1) -> np.ndarray:
    size = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] - share * size, boxes[:, 2:] + share * size], axis=1)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _distance_to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(segments, points) distance from each point to each segment ``start -> end``."""
    direction = (ends - starts)[:, None]
    offset = points[None] - starts[:, None]
    length = np.maximum((direction ** 2).sum(axis=2), 1e-9)
    along = np.clip((offset * direction).sum(axis=2) / length, 0.0, 1.0)
    return np.linalg.norm(offset - along[..., None] * direction, axis=2)


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
