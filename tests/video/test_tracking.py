"""Tracker: people crossing and hiding each other, scene cuts, and the parts that make it work (issue 19)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepfever.video.scenecut import SceneCutDetector
from deepfever.video.tracking import FaceTracker, appearance_descriptor, appearance_similarity

HAIR = {"A": (200, 40, 30), "B": (30, 60, 200), "C": (40, 160, 60)}
SHIRT = {"A": (230, 200, 40), "B": (120, 40, 140), "C": (200, 200, 200)}
SKIN = {"A": (225, 180, 150), "B": (150, 100, 70), "C": (240, 205, 180)}
EYES = {"A": (0.28, 0.35, 0.10), "B": (0.36, 0.45, 0.07), "C": (0.22, 0.30, 0.13)}
"""Each person's eye spacing from the centre, height and size, as fractions of the face width."""


def draw_people(background: tuple[int, int, int], people: list[tuple[str, float, float, float]],
                shape: tuple[int, int] = (140, 320)) -> np.ndarray:
    """A frame with people drawn back to front: (name, left x, top y, face width); the face box is
    ``face_box``, hair above it and a shirt below, and eyes, brows and mouth of each person's own."""
    image = np.full((*shape, 3), background, np.uint8)
    for name, x, y, width in people:
        height = 1.2 * width
        cv2.rectangle(image, (int(x), int(y - 0.35 * height)), (int(x + width), int(y + 0.1 * height)), HAIR[name], -1)
        cv2.rectangle(image, (int(x - 0.1 * width), int(y + height)), (int(x + 1.1 * width), int(y + 1.5 * height)), SHIRT[name], -1)
        centre = (x + width / 2, y + height / 2)
        cv2.ellipse(image, (int(centre[0]), int(centre[1])), (int(width / 2) - 1, int(height / 2) - 1), 0, 0, 360, SKIN[name], -1)
        spread, level, size = EYES[name]
        for side in (-1, 1):
            eye = (int(centre[0] + side * spread * width), int(y + level * height))
            cv2.circle(image, eye, max(1, int(size * width)), (30, 20, 20), -1)
            cv2.line(image, (eye[0] - int(0.1 * width), eye[1] - int(0.12 * height)), (eye[0] + int(0.1 * width), eye[1] - int(0.1 * height)), HAIR[name], 2)
        cv2.ellipse(image, (int(centre[0]), int(y + 0.75 * height)), (int(size * 2.5 * width), int(0.05 * height)), 0, 0, 360, (150, 40, 50), -1)
    return image


def face_box(x: float, y: float, width: float) -> np.ndarray:
    return np.array([x, y, x + width, y + 1.2 * width])


def crossing_with_occlusion():
    """Issue 19's case at 25 frames/s: B walks left in front of A, who walks right and is hidden for about a
    second. While B covers A, A's detected box is only its visible part: it shrinks and slides back
    against A's motion, before vanishing and again while A re-emerges on B's other side.
    Yields (frame, [(person, box)]) with boxes as a detector gives them, left to right."""
    width, top = 40.0, 40.0
    for t in range(110):
        a, b = 60.0 + 0.7 * t, 240.0 - 1.4 * t
        frame = draw_people((90, 90, 90), [("A", a, top, width), ("B", b, top, width)])
        visible = [("B", face_box(b, top, width))]
        left, right = a, a + width  # A's part not behind B
        if b < right and b + width > left:
            left, right = (a, b) if b - a > a + width - (b + width) else (b + width, a + width)
        if right - left >= 0.6 * width:
            visible.append(("A", np.array([left, top, right, top + 1.2 * width])))
        yield frame, sorted(visible, key=lambda item: item[1][0])


