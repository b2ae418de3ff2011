"""The README's frame of an annotated video, from a clip built out of a public-domain photo.

No video we may publish ships with the project (the shared clip is someone's footage), so this builds
one: NASA's astronaut portrait (public domain; scikit-image ships it, as ``deepfever demo`` uses it)
and its mirror image, half size, walking in from the right past her. It runs the plain command with
smoothing and an annotated copy, ``deepfever extract CLIP -o OUT.parquet --smooth 0.5
--annotate-video-dir DIR``, and saves one frame of that copy as ``docs/assets/annotated_video_frame.jpg``.

Run: .venv/bin/python scripts/readme_video_frame.py [--frame 60]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "assets" / "annotated_video_frame.jpg"
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 25, 4


def build_clip(path: Path) -> None:
    """Write the clip as MJPG: the portrait still on the left, its mirror image gliding in from the right."""
    portrait = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[:300, 60:360]  # head and shoulders
    left = cv2.resize(portrait, (270, 270), interpolation=cv2.INTER_AREA)
    right = cv2.resize(portrait[:, ::-1], (180, 180), interpolation=cv2.INTER_AREA)
    background = np.tile(np.linspace(40, 90, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for index in range(FPS * SECONDS):
        frame = background.copy()
        frame[HEIGHT - 270:, 40:310] = left
        x = int(WIDTH - 60 - index * 2)  # 2 px per frame from the right edge
        visible = min(right.shape[1], WIDTH - x)
        frame[HEIGHT - 180:, x:x + visible] = right[:, :visible]
        writer.write(frame)
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", type=int, default=60, help="which frame of the annotated copy to save")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "astronauts.avi"
        build_clip(clip)
        annotated = Path(scratch) / "annotated"
        subprocess.run([str(Path(sys.executable).parent / "deepfever"), "extract", str(clip), "-o", str(Path(scratch) / "rows.parquet"),
                        "--smooth", "0.5", "--annotate-video-dir", str(annotated)], check=True)
        (video,) = annotated.iterdir()
        capture = cv2.VideoCapture(str(video))
        capture.set(cv2.CAP_PROP_POS_FRAMES, args.frame)
        ok, frame = capture.read()
        if not ok:
            raise SystemExit(f"could not read frame {args.frame} of {video}")
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(OUTPUT), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {OUTPUT.relative_to(REPO)} (frame {args.frame} of {video.name})")


if __name__ == "__main__":
    main()
