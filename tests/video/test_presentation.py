"""Results you can watch (issue 19.4): one colour per emotion and one face numbering everywhere, smoothed
curves over raw ones on timelines, annotated videos in a format browsers play."""
from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfever.io.annotate import PALETTE, emotion_colour, hex_to_rgb
from deepfever.labels import EMOTIONS
from deepfever.video import annotate as video_annotate
from deepfever.video.annotate import PLAYABLE_CODECS, annotated_video_suffix, video_codec, write_annotated_video
from deepfever.video.decode import iter_frames
from deepfever.video.timeline import RAW_NOTE, SMOOTHED_NOTE, timeline_figure

STATIC = Path(__file__).resolve().parents[2] / "src/deepfever/serve/static"

# Machado, Oliveira and Fernandes (2009), severity 1, applied to linear RGB.
VISION = {
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}


def seen_as_lab(colour: str, vision: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB hex colour as a reader with ``vision`` sees it."""
    srgb = np.array(hex_to_rgb(colour)) / 255
    linear = np.clip(vision @ np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4), 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def page_colours() -> dict[str, str]:
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    block = re.search(r"const COLOURS = \{(.*?)\};", script, re.S).group(1)
    return dict(re.findall(r'(\w+): "(#[0-9A-Fa-f]{6})"', block))


def test_every_emotion_has_a_colour_told_apart_by_colour_blind_readers():
    assert set(PALETTE) == set(EMOTIONS)
    for name, vision in VISION.items():
        seen = {emotion: seen_as_lab(colour, vision) for emotion, colour in PALETTE.items()}
        closest = min((float(np.linalg.norm(seen[a] - seen[b])), a, b) for a, b in itertools.combinations(seen, 2))
        assert closest[0] >= 15, f"{name} vision: {closest[1]} and {closest[2]} are only {closest[0]:.1f} apart"
        assert np.linalg.norm(seen["happy"] - seen["surprise"]) >= 40, name  # issue 19: both were yellow on the page


def test_one_palette_on_the_page_the_maps_and_the_timeline():
    from deepfever.applications.maps import label_colours

    assert {name: colour.upper() for name, colour in page_colours().items()} == PALETTE
    emotions = pd.Series(["sad", "happy", "surprise", "happy"])
    assert label_colours(emotions) == {name: PALETTE[name] for name in ("happy", "sad", "surprise")}
    assert label_colours(pd.Series(["happy", "cat", "dog"]))["happy"] == PALETTE["happy"]  # other labels get other colours
    table = pd.DataFrame({"path": "v.mp4", "frame": range(5), "time_s": np.arange(5) / 5, "track": 0,
                          "p_happy": np.linspace(0, 1, 5), "p_sad": np.linspace(1, 0, 5)})
    axis = timeline_figure(table).axes[0]
    assert [line.get_color() for line in axis.get_lines()] == [PALETTE["happy"], PALETTE["sad"]]


def test_the_page_numbers_faces_from_zero_like_the_tables():
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"face \+ 1|[Ff]ace 1\b", script)
    assert "`${row.face} ${row.emotion}`" in script  # the box label: table's face number and emotion


def test_timeline_draws_smoothed_curves_over_raw_ones_and_says_so():
    rng = np.random.default_rng(0)
    raw = rng.dirichlet(np.ones(2), 20)
    smooth = raw.copy()
    for t in range(1, 20):
        smooth[t] = 0.8 * smooth[t - 1] + 0.2 * raw[t]
    table = pd.DataFrame({"path": "v.mp4", "frame": range(20), "time_s": np.arange(20) / 10, "track": 0,
                          "p_happy": raw[:, 0], "p_sad": raw[:, 1], "p_happy_smooth": smooth[:, 0], "p_sad_smooth": smooth[:, 1],
                          "valence": raw[:, 0] - 0.5, "arousal": raw[:, 1] - 0.5,
                          "valence_smooth": smooth[:, 0] - 0.5, "arousal_smooth": smooth[:, 1] - 0.5})
    figure = timeline_figure(table)
    axis = figure.axes[0]
    lines = axis.get_lines()
    assert len(lines) == 4 and figure._suptitle.get_text() == SMOOTHED_NOTE
    by_role = {(line.get_color(), line.get_linewidth() > 1.5): line for line in lines}
    for emotion, column in (("happy", 0), ("sad", 1)):
        np.testing.assert_allclose(by_role[(PALETTE[emotion], True)].get_ydata(), smooth[:, column])  # thick: smoothed
        thin = by_role[(PALETTE[emotion], False)]
        np.testing.assert_allclose(thin.get_ydata(), raw[:, column])
        assert thin.get_alpha() < 0.5
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["happy", "sad"]  # one entry per emotion
    assert len(figure.axes[1].get_lines()) == 4  # valence and arousal, smoothed over raw too
    plain = timeline_figure(table.drop(columns=[column for column in table if column.endswith("_smooth")]))
    assert len(plain.axes[0].get_lines()) == 2 and plain._suptitle.get_text() == RAW_NOTE


def test_plot_timeline_command_says_what_it_drew(tmp_path, capsys):
    from deepfever.cli import main

    table = pd.DataFrame({"path": "v.mp4", "frame": range(3), "time_s": [0.0, 0.1, 0.2], "track": 0,
                          "p_happy": [0.2, 0.6, 0.9], "p_happy_smooth": [0.2, 0.3, 0.5]})
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["plot", "timeline", str(tmp_path / "t.csv"), "-o", str(tmp_path / "t.png")]) == 0
    assert "smoothed curves (p_*_smooth, thick) over the raw values" in capsys.readouterr().out
    table.drop(columns="p_happy_smooth").to_csv(tmp_path / "raw.csv", index=False)
    assert main(["plot", "timeline", str(tmp_path / "raw.csv"), "-o", str(tmp_path / "raw.png")]) == 0
    assert "raw values (the table has no smoothed columns" in capsys.readouterr().out


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "moving.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for index in range(12):
        frame = np.full((120, 160, 3), 40, np.uint8)
        cv2.circle(frame, (40 + 5 * index, 60), 20, (150, 180, 225), -1)
        writer.write(frame)
    writer.release()
    return path


def video_table(frames: int) -> pd.DataFrame:
    return pd.DataFrame({"path": "moving.avi", "frame": range(frames), "time_s": np.arange(frames) / 10, "track": 0, "face": 0,
                         "box_x1": 30.0, "box_y1": 20.0, "box_x2": 110.0, "box_y2": 100.0,
                         "emotion": "happy", "p_happy": 0.9})


def test_annotated_video_is_written_in_a_format_browsers_play(moving_video, tmp_path):
    suffix = annotated_video_suffix()
    codec = video_codec(suffix)
    if codec not in PLAYABLE_CODECS:
        pytest.skip(f"this OpenCV encodes neither H.264 nor VP8 (best: {codec}); the mp4v fallback is tested below")
    output = write_annotated_video(moving_video, video_table(12), tmp_path / f"moving.annotated{suffix}")
    frames = list(iter_frames(output))
    assert len(frames) == 12 and frames[0].rgb.shape == (120, 160, 3)
    edge = frames[5].rgb[60, 29:32].astype(int)  # the box's left edge, in happy's colour (lossy codec: roughly)
    assert np.abs(edge - np.array(emotion_colour("happy"))).min(axis=0).max() < 60, edge
    with open(output, "rb") as stream:
        head = stream.read(64)
    assert (b"ftyp" in head) if suffix == ".mp4" else head.startswith(b"\x1a\x45\xdf\xa3")  # MP4 box or EBML (WebM)
    assert list(tmp_path.glob(".*")) == []


def test_codec_probe_falls_back_to_mp4v_with_a_warning(moving_video, tmp_path, monkeypatch, caplog):
    best = {".mp4": "mp4v", ".webm": None}
    monkeypatch.setattr(video_annotate, "video_codec", lambda suffix: best[suffix])
    with caplog.at_level(logging.WARNING, logger="deepfever.video.annotate"):
        assert annotated_video_suffix() == ".mp4"
        output = write_annotated_video(moving_video, video_table(12), tmp_path / "moving.mp4")
    assert len(list(iter_frames(output))) == 12
    assert "neither H.264 nor VP8" in caplog.text and "browsers and notebooks do not play" in caplog.text
    with pytest.raises(OSError, match="encodes none of VP80 for .webm"):
        write_annotated_video(moving_video, video_table(12), tmp_path / "moving.webm")
    with pytest.raises(ValueError, match=r"output must end in \.mp4 or \.webm"):
        write_annotated_video(moving_video, video_table(12), tmp_path / "moving.avi")


def test_extraction_names_annotated_videos_by_the_playable_format(tiny_model_file, moving_video, tmp_path):
    from deepfever import Extractor
    from deepfever.extraction import ExtractionRun

    ExtractionRun(Extractor(model=tiny_model_file, detector="none"), tmp_path / "out.csv",
                  annotate_video_dir=tmp_path / "ann").run([moving_video])
    assert [path.name for path in (tmp_path / "ann").iterdir()] == [f"moving.annotated{annotated_video_suffix()}"]
