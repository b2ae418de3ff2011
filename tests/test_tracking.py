"""Tracker: people crossing and hiding each other, scene cuts, and the parts that make it work (issue 19)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepfever.video.scenecut import SceneCutDetector
from deepfever.video.tracking import FaceTracker, appearance_descriptor, appearance_similarity

HAIR = {"A": (200, 40, 30), "B": (30, 60, 200), "C": (40, 160, 60)}
SHIRT = {"A": (230, 200, 40), "B": (120, 40, 140), "C": (200, 200, 200)}


def draw_people(background: tuple[int, int, int], people: list[tuple[str, float, float, float]],
                shape: tuple[int, int] = (140, 320)) -> np.ndarray:
    """A frame with people drawn back to front: (name, left x, top y, face width), hair above, shirt below."""
    image = np.full((*shape, 3), background, np.uint8)
    for name, x, y, width in people:
        height = 1.2 * width
        cv2.rectangle(image, (int(x), int(y - 0.35 * height)), (int(x + width), int(y + 0.1 * height)), HAIR[name], -1)
        cv2.rectangle(image, (int(x - 0.1 * width), int(y + height)), (int(x + 1.1 * width), int(y + 1.5 * height)), SHIRT[name], -1)
        cv2.ellipse(image, (int(x + width / 2), int(y + height / 2)), (int(width / 2) - 1, int(height / 2) - 1), 0, 0, 360,
                    (225, 180, 150), -1)
    return image


def crossing_with_occlusion():
    """Issue 19's case at 25 frames/s: B walks left in front of A, who walks right and is hidden for about a
    second. While B covers A, A's detected box is only its visible part: it shrinks and slides back
    against A's motion, before vanishing and again while A re-emerges on B's other side.
    Yields (frame, [(person, box)]) with boxes as a detector gives them, left to right."""
    width, top = 40.0, 40.0
    for t in range(110):
        a, b = 60.0 + 0.7 * t, 240.0 - 1.4 * t
        frame = draw_people((90, 90, 90), [("A", a, top, width), ("B", b, top, width)])
        visible = [("B", np.array([b, top, b + width, top + 1.2 * width]))]
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


def two_shots():
    """Two people in one shot for 30 frames, then a cut to another background where they stand swapped and
    closer; then a third shot, far away, back in the first order."""
    for t in range(30):
        yield draw_people((90, 90, 90), [("A", 40 + t, 40, 40), ("B", 220 - t, 40, 40)]), t
    for t in range(30):
        yield draw_people((40, 110, 170), [("B", 30, 20, 60), ("A", 200, 20, 60)]), 30 + t
    for t in range(30):
        yield draw_people((170, 150, 110), [("A", 100, 50, 30), ("C", 150, 50, 30), ("B", 200, 50, 30)]), 60 + t


def boxes_of(frame: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each person's face box in a ``two_shots`` frame, found by the skin colour drawn for faces."""
    skin = cv2.inRange(frame, (225, 180, 150), (225, 180, 150))
    count, _, stats, _ = cv2.connectedComponentsWithStats(skin)
    return [(None, np.array([x - 1, y - 1, x + w + 1, y + h + 1], np.float64)) for x, y, w, h, _ in stats[1:count]]


def test_scene_cut_keeps_identities_by_appearance():
    shots = list(two_shots())
    names_by_shot = (["A", "B"], ["B", "A"], ["A", "C", "B"])
    clip = []
    for frame, t in shots:
        boxes = sorted(boxes_of(frame), key=lambda item: item[1][0])
        names = names_by_shot[t // 30]
        assert len(boxes) == len(names)
        clip.append((frame, [(name, box) for name, (_, box) in zip(names, boxes)]))
    cuts = SceneCutDetector()
    ids = run(FaceTracker(max_age=50, min_hits=2), clip, cuts)
    assert ids["A"] != ids["B"] and len(ids["A"]) == len(ids["B"]) == len(ids["C"]) == 1, ids
    assert ids["C"] not in (ids["A"], ids["B"])
    found = SceneCutDetector()
    assert [t for frame, t in shots if found.is_cut(frame)] == [30, 60]


def test_half_covered_face_still_looks_like_itself():
    """The descriptor is compared on its best-matching parts, so covering half a face costs little."""
    frame = draw_people((90, 90, 90), [("A", 40, 40, 40), ("B", 200, 40, 40)])
    box_a, box_b = np.array([40.0, 40, 80, 88]), np.array([200.0, 40, 240, 88])
    covered = frame.copy()
    covered[:, 60:90] = (90, 90, 90)  # the right half of A's face and hair gone
    a, b, half = (appearance_descriptor(image, box) for image, box in ((frame, box_a), (frame, box_b), (covered, box_a)))
    same, other = appearance_similarity(a[None], np.stack([half, b]))
    assert same > 0.9 and other < 0.7
