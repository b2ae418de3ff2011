"""Video: frame decoding and sampling, face tracking, rows over time, timeline plot, annotated video."""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfever import Extractor
from deepfever.faces.types import Face
from deepfever.video import (FaceTracker, VideoReadError, extract_video, iter_frames, plot_timeline, probe_video,
                             write_annotated_video)
from deepfever.video.tracking import follow_faces

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CLIP = SHARED / "data/video/WolfgangLanger_Pexels.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
BUNDLED = Path(__file__).resolve().parents[2] / "src/deepfever/weights/fevernet_s.ferplus.safetensors"
needs_clip = pytest.mark.skipif(not (CLIP.is_file() and YUNET.is_file()), reason="shared video or YuNet model absent")


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory) -> Path:
    """50 frames at 25 fps, 64x48, red; frame i carries its index as the green level (10 * i)."""
    path = tmp_path_factory.mktemp("video") / "synthetic.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for index in range(50):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 2] = 220  # BGR: red
        frame[..., 1] = 5 * index
        writer.write(frame)
    writer.release()
    return path


def test_every_frame_in_order_as_rgb(synthetic_video):
    frames = list(iter_frames(synthetic_video))
    assert [frame.index for frame in frames] == list(range(50))
    np.testing.assert_allclose([frame.time_s for frame in frames], np.arange(50) / 25, atol=1e-3)
    rgb = frames[20].rgb
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() > 180 and rgb[..., 2].mean() < 40  # red is channel 0 after BGR -> RGB
    assert abs(float(rgb[..., 1].mean()) - 100) < 12  # the frame's own content, not a neighbour's
    assert probe_video(synthetic_video).frame_count == 50


@pytest.mark.parametrize("fps, expected", [(5, list(range(0, 50, 5))), (10, [0, 3, 5, 8, 10, 13, 15, 18, 20]),
                                           (100, list(range(50)))])
def test_sampling_picks_first_frame_at_each_sample_time(synthetic_video, fps, expected):
    frames = list(iter_frames(synthetic_video, fps=fps))
    assert [frame.index for frame in frames][: len(expected)] == expected
    times = np.array([frame.time_s for frame in frames])
    assert len(frames) == len(set(frame.index for frame in frames)) and np.all(np.diff(times) > 0)
    if fps < 25:
        samples = np.arange(len(frames)) / fps
        assert np.all(times >= samples - 1e-6) and np.all(times < samples + 1 / 25)