def run(tracker: FaceTracker, clip, cuts: SceneCutDetector | None = None, appearance: bool = True) -> dict[str, set]:
    """Feed the clip's boxes (and appearance descriptors); returns each person's confirmed track ids."""
    results = []
    for frame, visible in clip:
        boxes = np.stack([box for _, box in visible])
        looks = np.stack([appearance_descriptor(frame, box) for box in boxes]) if appearance else None
        tracks = tracker.update(boxes, appearances=looks, scene_cut=cuts is not None and cuts.is_cut(frame))
        results += [(name, track) for (name, _), track in zip(visible, tracks)]
    ids: dict[str, set] = {}
    for name, track in results:
        if track.id is not None:
            ids.setdefault(name, set()).add(track.id)
    return ids


@pytest.mark.parametrize("appearance", [False, True])
def test_person_covered_for_a_second_by_another_keeps_their_track(appearance):
    """On boxes alone the old tracker made 3 tracks of 2 people here: A's shrinking, sliding box corrupted
    its velocity, so its prediction missed where A came out."""
    clip = list(crossing_with_occlusion())
    hidden = sum(all(name != "A" for name, _ in visible) for _, visible in clip)
    shrunk = sum(any(name == "A" and box[2] - box[0] < 39 for name, box in visible) for _, visible in clip)
    assert 22 <= hidden <= 30 and shrunk >= 6  # about a second hidden, and covered gradually
    ids = run(FaceTracker(max_age=50, min_hits=2), clip, appearance=appearance)
    assert len(ids["A"]) == len(ids["B"]) == 1 and ids["A"] != ids["B"], ids


def test_velocity_comes_from_reliable_boxes_only():
    """A box that shrinks while covered moves the track, not its velocity; a lost track is predicted from
    the last full-size box."""
    tracker = FaceTracker(min_hits=1, velocity_window=4)
    for t in range(8):
        (track,) = tracker.update(np.array([[100 + 2 * t, 50, 140 + 2 * t, 98]]))
    np.testing.assert_allclose(track.velocity, [2, 0, 2, 0])
    for t, right in zip(range(8, 11), (140, 130, 124)):  # covered from the right: box shrinks, centre slides back
        tracker.update(np.array([[100 + 2 * t - 10 * (t - 7), 50, 100 + right - 10 * (t - 7), 98]]))
    np.testing.assert_allclose(track.velocity, [2, 0, 2, 0])
    tracker.update(np.zeros((0, 4)))
    np.testing.assert_allclose(track.predicted_box(), [100 + 2 * 12, 50, 140 + 2 * 12, 98])


SHOTS = (
    ((90, 90, 90), lambda t: [("A", 40 + t, 40, 40), ("B", 220 - t, 40, 40)]),
    ((40, 110, 170), lambda t: [("B", 30, 20, 60), ("A", 200, 20, 60)]),
    ((170, 150, 110), lambda t: [("A", 100, 50, 30), ("C", 150, 50, 30), ("B", 200, 50, 30)]),
)
"""Three shots of 30 frames: two people walking; a cut to another backdrop where they stand swapped and
closer; a cut to a third, far away, back in the first order and with a newcomer between them."""


def test_scene_cut_keeps_identities_by_appearance():
    clip, starts = [], []
    for backdrop, people in SHOTS:
        for t in range(30):
            frame = draw_people(backdrop, people(t))
            starts.append(t == 0)
            clip.append((frame, [(name, face_box(x, y, width)) for name, x, y, width in people(t)]))
    ids = run(FaceTracker(max_age=50, min_hits=2), clip, SceneCutDetector())
    assert len(ids["A"]) == len(ids["B"]) == len(ids["C"]) == 1, ids
    assert len(ids["A"] | ids["B"] | ids["C"]) == 3, ids
    found = SceneCutDetector()
    assert [found.is_cut(frame) for frame, _ in clip] == [start and index > 0 for index, start in enumerate(starts)]


