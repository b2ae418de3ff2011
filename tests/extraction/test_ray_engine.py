"""Extraction on Ray Data (issue 20): the rows of ``extract``, failures as records, resume, lock, lost workers.

One local Ray runtime (two CPUs) serves the whole module; every run uses the shared photos and clip.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'deepfever[ray]'")

from deepfever import Extractor  # noqa: E402
from deepfever.extraction.ray_engine import INPUTS_FOLDER, RayExtraction, read_statuses  # noqa: E402
from deepfever.extraction.run import ExtractionRun  # noqa: E402
from deepfever.io.failures import failures_path_for  # noqa: E402
from deepfever.io.lock import RunLock, RunLockedError  # noqa: E402
from deepfever.io.tables import read_table  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PHOTOS = SHARED / "data" / "photos"
CLIP = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"
FPS = 1.0
KEYS = ["path", "frame", "face"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/photos")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(device="cpu").load()


@pytest.fixture(scope="module")
def plain_file(extractor, tmp_path_factory) -> Path:
    """What the local engine writes for the photos and the clip (sampled at 1 frame/s)."""
    output = tmp_path_factory.mktemp("plain") / "faces.parquet"
    ExtractionRun(extractor, output, fps=FPS).run([PHOTOS, CLIP])
    return output


@pytest.fixture(scope="module")
def plain(plain_file) -> pd.DataFrame:
    return read_table(plain_file)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values([key for key in KEYS if key in table], na_position="first").reset_index(drop=True)


def _assert_same_rows(table: pd.DataFrame, reference: pd.DataFrame) -> None:
    table, reference = _sorted(table), _sorted(reference)
    assert list(table.columns) == list(reference.columns)
    assert len(table) == len(reference)
    vectors, expected = np.stack(table["embedding"]), np.stack(reference["embedding"])
    cosine = (vectors * expected).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999
    others = [column for column in table.columns if column not in ("embedding", "landmarks")]
    pd.testing.assert_frame_equal(table[others], reference[others], check_exact=False, rtol=1e-4, atol=1e-4)


def _copy_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTOS.glob("*.jpg"))[:count]
    return [Path(shutil.copy(photo, folder / photo.name)) for photo in photos]


def test_same_rows_schema_and_metadata_as_extract(local_ray, extractor, plain, plain_file, tmp_path):
    output = tmp_path / "faces.parquet"
    clip_uri = CLIP.resolve().as_uri()  # file:///…: read through pyarrow's file systems, as s3://… would be
    report = RayExtraction(extractor, output, fps=FPS, workers=2, images_per_task=3).run([PHOTOS, clip_uri])
    assert report.images == 12 and len(report.videos) == 1 and report.faces == len(plain)
    table = read_table(output)
    assert (table["path"] == clip_uri).sum() == plain["frame"].notna().sum()
    _assert_same_rows(table.replace({"path": {clip_uri: str(CLIP)}}), plain)
    assert read_table(output).attrs["metadata"] == plain.attrs["metadata"]
    assert len(pd.read_parquet(output)) == len(plain)  # pandas reads the folder, skipping _inputs
    for part in output.glob("part-*.parquet"):  # image tasks and the video task alike
        assert pq.read_schema(part).equals(pq.read_schema(plain_file), check_metadata=True)
    assert failures_path_for(output).read_text().splitlines() == ["path,reason"]  # every photo has a face


def test_bad_file_is_a_record_with_a_reason_and_a_rerun_skips_what_is_done(local_ray, extractor, tmp_path, capsys):
    """One folder through three runs: a bad file among good ones, a rerun from the CLI, other settings refused."""
    from deepfever.cli import main

    photos = _copy_photos(tmp_path / "in", 4)
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    output = tmp_path / "out"
    first = RayExtraction(extractor, output, workers=2, images_per_task=1).run([*photos[:3], bad])
    assert first.images == 4 and [failure["path"] for failure in first.failures] == [str(bad)]
    failures = pd.read_csv(failures_path_for(output))
    assert failures["path"].tolist() == [str(bad)] and failures["reason"].str.len().min() > 10
    rows = read_table(output)

    # A task killed between its face file and its inputs file: its face file is unfinished work.
    unfinished = next(part for part in (output / INPUTS_FOLDER).glob("part-*.parquet")
                      if pd.read_parquet(part)["path"].iloc[0] == str(photos[0]))
    unfinished.unlink()
    assert main(["extract", str(tmp_path / "in"), "-o", str(output), "--engine", "ray", "--workers", "1", "--device", "cpu"]) == 0
    assert "2 images" in capsys.readouterr().err  # photos[0], redone, and photos[3], new; the others are skipped
    table = read_table(output)
    assert not table.duplicated(["path", "face"]).any()
    assert sorted(set(table["path"])) == sorted(map(str, photos))
    assert len(table[table["path"] != str(photos[3])]) == len(rows)
    assert sorted(read_statuses(output)["path"]) == sorted(map(str, [*photos, bad]))

    with pytest.raises(ValueError, match="prior"):
        RayExtraction(Extractor(device="cpu", prior="uniform"), output, workers=1).run([photos[0]])
    assert main(["extract", str(photos[0]), "-o", str(tmp_path / "x"), "--engine", "ray", "--save-crops", "c"]) == 2
    assert "--engine ray does not take --save-crops" in capsys.readouterr().err


def test_second_concurrent_run_is_refused(extractor, tmp_path):
    output = tmp_path / "out"
    held = RunLock(output.with_name(f".{output.name}.lock"), str(output)).acquire()  # another run holds it
    try:
        with pytest.raises(RunLockedError):
            RayExtraction(extractor, output, workers=1).run([PHOTOS / "img1.jpg"])
    finally:
        held.release()
    assert not output.exists()


def _worker_pids() -> list[int]:
    """Processes of this module's Ray actors (their titles name the callable class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"FaceRowTask" in title:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes in /proc")
def test_a_worker_killed_mid_job_loses_and_doubles_no_row(local_ray, extractor, plain, tmp_path):
    output = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker_after_the_first_task() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if any((output / INPUTS_FOLDER).glob("part-*.parquet")) and (pids := _worker_pids()):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_the_first_task)
    killer.start()
    report = RayExtraction(extractor, output, workers=2, images_per_task=1).run([PHOTOS])
    killer.join()
    assert killed, "no Ray worker was found to kill"
    assert report.images == 12
    _assert_same_rows(read_table(output), plain[plain["frame"].isna()].drop(columns=["frame", "time_s", "track"]))