def test_unreadable_inputs_fail_before_any_frame(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"this is not a video at all" * 10)
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(VideoReadError, match="not a readable video|no decodable frame"):
        next(iter_frames(fake))
    with pytest.raises(VideoReadError, match="is an image"):
        next(iter_frames(still))
    with pytest.raises(FileNotFoundError, match="no such video"):
        next(iter_frames(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="positive"):
        next(iter_frames(fake, fps=0))


def test_track_survives_a_five_frame_miss_but_not_a_long_one():
    tracker = FaceTracker(max_age=6, min_hits=2)
    ids = []
    for frame in range(40):
        box = np.array([[100 + 2 * frame, 50, 180 + 2 * frame, 130]])
        hidden = 10 <= frame < 15 or 25 <= frame < 33  # 5 frames, then 8 > max_age
        ids.append(None if hidden else tracker.update(box)[0].id)
        if hidden:
            assert tracker.update(np.zeros((0, 4))) == []
    assert ids[0] is None and ids[1:10] == [0] * 9 and ids[15:25] == [0] * 10
    assert ids[33] is None and ids[34:] == [1] * 6  # a new face after the long gap, confirmed on its 2nd hit


def test_one_frame_false_detection_never_gets_an_id():
    tracker = FaceTracker(min_hits=3)
    face = np.array([[0, 0, 50, 50]])
    tracks = [tracker.update(face)[0] for _ in range(3)]
    flash = tracker.update(np.concatenate([face, [[200, 200, 240, 240]]]))[1]
    tracker.update(face)
    assert tracks[0] is tracks[2] and tracks[2].id == 0
    assert flash.id is None and flash.state == "deleted"


@pytest.mark.parametrize("use_embeddings", [True, False])
def test_crossing_faces_keep_their_ids(use_embeddings):
    """Two faces pass each other, the one behind hidden while they overlap; detectors list faces left
    to right, so their order also swaps. Motion prediction alone must carry the hidden face across."""
    tracker = FaceTracker(max_age=5, min_hits=1)
    looks = np.eye(4)[:2]
    for frame in range(21):
        a = np.array([10 * frame, 0, 10 * frame + 60, 60])  # moves right, in front
        b = np.array([200 - 10 * frame, 12, 260 - 10 * frame, 72])  # moves left, behind
        visible = [0] if 9 <= frame <= 11 else ([0, 1] if a[0] <= b[0] else [1, 0])
        boxes, embeddings = np.stack([a, b])[visible], looks[visible]
        tracks = tracker.update(boxes, embeddings if use_embeddings else None)
        assert [track.id for track in tracks] == visible, f"frame {frame}"


def test_follow_faces_moves_landmarks_with_the_image():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (200, 200), dtype=np.uint8), (5, 5), 0)
    shifted = np.roll(texture, (3, 5), axis=(0, 1))  # content moves 5 px right, 3 px down
    landmarks = np.array([[80, 80], [120, 80], [100, 100], [85, 120], [115, 120]], np.float32)
    face = Face(box=np.array([60, 60, 140, 140], np.float32), landmarks=landmarks, score=0.9)
    (moved,) = follow_faces(texture, shifted, [face])
    np.testing.assert_allclose(moved.landmarks, landmarks + [5, 3], atol=0.3)
    np.testing.assert_allclose(moved.box, face.box + [5, 3, 5, 3], atol=0.5)


@pytest.fixture(scope="module")
def clip_table(tiny_model_file):
    """The shared clip at 2 frames/s through YuNet and a random-init model: tracking does not need training."""
    from deepfever.faces.detect import create_detector

    extractor = Extractor(model=tiny_model_file)
    detector = create_detector("yunet", model_path=str(YUNET))
    raw = extract_video(extractor, CLIP, fps=2, detector=detector, batch_size=16)
    smooth = extract_video(extractor, CLIP, fps=2, detector=detector, smoothing=0.8)
    return extractor, raw, smooth


@needs_clip
def test_clip_has_one_dominant_track(clip_table):
    extractor, table, _ = clip_table
    report = table.attrs["report"]
    assert report["frames"] == 40 and list(table.columns[:4]) == ["path", "frame", "time_s", "track"]
    assert set(extractor.columns()) < set(table.columns)
    counts = table["track"].value_counts()
    assert counts.index[0] == 0 and counts.iloc[0] >= 0.8 * report["frames"]
    assert table["time_s"].is_monotonic_increasing and table["time_s"].max() < 20


@needs_clip
def test_smoothing_is_a_per_track_moving_average(clip_table):
    extractor, raw, smooth = clip_table
    columns = [f"p_{name}" for name in extractor.class_names_]
    smoothed = [f"{column}_smooth" for column in columns]
    assert raw["frame"].tolist() == smooth["frame"].tolist() and not set(smoothed) & set(raw.columns)
    np.testing.assert_allclose(np.stack(raw["embedding"]), np.stack(smooth["embedding"]), atol=1e-5)
    np.testing.assert_allclose(smooth[columns].to_numpy(), raw[columns].to_numpy(), atol=1e-5)  # raw values kept
    for track in raw["track"].unique():
        p = raw.loc[raw["track"] == track, columns].to_numpy()
        expected = p.copy()
        for t in range(1, len(p)):
            expected[t] = 0.8 * expected[t - 1] + 0.2 * p[t]
        np.testing.assert_allclose(smooth.loc[smooth["track"] == track, smoothed].to_numpy(), expected, atol=1e-5)
    assert (smooth["emotion_smooth"] == np.array(extractor.class_names_)[smooth[smoothed].to_numpy().argmax(1)]).all()
    assert (smooth["emotion"] == np.array(extractor.class_names_)[smooth[columns].to_numpy().argmax(1)]).all()


