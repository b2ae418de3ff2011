"""Video end to end (decode, detect, align, embed, track): frames/s on the shared clip, every frame, and
peak memory over a long stream made by decoding the clip in a loop (nothing long is written to disk).

Run: .venv/bin/python benchmarks/video_throughput.py [--detector yunet] [--minutes 10] [--long-fps 0]

Wall-clock frames/s depends on what else runs on the machine, so CPU-seconds per frame are saved too.
"""
from __future__ import annotations

import argparse
import itertools
import resource
import time
from pathlib import Path
from typing import Iterator

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.models import DEFAULT_MODEL
from deepfever.faces.detect import create_detector
from deepfever.video import Frame, VideoReport, iter_frame_rows, iter_frames, probe_video

CLIP = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"


def looped(path: Path, seconds: float, fps: float | None) -> Iterator[Frame]:
    """The clip decoded again and again, with indices and times running on, until ``seconds`` of video."""
    info = probe_video(path)
    duration = info.frame_count / info.fps
    index = 0
    for loop in itertools.count():
        for frame in iter_frames(path, fps):
            time_s = loop * duration + frame.time_s
            if time_s >= seconds:
                return
            yield Frame(index, time_s, frame.rgb)
            index += 1


def rss_mib() -> float:
    """Resident memory now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run(extractor: Extractor, frames, rate: float, options: dict, sample_every: int = 0) -> dict:
    """Consume the rows without keeping them (streaming use) and time the pass."""
    report = VideoReport()
    samples = []
    wall, cpu = time.perf_counter(), time.process_time()
    for count, _ in enumerate(iter_frame_rows(extractor, frames, "benchmark", rate, report=report, **options)):
        if sample_every and count % sample_every == 0:
            samples.append(round(rss_mib(), 1))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"frames": report.frames, "faces": report.faces, "tracks": report.tracks, "detector_runs": report.detector_runs,
            "seconds": round(wall, 2), "frames_per_second": round(report.frames / wall, 1),
            "cpu_ms_per_frame": round(cpu / report.frames * 1e3, 2), "rss_mib_samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="packaged model name or .safetensors path")
    parser.add_argument("--detector", default="yunet", choices=("mtcnn", "yunet"))
    parser.add_argument("--detect-side", type=int, default=320, help="longer side frames are shrunk to for detection; 0 = full size")
    parser.add_argument("--detect-every", type=int, default=1, help="run the detector every k frames, follow faces in between")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the looped stream for the memory run; 0 skips it")
    parser.add_argument("--long-fps", type=float, default=0.0, help="sampling rate of the memory run; 0 = every frame")
    args = parser.parse_args()

    extractor = Extractor(model=args.model, batch_size=args.batch_size).load()
    detector = create_detector("yunet", model_path=str(YUNET)) if args.detector == "yunet" else extractor.detector_for("mtcnn")
    options = {"detector": detector, "detect_side": args.detect_side or None, "detect_every": args.detect_every}
    native = probe_video(CLIP).fps
    run(extractor, itertools.islice(iter_frames(CLIP), 48), native, options)  # warm-up: first-call overheads
    clip = run(extractor, iter_frames(CLIP), native, options)
    result = {"clip": CLIP.name, "detector": args.detector, "model": extractor.fingerprint_["model_id"],
              "detect_side": options["detect_side"], "detect_every": args.detect_every, "batch_size": args.batch_size,
              "every_frame": clip}
    if args.minutes > 0:
        rate = args.long_fps or native
        stream = looped(CLIP, args.minutes * 60, args.long_fps or None)
        long = run(extractor, stream, rate, options, sample_every=int(rate * 30))
        long["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result[f"stream_{args.minutes:g}_min"] = {"fps": args.long_fps or "every frame", **long}
    save_result(result_name(f"video_throughput_{args.detector}_side{args.detect_side}_every{args.detect_every}", args.model), result)
    print(f"{args.detector}: {clip['frames_per_second']} frames/s wall, {clip['cpu_ms_per_frame']} CPU ms/frame on {CLIP.name}")


if __name__ == "__main__":
    main()
