"""``deepfever extract`` at scale: chunks saved as they finish, ``--resume``, torchrun shards, ``deepfever merge``."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import write_random_crops
from deepfever.api import Extractor
from deepfever.cli import main
from deepfever.io.parts import done_chunks, read_parts
from deepfever.io.tables import read_table


@pytest.fixture
def collection(tmp_path):
    """Five 48x48 'face crops', a corrupt file and a short video: 7 inputs, 4 chunks of 2 (the video alone last)."""
    folder = tmp_path / "inputs"
    write_random_crops(folder, 5, "face")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 48))
    for _ in range(4):
        writer.write(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    writer.release()
    return folder


def arguments(collection, output, model, *extra):
    # One face per batch: a face's numbers then do not depend on which faces share its batch.
    return ["extract", str(collection), "-o", str(output), "--model", str(model), "--detector", "none", "--batch-size", "1", *extra]


def interrupt_after(monkeypatch, calls: int) -> list:
    """Make ``Extractor.iter_extract`` (one call per chunk) fail on call ``calls + 1``, like a killed run."""
    made = []
    original = Extractor.iter_extract

    def iter_extract(self, *args, **kwargs):
        if len(made) == calls:
            raise RuntimeError("simulated interruption")
        made.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Extractor, "iter_extract", iter_extract)
    return made


def test_interrupted_run_resumes_to_the_single_run_table(tiny_model_file, collection, tmp_path, monkeypatch):
    assert main(arguments(collection, tmp_path / "single.csv", tiny_model_file)) == 0
    output = tmp_path / "out.csv"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        with pytest.raises(RuntimeError, match="simulated"):
            main(arguments(collection, output, tiny_model_file, "--resume", "--chunk-size", "2"))
    assert done_chunks(tmp_path / "out.parts") == {0, 1} and not output.exists()
    assert main(arguments(collection, output, tiny_model_file, "--chunk-size", "2")) == 2  # no silent restart

    made = interrupt_after(monkeypatch, 99)
    assert main(arguments(collection, output, tiny_model_file, "--resume", "--chunk-size", "2")) == 0
    assert [len(chunk) for chunk in made] == [2, 1]  # only the two chunks left
    assert output.read_bytes() == (tmp_path / "single.csv").read_bytes()
    assert (tmp_path / "out.csv.failures.csv").read_bytes() == (tmp_path / "single.csv.failures.csv").read_bytes()
    table = read_table(output)
    assert len(table) == 5 + 4 and not table.duplicated(["path", "face", "frame"]).any()


def test_resume_refuses_a_folder_made_with_other_options(tiny_model_file, collection, tmp_path, monkeypatch, capsys):
    output = tmp_path / "out.parquet"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        with pytest.raises(RuntimeError):
            main(arguments(collection, output, tiny_model_file, "--resume", "--chunk-size", "2"))
    for changed, named in [(["--chunk-size", "3"], "chunk_size"), (["--chunk-size", "2", "--fps", "5"], "fps")]:
        capsys.readouterr()
        assert main(arguments(collection, output, tiny_model_file, "--resume", *changed)) == 2
        message = capsys.readouterr().err
        assert "cannot resume" in message and f"different {named}" in message and "--overwrite" in message
    assert done_chunks(tmp_path / "out.parts") == {0}  # left as it was
    assert main(arguments(collection, output, tiny_model_file, "--overwrite", "--chunk-size", "3")) == 0  # starting again is explicit
    assert done_chunks(tmp_path / "out.parts") == {0, 1, 2}


def test_two_processes_under_torchrun_write_one_table(tiny_model_file, collection, tmp_path):
    assert main(arguments(collection, tmp_path / "single.parquet", tiny_model_file)) == 0
    output = tmp_path / "sharded.parquet"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "deepfever",
               *arguments(collection, output, tiny_model_file, "--chunk-size", "2")]
    environment = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2: 2 of 4 chunks" in done.stderr and "rank 1 of 2: 2 of 4 chunks" in done.stderr

    single, sharded = read_table(tmp_path / "single.parquet"), read_table(output)
    assert list(sharded.columns) == list(single.columns) and len(sharded) == len(single) == 9
    floats = [column for column in single if column.startswith("p_")]
    exact = [column for column in single if column not in floats and column not in ("embedding", "time_s")]
    pd.testing.assert_frame_equal(sharded[exact], single[exact])
    # Torchrun gives each process one thread, which may change the last bits of float sums.
    np.testing.assert_allclose(sharded[floats].to_numpy(), single[floats].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack(sharded["embedding"]), np.stack(single["embedding"]), atol=1e-6)
    np.testing.assert_array_equal(sharded["time_s"].to_numpy(float), single["time_s"].to_numpy(float))
    assert (tmp_path / "sharded.parquet.failures.csv").read_text() == (tmp_path / "single.parquet.failures.csv").read_text()


def test_merge_joins_parts_and_names_missing_chunks(tiny_model_file, collection, tmp_path, capsys):
    output = tmp_path / "out.csv"
    assert main(arguments(collection, output, tiny_model_file, "--resume", "--chunk-size", "2")) == 0
    parts = tmp_path / "out.parts"
    assert main(["merge", str(parts), "-o", str(tmp_path / "again.csv")]) == 0
    assert (tmp_path / "again.csv").read_bytes() == output.read_bytes()
    table = read_parts(parts)
    assert len(table) == 9 and [f["path"].rsplit("/", 1)[-1] for f in table.attrs["failures"]] == ["broken.jpg"]
    assert table["frame"].dtype == "Int64" and table["frame"].isna().sum() == 5

    (parts / "chunk-000001.json").unlink()
    capsys.readouterr()
    assert main(["merge", str(output), "-o", str(tmp_path / "third.csv")]) == 2
    message = capsys.readouterr().err
    assert "missing 1 of 4 chunks: chunk 1 (inputs 2-3, from" in message and "face1.png" in message and "--resume" in message
    assert not (tmp_path / "third.csv").exists()
    assert main(["merge", str(output)]) == 2 and "already exists" in capsys.readouterr().err  # never overwrites silently