@needs_clip
def test_timeline_and_annotated_video_are_written(clip_table, tmp_path):
    _, table, _ = clip_table
    png = plot_timeline(table, tmp_path / "plots" / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(png.parent.iterdir()) == [png]
    with pytest.raises(ValueError, match="no rows for track"):
        plot_timeline(table, tmp_path / "none.png", track=99)
    with pytest.raises(ValueError, match="'track', 'time_s'"):
        plot_timeline(table.drop(columns="track"), tmp_path / "none.png")
    video = write_annotated_video(CLIP, table, tmp_path / "annotated.mp4", fps=2)
    info = probe_video(video)
    assert (info.frame_count, info.width, info.height) == (40, 640, 360)
    assert list(tmp_path.glob(".*")) == []  # no temporary files left behind


@needs_clip
@pytest.mark.skipif(not BUNDLED.is_file(), reason="bundled fevernet_s.ferplus weights absent")
def test_bundled_model_sees_crying_turn_into_laughing(tmp_path):
    from deepfever.faces.detect import create_detector

    table = extract_video(Extractor(model=BUNDLED), CLIP, fps=2, detector=create_detector("yunet", model_path=str(YUNET)))
    first, last = table[table["time_s"] < 5], table[table["time_s"] >= table["time_s"].max() - 5]
    assert last["p_happy"].mean() > first["p_happy"].mean() + 0.2
    assert first["p_sad"].mean() > last["p_sad"].mean() + 0.1
    assert plot_timeline(table, tmp_path / "timeline.png").stat().st_size > 10_000


def test_timeline_groups_tracks_by_video(tmp_path):
    """Issue 9.12: track 0 of two videos used to be drawn as one garbled track."""
    from deepfever.video.timeline import timeline_panels

    rows = [{"path": video, "frame": t, "time_s": t / 2, "track": 0, "p_happy": happy, "p_sad": 1 - happy}
            for video, happy in (("in/a.mp4", 0.9), ("in/b.mp4", 0.1)) for t in range(4 + (video == "in/b.mp4"))]
    table = pd.DataFrame(rows + [{"path": "photo.jpg", "p_happy": 0.5, "p_sad": 0.5}]).astype({"frame": "Int64", "track": "Int64"})
    panels = timeline_panels(table)
    assert [(path, track, len(part)) for path, track, part in panels] == [("in/b.mp4", 0, 5), ("in/a.mp4", 0, 4)]
    assert all(part["p_happy"].nunique() == 1 for _, _, part in panels)  # never two videos in one line
    assert [path for path, _, _ in timeline_panels(table, video="a.mp4")] == ["in/a.mp4"]
    with pytest.raises(ValueError, match="no rows for video 'c.mp4'"):
        timeline_panels(table, video="c.mp4")
    assert plot_timeline(table, tmp_path / "t.png").stat().st_size > 0


def crossing_clip():
    """Two people cross, 25 frames/s: B (blue hair) walks left in front of A (red hair), hiding A for
    about a second, during which A turns back, so motion prediction alone cannot find A again.
    Yields (Frame, [(person, box), ...] visible left to right)."""
    from deepfever.video import Frame

    a, hidden = 40.0, []
    for t in range(72):
        b = 260.0 - 4 * t
        covered = abs(a - b) < 40
        a += -1.0 if covered else 1.0
        image = np.full((120, 300, 3), 90, np.uint8)
        people = sorted([("A", a, (200, 30, 30)), ("B", b, (30, 60, 200))], key=lambda p: p[0])  # B drawn last: in front
        for _, x, hair in people:
            cv2.rectangle(image, (int(x), 18), (int(x) + 40, 35), hair, -1)
            cv2.ellipse(image, (int(x) + 20, 55), (17, 21), 0, 0, 360, (225, 180, 150), -1)
        visible = [(name, np.array([x, 34, x + 40, 76], np.float32)) for name, x, _ in people if name == "B" or not covered]
        hidden.append(covered)
        yield Frame(t, t / 25, image), sorted(visible, key=lambda item: item[1][0])
    assert 20 <= sum(hidden) <= 30  # the clip does what it says: about a second behind B


def test_person_hidden_for_a_second_keeps_their_track(tiny_model_file):
    """Issue 9.16: the hidden person used to come back as a new track, splitting one person in two."""
    from deepfever.faces.detect import Detector

    clip = list(crossing_clip())
    truth = {frame.index: visible for frame, visible in clip}

    class GroundTruth(Detector):
        def detect(self, image):
            index = next(frame.index for frame, _ in clip if frame.rgb is image)
            return [Face(box=box, landmarks=np.array([[box[0] + 12 + 8 * (i % 2), box[1] + 16 + 6 * (i // 2)] for i in range(5)],
                                                     np.float32), score=0.99) for _, box in truth[index]]

    from deepfever.video import iter_frame_rows

    rows = list(iter_frame_rows(Extractor(model=tiny_model_file), (frame for frame, _ in clip), "crossing", 25.0,
                                detector=GroundTruth(), detect_side=None))
    people = {(row["frame"], row["face"]): truth[row["frame"]][row["face"]][0] for row in rows}
    ids = {}
    for row in rows:
        ids.setdefault(people[(row["frame"], row["face"])], set()).add(row["track"])
    assert len(ids["A"]) == len(ids["B"]) == 1 and ids["A"] != ids["B"], ids


def test_extraction_tells_the_tracker_of_scene_cuts(tiny_model_file):
    """Issue 19: after a cut to another backdrop, a person standing elsewhere keeps their track (by appearance);
    without the cut detector wired into extraction, the far-away face became a new track."""
    from deepfever.faces.detect import Detector
    from deepfever.video import Frame, iter_frame_rows
    from test_tracking import draw_people, face_box

    shots = [((90, 90, 90), 40.0), ((40, 120, 60), 240.0)]
    clip = [(Frame(30 * shot + t, (30 * shot + t) / 25, draw_people(backdrop, [("A", x, 40.0, 40.0)])), face_box(x, 40.0, 40.0))
            for shot, (backdrop, x) in enumerate(shots) for t in range(30)]

    class GroundTruth(Detector):
        def detect(self, image):
            box = next(box for frame, box in clip if frame.rgb is image).astype(np.float32)
            return [Face(box=box, landmarks=np.array([[box[0] + 12 + 8 * (i % 2), box[1] + 16 + 6 * (i // 2)] for i in range(5)],
                                                     np.float32), score=0.99)]

    rows = list(iter_frame_rows(Extractor(model=tiny_model_file), (frame for frame, _ in clip), "cut", 25.0,
                                detector=GroundTruth(), detect_side=None))
    assert {row["track"] for row in rows} == {0} and len(rows) >= 55


def test_read_ahead_keeps_order_raises_decoder_errors_and_stops_its_thread(synthetic_video, tmp_path):
    import threading

    from deepfever.video.decode import read_ahead

    assert [frame.index for frame in read_ahead(iter_frames(synthetic_video), ahead=2)] == list(range(50))
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    with pytest.raises(VideoReadError, match="not a readable video"):
        next(read_ahead(iter_frames(fake)))
    before = threading.active_count()
    frames = read_ahead(iter_frames(synthetic_video), ahead=2)
    assert next(frames).index == 0
    frames.close()  # the reader stops early: the decoding thread ends with it
    assert threading.active_count() == before


def test_detection_size_follows_the_faces_seen_with_full_detections_between():
    """Issue 19.3: small copies between full detections, sized by the smallest face seen; full again every
    ``full_every`` frames, on a cut, and on a frame where the small copy lost a face."""
    from deepfever.faces.detect import Detector, detect_shrunk
    from deepfever.video.extract import DetectionSizes, VideoReport

    def face(x: float, width: float) -> Face:
        return Face(box=np.array([x, 50, x + width, 50 + width], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)

    class Scripted(Detector):
        """``faces(width)`` (in the 640 px frame's pixels) on a copy ``width`` pixels wide; remembers each width."""

        def __init__(self, faces):
            self.faces, self.widths = faces, []

        def detect(self, image):
            scale = image.shape[1] / 640
            self.widths.append(image.shape[1])
            return [Face(box=found.box * scale, landmarks=found.landmarks * scale, score=found.score)
                    for found in self.faces(image.shape[1])]

    class Engine:
        def find_faces(self, images, finder, side):
            return detect_shrunk(finder, images, side)

    def widths(faces, frames: int, cut_at: int = -1) -> list[int]:
        finder, sizes = Scripted(faces), DetectionSizes(detect_side=320, full_every=5, min_face_px=48)
        for position in range(frames):
            sizes.find(Engine(), finder, np.zeros((360, 640, 3), np.uint8), position == cut_at, VideoReport())
        return finder.widths

    # one 200 px face: 640 * 48 / 200 = 153.6 -> 160 (multiples of 32), every 5th frame at 320, and on the cut
    assert widths(lambda width: [face(100, 200)], 12, cut_at=8) == [320, 160, 160, 160, 160, 320, 160, 160, 320, 160, 160, 160]
    # a 30 px face: no copy smaller than 320 keeps it 48 px wide
    assert widths(lambda width: [face(100, 200), face(500, 30)], 4) == [320] * 4
    # a 150 px face that only the 320 copy finds: the smaller copy (224) loses it, so that frame is detected again
    # at 320, and so are the next 4 frames
    assert widths(lambda width: [face(100, 200)] + ([face(400, 150)] if width >= 320 else []), 8) == \
        [320, 224, 320, 320, 320, 320, 320, 224, 320, 320]


def test_the_model_embeds_in_its_own_thread_while_rows_stream_in_frame_order(tiny_model_file):
    """Issue 19.3: batches are embedded beside detection (one model thread) and rows leave once their batch is
    embedded, long before the stream ends."""
    import threading

    from deepfever.faces.detect import Detector
    from deepfever.video import Frame, iter_frame_rows
    from test_tracking import draw_people, face_box

    box = face_box(100.0, 40.0, 40.0).astype(np.float32)
    consumed, model_threads = [], set()

    def frames():
        for index in range(60):
            consumed.append(index)
            yield Frame(index, index / 25, draw_people((90, 90, 90), [("A", 100.0, 40.0, 40.0)]))

    class GroundTruth(Detector):
        def detect(self, image):
            return [Face(box=box, landmarks=np.array([[box[0] + 12 + 8 * (i % 2), box[1] + 16 + 6 * (i // 2)] for i in range(5)],
                                                     np.float32), score=0.99)]

    engine = Extractor(model=tiny_model_file, batch_size=4).ensure_loaded().engine_
    predict = engine.predict

    def recorded(crops):
        model_threads.add(threading.current_thread().name)
        return predict(crops)

    engine.predict = recorded
    rows = iter_frame_rows(engine, frames(), "stream", 25.0, detector=GroundTruth(), detect_side=None)
    first = next(rows)
    assert first["frame"] == 0 and len(consumed) < 20
    assert [row["frame"] for row in [first, *rows]] == list(range(60))
    assert model_threads and all(name.startswith("deepfever-embed") for name in model_threads)
