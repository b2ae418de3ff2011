"""Issue 18, items 18-20: commands speak only when something is wrong, small claims hold, errors name flags on the CLI.

Commands run in subprocesses where what they print is the point: library noise (OpenCV's notices,
FAISS's loader) comes from outside Python's own streams, and only a fresh process shows it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_random_crops
from deepfever.cli import build_parser, main
from deepfever.io.failures import failures_path_for

NOISE = ("[ WARN", "faiss.loader", "Could not load library", "rank 0 of 1", "ModuleNotFoundError", "Warning")
"""Lines no DeepFEVER user can act on: OpenCV's DNN notice, FAISS probing CPU features, a one-process run's rank."""


def deepfever(*arguments: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``deepfever ARGS`` in a fresh process, as a user runs it (its own stdout and stderr)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("OPENCV_LOG_LEVEL", None)  # as a user's shell has it
    return subprocess.run([sys.executable, "-m", "deepfever", *map(str, arguments)], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=300)


def noisy(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(mark in line for mark in NOISE)]


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    write_random_crops(tmp_path / "crops", 6, "c")
    return tmp_path / "crops"


@pytest.fixture
def table(tmp_path: Path, crops: Path, tiny_model_file: Path) -> Path:
    output = tmp_path / "faces.parquet"
    assert main(["extract", str(crops), "-o", str(output), "--model", str(tiny_model_file), "--detector", "none"]) == 0
    return output


# --- 18: silent unless something is wrong; --quiet and --verbose on every command -------------------------------


def test_extract_on_one_photo_prints_only_its_summary(shared: Path, tmp_path: Path) -> None:
    """The default detector (YuNet, through OpenCV's DNN) and a one-process chunked run: no notice, no rank line."""
    done = deepfever("extract", shared / "data" / "photos" / "couple.jpg", "-o", tmp_path / "one.parquet")
    assert done.returncode == 0, done.stderr
    assert noisy(done.stderr) == []
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepfever extract: 1 images, 2 faces"), done.stderr
    assert done.stdout.startswith("wrote ")


def test_index_and_search_print_no_faiss_loader_lines(table: Path, tmp_path: Path) -> None:
    built = deepfever("index", "build", table, "-o", tmp_path / "idx")
    assert built.returncode == 0 and built.stderr == "", built.stderr
    found = deepfever("search", tmp_path / "idx", "--query-row", "0", "-k", "3")
    assert found.returncode == 0 and found.stderr == "", found.stderr
    assert "similarity" in found.stdout  # the results are still printed


def test_quiet_prints_nothing_but_errors(table: Path, crops: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    common = ("--model", tiny_model_file, "--detector", "none")
    done = deepfever("extract", crops, "-o", tmp_path / "q.csv", *common, "--quiet")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "q.csv").is_file()
    built = deepfever("-q", "index", "build", table, "-o", tmp_path / "idx")  # before the command works too
    assert (built.returncode, built.stdout, built.stderr) == (0, "", "")
    refused = deepfever("extract", crops, "-o", tmp_path / "q.csv", *common, "-q")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [f"deepfever extract: error: {tmp_path / 'q.csv'} already exists; pass --overwrite to "
                                           "replace it."]


def test_verbose_shows_debug_logs(crops: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    for flags in (("extract", "--verbose"), ("-v", "extract")):
        output = tmp_path / f"v{len(flags[0])}.parquet"
        done = deepfever(*flags, crops, "-o", output, "--model", tiny_model_file, "--detector", "none")
        assert done.returncode == 0, done.stderr
        assert "DEBUG deepfever.extraction.run: rank 0 of 1: 1 of 1 chunks to do" in done.stderr


def test_every_command_takes_quiet_and_verbose() -> None:
    from deepfever.cli import _commands

    parser = build_parser()
    commands = _commands(parser)
    assert len(commands) >= 20  # extract, index build, search, probe fit, data prepare, export onnx, ...
    for command in commands:
        flags = {flag for action in command._actions for flag in action.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= flags, command.prog
    assert parser.parse_args(["-q", "merge", "x.parts"]).quiet is True
    assert parser.parse_args(["merge", "x.parts", "-q"]).quiet is True
    assert parser.parse_args(["-v", "merge", "x.parts"]).verbose is True  # a command's default keeps a choice made before it
    assert parser.parse_args(["merge", "x.parts"]).verbose is False
    with pytest.raises(SystemExit):
        parser.parse_args(["merge", "x.parts", "-q", "-v"])


def test_main_in_process_puts_logging_back(table: Path, tmp_path: Path) -> None:
    import logging

    package, root = logging.getLogger("deepfever"), logging.getLogger()
    before = package.level, root.level, os.environ.get("OPENCV_LOG_LEVEL")
    assert main(["index", "build", str(table), "-o", str(tmp_path / "idx"), "-q"]) == 0
    assert (package.level, root.level, os.environ.get("OPENCV_LOG_LEVEL")) == before


def test_a_seeded_umap_map_warns_nothing() -> None:
    pytest.importorskip("umap")
    from deepfever.applications.maps import project_2d

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        project_2d(np.random.default_rng(0).normal(size=(60, 8)), method="umap")
    assert [str(w.message) for w in caught if not issubclass(w.category, ImportWarning)] == []


# --- 19: small claims that were not true -----------------------------------------------------------------------


def test_read_table_imports_from_deepfever_io_and_io_stays_light() -> None:
    from deepfever.io import read_table, write_table
    from deepfever.io import tables

    assert read_table is tables.read_table and write_table is tables.write_table
    code = "import sys, deepfever.io; print(sorted(m for m in ('numpy', 'pandas', 'PIL') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_smooth_is_described_as_an_exponential_weight_whose_lag_depends_on_fps() -> None:
    import math

    extract = next(command for command in __import__("deepfever.cli", fromlist=["_commands"])._commands(build_parser())
                   if command.prog.endswith(" extract"))
    help_text = next(action.help for action in extract._actions if "--smooth" in action.option_strings)
    assert "exponential" in help_text and "--fps" in help_text and "moving-average weight" not in help_text
    # The half-way lag the help and the video tutorial quote, from the update rule p = S * previous + (1 - S) * raw.
    smoothed, frames = 0.0, 0
    while smoothed < 0.5:
        smoothed, frames = 0.6 * smoothed + 0.4, frames + 1
    assert frames == math.ceil(math.log(2) / math.log(1 / 0.6)) == 2 and "2 for S = 0.6" in help_text
    tutorial = (Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "video.md").read_text()
    assert "2 frames, 0.5 s at\n4 fps" in tutorial and "1 / (F · (1 − S))" not in tutorial


def test_demo_records_how_its_table_was_made(tmp_path: Path) -> None:
    from deepfever.io.tables import read_table

    done = deepfever("demo", "-o", tmp_path / "demo")
    assert done.returncode == 0, done.stderr
    assert noisy(done.stderr) == [] and "table:" in done.stdout
    metadata = read_table(tmp_path / "demo" / "demo.csv").attrs["metadata"]
    assert metadata["model_id"] in done.stdout and metadata["face_stage"]["detector"] == metadata["detector"]
    assert metadata["inputs"] == 1 and not list((tmp_path / "demo").glob("*.parts"))


def test_export_int8_prints_the_model_id_the_file_records(tiny_model_file: Path, crops: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    output = tmp_path / "tiny.int8.onnx"
    done = deepfever("export", "onnx", tiny_model_file, "-o", output, "--int8", "--calibration", crops,
                     "--calibration-detector", "none", "--calibration-count", "6")
    assert done.returncode == 0, done.stderr
    recorded = {entry.key: entry.value for entry in onnx.load(str(output)).metadata_props}["model_id"]
    assert recorded.endswith("+int8") and f"model {recorded})" in done.stdout
    assert noisy(done.stderr) == [] and done.stdout.count("wrote") == 1


def test_merge_names_a_missing_chunk_file(crops: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "m.parquet"
    assert main(["extract", str(crops), "-o", str(output), "--model", str(tiny_model_file), "--detector", "none",
                 "--chunk-size", "2", "-q"]) == 0
    missing = tmp_path / "m.parts" / "chunk-000001.parquet"
    missing.unlink()
    done = deepfever("merge", tmp_path / "m.parts", "-o", tmp_path / "again.parquet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepfever merge: error:"), done.stderr
    assert str(missing) in lines[0] and "--resume" in lines[0]


def _frames_of_people(people: int = 4, sources_each: int = 3, frames: int = 5, seed: int = 0):
    """Frames of one source (a video) are near-copies; one person's sources share nothing else."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(people):
        for source in range(sources_each):
            centre = rng.normal(size=32)
            for _ in range(frames):
                rows.append((centre + 0.01 * rng.normal(size=32), f"p{person}", f"p{person}-v{source}"))
    vectors, identities, sources = zip(*rows)
    return np.stack(vectors), np.array(identities), np.array(sources)


def _naive_map(vectors: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Mean AP, one query at a time: rank every row outside the query's group, average precision at each hit."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = []
    for query in range(len(vectors)):
        others = [row for row in range(len(vectors)) if groups[row] != groups[query]]
        ranked = sorted(others, key=lambda row: -float(unit[query] @ unit[row]))
        hits = [labels[row] == labels[query] for row in ranked]
        if any(hits):
            scores.append(np.mean([sum(hits[:rank + 1]) / (rank + 1) for rank, hit in enumerate(hits) if hit]))
    return float(np.mean(scores))


def test_identity_retrieval_leaves_out_the_query_source() -> None:
    from deepfever.evaluation.identity import retrieval_map

    vectors, identities, sources = _frames_of_people()
    pooled = retrieval_map(vectors, identities)
    by_source = retrieval_map(vectors, identities, sources)
    assert by_source["map"] == pytest.approx(_naive_map(vectors, identities, sources))
    assert pooled["map"] == pytest.approx(_naive_map(vectors, identities, np.arange(len(vectors))))
    assert by_source["map"] < pooled["map"] - 0.2  # near-copies no longer count as finding the person
    assert by_source["chance"] == pytest.approx(2 * 5 / (60 - 5))  # the other 2 videos of 5 frames, among 55 candidates


def test_identity_check_prints_a_verdict_that_honours_source_column(tmp_path: Path, capsys) -> None:
    from deepfever.evaluation.identity import retrieval_map
    from deepfever.io.tables import write_table

    vectors, identities, sources = _frames_of_people()
    paths = [f"f{index}.png" for index in range(len(vectors))]
    write_table(pd.DataFrame({"path": paths, "face": 0, "embedding": list(vectors.astype(np.float32))}), tmp_path / "t.parquet")
    pd.DataFrame({"path": paths, "identity": identities, "video": sources}).to_csv(tmp_path / "ids.csv", index=False)
    common = ["identity-check", str(tmp_path / "t.parquet"), "--identities", str(tmp_path / "ids.csv"), "--folds", "2"]
    assert main([*common, "-o", str(tmp_path / "pooled.json")]) == 0
    assert "verdict: strong identity leakage" in capsys.readouterr().out
    assert main([*common, "--source-column", "video", "-o", str(tmp_path / "by_source.json")]) == 0
    verdict = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("verdict: "))
    assert verdict.startswith("verdict: some identity leakage")  # was strong: lift 0.58 pooled, 0.33 by source
    by_source = json.loads((tmp_path / "by_source.json").read_text())["identity"]["retrieval"]
    assert by_source["map"] == pytest.approx(retrieval_map(vectors.astype(np.float32), identities, sources)["map"])
    assert by_source["map"] < json.loads((tmp_path / "pooled.json").read_text())["identity"]["retrieval"]["map"] - 0.2


def test_verdict_judges_identity_against_expression() -> None:
    from deepfever.evaluation.identity import leakage_verdict

    def report(identity_map: float, expression_map: float) -> dict:
        return {"identity": {"retrieval": {"map": identity_map, "chance": 0.1}},
                "expression": {"retrieval": {"map": expression_map, "chance": 0.1}}}

    assert leakage_verdict(report(0.8, 0.7)).startswith("strong")
    assert leakage_verdict(report(0.5, 0.7)).startswith("noticeable")  # lift 0.44 vs 0.67
    assert leakage_verdict(report(0.2, 0.7)).startswith("little")
    assert "no better than chance" in leakage_verdict(report(0.5, 0.1))


# --- 20: the CLI names flags, Python names arguments ------------------------------------------------------------


def test_errors_name_arguments_in_python_and_flags_on_the_command_line(crops: Path, tiny_model_file: Path, tmp_path: Path,
                                                                          capsys) -> None:
    from deepfever.api import Extractor
    from deepfever.extraction import ExtractionRun
    from deepfever.io.atomic import refuse_overwrite

    existing = tmp_path / "x.csv"
    existing.write_text("mine")
    with pytest.raises(FileExistsError) as refused:
        refuse_overwrite(existing, False)
    assert "overwrite=True" in str(refused.value) and "--overwrite" not in str(refused.value)
    with pytest.raises(ValueError) as smoothing:
        ExtractionRun(Extractor(model=str(tiny_model_file), detector="none"), tmp_path / "y.csv", smoothing=2.0).plan([crops])
    assert "smoothing=0.6" in str(smoothing.value) and "--smooth" not in str(smoothing.value)

    common = ["--model", str(tiny_model_file), "--detector", "none"]
    assert main(["extract", str(crops), "-o", str(existing), *common]) == 2
    error = capsys.readouterr().err
    assert "pass --overwrite to replace it" in error and "overwrite=True" not in error
    assert main(["extract", str(crops), "-o", str(tmp_path / "y.csv"), "--smooth", "2", *common]) == 2
    error = capsys.readouterr().err
    assert "--smooth must lie in [0, 1), got 2.0; pass --smooth 0.6" in error and "smoothing" not in error

    # A parts folder of an earlier run: Python is told resume=True / overwrite=True, the command line --resume / --overwrite.
    output = tmp_path / "z.parquet"
    assert main(["extract", str(crops), "-o", str(output), *common, "--chunk-size", "3", "-q"]) == 0
    output.unlink()
    failures_path_for(output).unlink()
    with pytest.raises(FileExistsError) as earlier:
        ExtractionRun(Extractor(model=str(tiny_model_file), detector="none"), output).run([crops])
    assert "pass resume=True to continue it or overwrite=True" in str(earlier.value)
    assert main(["extract", str(crops), "-o", str(output), *common]) == 2
    assert "pass --resume to continue it or --overwrite to start again" in capsys.readouterr().err


def test_option_messages_survive_pickling() -> None:
    """Errors cross process boundaries (torchrun ranks, executor workers) with both forms intact."""
    import pickle

    from deepfever.errors import OVERWRITE, OptionMessage, for_command_line

    error = pickle.loads(pickle.dumps(FileExistsError(OptionMessage("{odd} name exists; pass ", OVERWRITE, "."))))
    assert (str(error), for_command_line(error)) == ("{odd} name exists; pass overwrite=True.", "{odd} name exists; pass --overwrite.")
