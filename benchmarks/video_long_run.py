"""Peak memory of ``deepfever extract`` on a long video file: the whole run (ExtractionRun: chunk file,
merge into Parquet), not just the row stream, on the shared clip looped into an hour-long file.

Run: .venv/bin/python benchmarks/video_long_run.py [--hours 1] [--file-fps 5] [--fps 0] [--work DIR]

The looped file is written once into ``--work`` (default a temporary folder, removed afterwards) at
``--file-fps`` frames per second and 640 px wide, so that an hour of video is written and decoded in
minutes on a laptop CPU; every one of its frames is processed unless ``--fps`` samples them.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

import cv2

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.extraction import ExtractionRun
from deepfever.models import DEFAULT_MODEL
from deepfever.video import iter_frames, probe_video

CLIP = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"


def write_looped(target: Path, hours: float, file_fps: float) -> int:
    """The clip resampled to ``file_fps`` and repeated until ``hours`` of video; returns the frame count."""
    frames = [frame.rgb for frame in iter_frames(CLIP, file_fps)]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), file_fps, (width, height))
    total = round(hours * 3600 * file_fps)
    for index in range(total):
        writer.write(cv2.cvtColor(frames[index % len(frames)], cv2.COLOR_RGB2BGR))
    writer.release()
    return total


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--file-fps", type=float, default=5.0, help="frame rate of the looped file")
    parser.add_argument("--fps", type=float, default=0.0, help="extract --fps; 0 processes every frame of the file")
    parser.add_argument("--work", help="folder for the looped video and the output (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work) as work:
        video = Path(work) / "looped.mp4"
        started = time.perf_counter()
        frames = write_looped(video, args.hours, args.file_fps)
        write_seconds = time.perf_counter() - started
        extractor = Extractor(model=args.model, detector="yunet", detector_options={"model_path": str(YUNET)}, batch_size=32)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(5.0):
                samples.append(round(rss_mib(), 1))

        sampler = threading.Thread(target=sample, daemon=True)
        before = rss_mib()
        sampler.start()
        started = time.perf_counter()
        report = ExtractionRun(extractor, Path(work) / "out.parquet", fps=args.fps or None).run([video])
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        result = {
            "video": f"{CLIP.name} looped to {args.hours:g} h at {args.file_fps:g} frames/s ({frames} frames, "
                     f"{probe_video(video).width}x{probe_video(video).height})",
            "extract_fps": args.fps or "every frame", "frames_processed": report.videos[0]["frames"], "rows": report.faces,
            "tracks": report.videos[0]["tracks"], "seconds": round(seconds, 1), "write_seconds": round(write_seconds, 1),
            "rss_mib_before_run": round(before, 1), "rss_mib_samples_every_5_s": samples,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    save_result(result_name("video_long_run", args.model), result)


if __name__ == "__main__":
    main()
