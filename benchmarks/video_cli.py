"""The plain command on the shared clip, every frame, start-up included: what a user waits for.

Runs ``deepfever extract CLIP -o OUT.parquet [EXTRA ...]`` as a fresh process (Python start, imports,
model and detector loading, decode, detect, align, embed, track, write), ``--repeats`` times, and
reports frames/s of the wall time, best run; several configurations (``--configs``, each a string of
extra arguments, "" for the defaults) run interleaved so that machine load hits all alike.
Target (issue 10): >= 200 frames/s with default settings on 2 CPU cores.
Run: .venv/bin/python benchmarks/video_cli.py [--repeats 3] [--configs "" "--detector mtcnn"]
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from _common import REPO, SHARED, save_result

CLIP = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"


def run_once(extra: list[str], scratch: Path) -> dict:
    output = scratch / "clip.parquet"
    command = [str(Path(sys.executable).parent / "deepfever"), "extract", str(CLIP), "-o", str(output), "--overwrite", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    seconds = time.perf_counter() - started
    table = pd.read_parquet(output)
    frames = int(table["frame"].max()) + 1 if len(table) else 0
    return {"seconds": round(seconds, 2), "frames_with_faces": int(table["frame"].nunique()), "rows": len(table),
            "frames": frames, "frames_per_second": round(frames / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=[""],
                        help="extra arguments of each measured configuration; \"\" is the plain command")
    args = parser.parse_args()
    configurations = {extra or "default": shlex.split(extra) for extra in args.configs}
    runs: dict[str, list[dict]] = {name: [] for name in configurations}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):
            for name, extra in configurations.items():
                runs[name].append(run_once(extra, Path(scratch)))
                print(name, runs[name][-1], flush=True)
    result = {"clip": CLIP.name, "command": "deepfever extract CLIP -o OUT.parquet [ARGS]",
              "configurations": {name: {"runs": found, "best_frames_per_second": max(run["frames_per_second"] for run in found)}
                                 for name, found in runs.items()}}
    save_result("video_cli", result)


if __name__ == "__main__":
    main()
