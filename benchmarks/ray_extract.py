"""``deepfever extract --engine ray`` against the local engine and torchrun sharding, on this machine (issue 20).

Inputs: the first ``--limit`` unlabelled faces (160x160 grey crops) plus the 12 shared photos. Three
commands, each started cold the way a user starts it (Python start-up and model loading included),
write fresh outputs in turn, ``--repeats`` times; the best pass of each counts (other jobs on a shared
machine only ever slow a pass down):

- local: ``deepfever extract INPUTS -o OUT.parquet`` (one process, torch's default threads);
- torchrun: ``torchrun --standalone --nproc-per-node W -m deepfever extract ...`` (the home-made sharding);
- ray: ``deepfever extract INPUTS -o OUT_DIR --engine ray --workers W`` (starts its own local Ray of the
  machine's CPUs; the start of the Ray runtime is measured apart with ``ray start``-free ``ray.init``).

The issue's target: Ray's overhead over the local engine at most 20 % at 2 CPUs. The rows of the Ray
run are checked against the local run's (smallest cosine of the vectors).
Run: .venv/bin/python benchmarks/ray_extract.py [--limit 2000] [--workers 2] [--repeats 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, SHARED, save_result
from deepfever.io.tables import read_table

PHOTOS = SHARED / "data" / "photos"
UNLABELED = SHARED / "data" / "unlabeled_faces"
BIN = Path(sys.executable).parent


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` (which must succeed); its output is discarded."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def ray_start_seconds() -> float:
    """Seconds ``ray.init`` takes to start a local runtime and ``ray.shutdown`` to stop it (a cluster pays it once)."""
    code = "import time, ray; t = time.perf_counter(); ray.init(include_dashboard=False); print(time.perf_counter() - t); ray.shutdown()"
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()[-1])


def min_cosine(a, b) -> float:
    key = lambda table: table.sort_values(["path", "face"]).reset_index(drop=True)
    a, b = key(a), key(b)
    assert len(a) == len(b) and (a["path"] == b["path"]).all(), "the two engines found different faces"
    x, y = np.stack(a["embedding"]), np.stack(b["embedding"])
    return float(((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=8000, help="unlabelled faces to take (8,000: all of them)")
    parser.add_argument("--workers", type=int, default=2, help="torchrun processes and Ray workers")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as scratch:
        # A folder of links: every command gets the same short input list, as a user would pass a folder.
        inputs = Path(scratch) / "inputs"
        inputs.mkdir()
        for path in [*sorted(UNLABELED.glob("*.jpg"))[:args.limit], *sorted(PHOTOS.glob("*.jpg"))]:
            (inputs / path.name).symlink_to(path.resolve())
        images = len(list(inputs.iterdir()))
        common = ["--device", "cpu", "--overwrite"]
        commands = {
            "local": [str(BIN / "deepfever"), "extract", str(inputs), "-o", f"{scratch}/local.parquet", *common],
            "torchrun": [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={args.workers}", "-m", "deepfever", "extract",
                         str(inputs), "-o", f"{scratch}/torchrun.parquet", *common],
            "ray": [str(BIN / "deepfever"), "extract", str(inputs), "-o", f"{scratch}/ray", "--engine", "ray",
                    "--workers", str(args.workers), *common],
        }
        runs: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                runs[name].append(round(timed(command), 2))
                print(name, runs[name][-1], flush=True)
        cosine = min_cosine(read_table(f"{scratch}/local.parquet"), read_table(f"{scratch}/ray"))
        start = ray_start_seconds()
    best = {name: min(seconds) for name, seconds in runs.items()}
    overhead = {name: round(100 * (best[name] - best["local"]) / best["local"], 1) for name in ("torchrun", "ray")}
    result = {
        "inputs": {"unlabeled_faces": args.limit, "photos": len(list(PHOTOS.glob("*.jpg"))), "images": images},
        "cpus": os.cpu_count(), "workers": args.workers, "repeats": args.repeats,
        "ray_version": __import__("ray").__version__,
        **{name: {"runs_seconds": runs[name], "best_seconds": best[name], "images_per_second": round(images / best[name], 2)}
           for name in commands},
        "overhead_percent_vs_local": overhead,
        "ray_runtime_start_seconds": round(start, 2),
        "min_cosine_ray_vs_local": round(cosine, 6),
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "note": "cold CLI runs (start-up and model loading included); best of the repeats (the load average at the end says how busy the machine was)",
    }
    stem = "ray_extract" if args.limit == 8000 else f"ray_extract_limit{args.limit}"  # the size keeps the plain name
    save_result(stem, result)
    rows = [("local `deepfever extract` (1 process)", "local"), (f"`torchrun --nproc-per-node {args.workers}` sharding", "torchrun"),
            (f"`--engine ray --workers {args.workers}`", "ray")]
    table = "\n".join(f"| {label} | {best[name]:.1f} | {images / best[name]:.1f} | "
                      f"{'' if name == 'local' else f'{overhead[name]:+.1f} %'} |" for label, name in rows)
    (RESULTS / f"{stem}.md").write_text(
        f"`benchmarks/ray_extract.py --limit {args.limit} --workers {args.workers} --repeats {args.repeats}`: {images} images "
        f"({args.limit} unlabelled faces + the photos), cold CLI runs, {os.cpu_count()} CPUs "
        f"(load average at the end {result['load_average_at_end'][0]}), ray {result['ray_version']}.\n\n"
        "| command | seconds (best) | images/s | time vs local |\n|---|---|---|---|\n" + table + "\n\n"
        f"The Ray time includes starting a local Ray runtime ({start:.1f} s alone), which a cluster pays once. "
        f"Rows agree: smallest cosine between the Ray and local vectors {cosine:.6f}.\n")


if __name__ == "__main__":
    main()