def test_half_covered_face_still_looks_like_itself():
    """The descriptor is compared on its best-matching parts, so covering half a face costs little."""
    frame = draw_people((90, 90, 90), [("A", 40, 40, 40), ("B", 200, 40, 40)])
    box_a, box_b = face_box(40, 40, 40), face_box(200, 40, 40)
    covered = frame.copy()
    covered[:, 60:90] = (90, 90, 90)  # the right half of A's face and hair gone
    a, b, half = (appearance_descriptor(image, box) for image, box in ((frame, box_a), (frame, box_b), (covered, box_a)))
    same, other = appearance_similarity(a[None], np.stack([half, b]))
    assert same > 0.8 > 0.6 > other


def synthetic_descriptor(direction: list[float]) -> np.ndarray:
    """A descriptor whose every colour part and pattern is the unit ``direction`` (a few values, zeros after):
    two of them are ``0.75 * cosine + 0.25`` alike."""
    from deepfever.video.tracking import APPEARANCE_PARTS, APPEARANCE_SIZE

    parts = len(APPEARANCE_PARTS) + 1
    part = np.zeros(APPEARANCE_SIZE // parts)
    part[:len(direction)] = np.asarray(direction) / np.linalg.norm(direction)
    return np.tile(part, parts)


def looks_like(similarity: float) -> np.ndarray:
    """A synthetic descriptor whose ``appearance_similarity`` to ``looks_like(1.0)`` is ``similarity`` (>= 0.25)."""
    cosine = (similarity - 0.25) / 0.75
    descriptor = synthetic_descriptor([cosine, np.sqrt(1 - cosine ** 2)])
    assert abs(appearance_similarity(synthetic_descriptor([1.0])[None], descriptor[None])[0] - similarity) < 1e-9
    return descriptor


def box_at(x: float) -> np.ndarray:
    return np.array([x, 0.0, x + 40, 48.0])


def test_new_track_without_looks_does_not_blind_a_lost_one():
    """Two people side by side (touching boxes: no reliable look yet) must not switch appearance off for
    everyone: A, lost, comes back just beside where it was and is re-identified by its looks."""
    tracker = FaceTracker(max_age=50, min_hits=1)
    stranger = looks_like(0.3)
    a_ids = set()
    for t in range(12):
        boxes, looks = [box_at(200), box_at(240.5)], [stranger, stranger]  # B and C, touching
        if t < 5 or t >= 10:
            boxes.append(box_at(0 if t < 5 else 50))  # A leaves for 5 frames, then reappears 1.25 widths away
            looks.append(looks_like(1.0))
        tracks = tracker.update(np.stack(boxes), appearances=np.stack(looks))
        if len(tracks) == 3:
            a_ids.add(tracks[2].id)
    assert a_ids == {tracks[2].id} and tracks[2].id not in {tracks[0].id, tracks[1].id}, a_ids


def test_lost_track_claims_a_face_coming_out_first_as_a_sliver():
    """A face coming out from behind something looks only almost like itself at first (0.7 < 0.75): its
    new track waits for an id, and when the face looks like the lost track again the lost track takes it,
    rows of the waiting frames included."""
    tracker = FaceTracker(max_age=50, min_hits=2)
    seen = []
    for t in range(21):
        if 6 <= t < 16:  # hidden
            tracker.update(np.zeros((0, 4)), appearances=np.zeros((0, len(looks_like(1.0)))))
            continue
        box, looks = (box_at(0), 1.0) if t < 6 else (box_at(50), 0.7) if t < 18 else (box_at(52), 1.0)
        (track,) = tracker.update(box[None], appearances=looks_like(looks)[None])
        seen.append(track)
    assert {track.id for track in seen} == {0}, [track.id for track in seen]


def test_new_track_waits_for_its_id_at_most_reid_wait_frames():
    """Someone new who only almost looks like a lost person gets their own id after ``min_hits + reid_wait``."""
    tracker = FaceTracker(max_age=50, min_hits=2, reid_wait=5)
    for t in range(6):
        tracker.update(box_at(0)[None], appearances=looks_like(1.0)[None])
    ids = [tracker.update(box_at(50)[None], appearances=looks_like(0.7)[None])[0].id for _ in range(8)]
    assert ids == [None] * 6 + [1, 1], ids


def test_a_good_pair_is_not_given_up_to_pair_everyone():
    """B walks on where A was hidden; B's face also looks a little like A (0.75), and A comes out beside it,
    looking like nobody yet. B keeps its face: A must not take it just so that B can be paired with the
    face beside (overlap 0.2, looks 0.25) and everyone gets a partner (plain Hungarian did exactly that)."""
    tracker = FaceTracker(max_age=50, min_hits=1)
    a, b = synthetic_descriptor([0.0, 1.0]), synthetic_descriptor([1.0, 0.0])
    for t in range(26):
        if t < 5:
            (track_a,) = tracker.update(box_at(120)[None], appearances=a[None])
        elif t >= 20:  # A hidden long enough that B's boxes are its own, reliable ones
            (track_b,) = tracker.update(box_at(100)[None], appearances=b[None])
        else:
            tracker.update(np.zeros((0, 4)), appearances=np.zeros((0, len(a))))
    b_face, beside = synthetic_descriptor([0.74, 0.6726]), synthetic_descriptor([0.0, 0.0, 1.0])
    assert appearance_similarity(a[None], b_face[None])[0] > 0.75
    tracks = tracker.update(np.stack([box_at(101), box_at(125)]), appearances=np.stack([b_face, beside]))
    assert tracks[0] is track_b and tracks[1] is not track_a


def test_descriptor_colours_are_those_of_the_face_and_of_each_half():
    """The whole face's histogram is taken as the sum of its halves' (one conversion, two histograms):
    it must equal the histograms of the three regions measured one by one, also for a box over the edge."""
    from deepfever.video.tracking import APPEARANCE_BINS

    frame = draw_people((90, 90, 90), [("A", 40, 40, 40), ("B", 290, 40, 40)])
    bins = int(np.prod(APPEARANCE_BINS))
    for box in (face_box(40, 40, 40), face_box(290, 40, 40), np.array([-13.7, 21.2, 27.9, 70.4])):
        descriptor = appearance_descriptor(frame, box)
        for number, (left, right) in enumerate(((0.1, 0.9), (0.1, 0.5), (0.5, 0.9))):
            x1, x2 = int(max(0, box[0] + left * (box[2] - box[0]))), int(min(frame.shape[1], box[0] + right * (box[2] - box[0])))
            y1, y2 = int(max(0, box[1] + 0.1 * (box[3] - box[1]))), int(min(frame.shape[0], box[1] + 0.9 * (box[3] - box[1])))
            hsv = cv2.cvtColor(np.ascontiguousarray(frame[y1:y2, x1:x2]), cv2.COLOR_RGB2HSV)
            histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(APPEARANCE_BINS), [0, 180, 0, 256, 0, 256]).ravel()
            root = np.sqrt(histogram / histogram.sum())
            np.testing.assert_allclose(descriptor[number * bins:(number + 1) * bins], root / np.linalg.norm(root), atol=1e-12)


def test_small_assignments_pick_what_scipy_picks_without_importing_it() -> None:
    """One or two faces are paired by trying permutations (scipy.optimize costs a third of a second to import)."""
    from scipy.optimize import linear_sum_assignment

    from deepfever.video.tracking import _least_cost_assignment

    rng = np.random.default_rng(0)
    for _ in range(500):
        cost = rng.random(tuple(rng.integers(0, 5, 2)))
        cost[rng.random(cost.shape) < 0.3] = 1e6  # disallowed pairs, as the tracker marks them
        rows, cols = _least_cost_assignment(cost)
        expected_rows, expected_cols = linear_sum_assignment(cost)
        assert np.isclose(cost[rows, cols].sum(), cost[expected_rows, expected_cols].sum())
        assert len(rows) == len(expected_rows) and list(rows) == sorted(rows)
