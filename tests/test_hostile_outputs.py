"""Issue 18, items 5-9, 11, 12: outputs, links, odd names, sidecars, paths, merge recovery under attack.

Each test names the item it covers; all use a random-init model on generated inputs (detector ``none``).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_random_crops
from deepfever.api import Extractor
from deepfever.cli import main
from deepfever.io.tables import read_table


def extract_args(inputs, output, model, *extra):
    return ["extract", *map(str, inputs if isinstance(inputs, list) else [inputs]), "-o", str(output), "--model", str(model),
            "--detector", "none", "--batch-size", "1", *extra]


def never_extract(monkeypatch):
    """Fail the test if any extraction starts: the refusal must come before the work."""
    def refuse(*args, **kwargs):
        raise AssertionError("extraction started before the refusal")

    monkeypatch.setattr(Extractor, "iter_extract", refuse)


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.count("\n") == 1, error
    return error


# -- 5. outputs that would land on an input ---------------------------------------------------------------
@pytest.mark.parametrize("flag, victim", [("--annotate-dir", "x0.annotated.jpg"), ("--save-crops", "x0.face0.png")])
def test_outputs_landing_on_an_input_are_refused_even_with_overwrite(tiny_model_file, tmp_path, monkeypatch, capsys, flag, victim):
    photos = tmp_path / "photos"
    write_random_crops(photos, 2, "x")
    shutil.copy(photos / "x1.png", photos / victim)  # an input that the output for x0.png would replace
    before = (photos / victim).read_bytes()
    never_extract(monkeypatch)
    assert main(extract_args(photos, tmp_path / "out.csv", tiny_model_file, flag, str(photos), "--overwrite")) == 2
    error = one_line_error(capsys)
    assert victim in error and "input" in error and flag in error
    assert (photos / victim).read_bytes() == before


def test_table_output_naming_an_input_is_refused(tiny_model_file, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    write_random_crops(photos, 1, "x")
    table = tmp_path / "given.csv"
    table.write_text("not a photo\n")
    never_extract(monkeypatch)
    assert main(extract_args([photos, table], table, tiny_model_file, "--overwrite")) == 2
    assert "given.csv" in one_line_error(capsys) and table.read_text() == "not a photo\n"


# -- 6. symlinks: followed once, by real path, with loop detection -----------------------------------------
def test_symlinked_subfolders_are_followed_once_and_loops_end(tiny_model_file, tmp_path):
    photos = tmp_path / "photos"
    write_random_crops(photos / "real", 2, "x")
    elsewhere = tmp_path / "elsewhere"
    write_random_crops(elsewhere, 1, "y", seed=3)
    (photos / "linked").symlink_to(elsewhere, target_is_directory=True)   # a linked folder: its photo is an input
    (photos / "real" / "loop").symlink_to(photos, target_is_directory=True)  # a loop back to the top
    (photos / "again").symlink_to(photos / "real", target_is_directory=True)  # the same photos under a second name
    (photos / "x0-copy.png").symlink_to(photos / "real" / "x0.png")
    (photos / "gone.png").symlink_to(tmp_path / "nowhere.png")
    extractor = Extractor(model=tiny_model_file, detector="none")
    real_photos = [photos / "real" / "x0.png", photos / "real" / "x1.png"]
    cases = [([photos], [*real_photos, elsewhere / "y0.png"]),
             ([str(photos / "**" / "*.png")], [*real_photos, elsewhere / "y0.png"]),
             ([str(photos / "*.png"), str(photos / "real" / "*.png")], real_photos)]
    for inputs, expected in cases:
        started = time.perf_counter()
        table = extractor.extract(inputs)
        assert time.perf_counter() - started < 30
        assert sorted(os.path.realpath(path) for path in table["path"]) == sorted(os.path.realpath(p) for p in expected), inputs
        assert str(photos / "real" / "x0.png") in set(table["path"])  # the real name, not the link beside it
        assert [failure["path"] for failure in table.attrs["failures"]] == [str(photos / "gone.png")]


# -- 7. file names that are not UTF-8 -----------------------------------------------------------------------
@pytest.fixture
def odd_name_folder(tmp_path):
    photos = tmp_path / "photos"
    write_random_crops(photos, 2, "x")
    odd = os.fsdecode(bytes(photos) + b"/caf\xe9.png")
    shutil.copy(photos / "x0.png", odd)
    return photos


def test_a_name_that_is_not_utf8_gets_a_failure_row_and_the_run_goes_on(tiny_model_file, odd_name_folder, tmp_path, capsys):
    table = Extractor(model=tiny_model_file, detector="none").extract([odd_name_folder])
    assert len(table) == 2
    assert [failure["path"] for failure in table.attrs["failures"]] == [str(odd_name_folder / "caf\\xe9.png")]
    for suffix in (".parquet", ".csv"):
        output = tmp_path / f"out{suffix}"
        assert main(extract_args(odd_name_folder, output, tiny_model_file)) == 0
        assert len(read_table(output)) == 2
        failures = pd.read_csv(Path(f"{output}.failures.csv"))
        assert failures["path"].tolist() == [str(odd_name_folder / "caf\\xe9.png")]
        assert "UTF-8" in failures["reason"][0]


# -- 8. every output keeps its own sidecars -----------------------------------------------------------------
def test_outputs_of_two_formats_keep_their_own_sidecars(tiny_model_file, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_random_crops(photos, 2, "x")
    (photos / "broken.png").write_bytes(b"not a png")
    assert main(extract_args(photos, tmp_path / "x.npz", tiny_model_file)) == 0
    npz_meta = (tmp_path / "x.npz.meta.json").read_text()
    assert main(extract_args(photos, tmp_path / "x.csv", tiny_model_file, "--fps", "3")) == 0
    assert (tmp_path / "x.npz.meta.json").read_text() == npz_meta
    assert "wrote " + str(tmp_path / "x.csv") + " and " + str(tmp_path / "x.csv.failures.csv") in capsys.readouterr().out
    for name in ("x.npz", "x.csv"):
        assert len(pd.read_csv(tmp_path / f"{name}.failures.csv")) == 1
    assert read_table(tmp_path / "x.npz").attrs["metadata"]["fps"] is None
    assert read_table(tmp_path / "x.csv").attrs["metadata"]["fps"] == 3
    assert not (tmp_path / "x.meta.json").exists() and not (tmp_path / "x.failures.csv").exists()


def test_read_table_still_reads_the_legacy_sidecar(tmp_path):
    from deepfever.io.tables import write_table

    write_table(pd.DataFrame({"path": ["a.png"], "face": [0]}), tmp_path / "old.csv", {"fps": 7})
    (tmp_path / "old.csv.meta.json").rename(tmp_path / "old.meta.json")  # as tables were written before issue 18
    assert read_table(tmp_path / "old.csv").attrs["metadata"] == {"fps": 7}


# -- 9. paths resolvable wherever the table is read ------------------------------------------------------------
def test_paths_resolve_from_any_folder_and_grid_warns_naming_missing_sources(tiny_model_file, tmp_path, monkeypatch, capsys, caplog):
    work = tmp_path / "work"
    write_random_crops(work / "photos", 3, "x")
    monkeypatch.chdir(work)
    assert main(extract_args("photos", "faces.parquet", tiny_model_file)) == 0
    assert main(["index", "build", "faces.parquet", "-o", "faces.index"]) == 0
    assert main(["index", "build", "photos", "-o", "direct.index", "--model", str(tiny_model_file), "--detector", "none"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    table = read_table(work / "faces.parquet")
    assert all(Path(path).is_file() for path in table["path"])
    (work / "photos" / "x2.png").unlink()
    for index in ("faces.index", "direct.index"):
        caplog.clear()
        assert main(["search", str(work / index), "--query-row", "0", "-k", "3", "--include-same-image",
                     "--grid", f"{index}.png"]) == 0
        warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
        assert any("x2.png" in message and "missing" in message for message in warnings), warnings
        assert not any("x0.png" in message or "x1.png" in message for message in warnings), warnings


# -- 11. kill -9 during the final merge -----------------------------------------------------------------------
KILLED_MERGE = textwrap.dedent("""
    import os, signal, sys
    from deepfever.extraction import run
    from deepfever.cli import main

    real = run.store.iter_parts
    def dying(*args, **kwargs):
        for number, batch in enumerate(real(*args, **kwargs)):
            if number == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # half the table written, its failures file already there
            yield batch
    run.store.iter_parts = dying
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_resume_finishes_a_merge_killed_half_way_and_leaves_no_temporary_file(tiny_model_file, tmp_path, suffix):
    photos = tmp_path / "photos"
    write_random_crops(photos, 4, "x")
    (photos / "broken.png").write_bytes(b"not a png")
    output = tmp_path / f"out{suffix}"
    args = extract_args(photos, output, tiny_model_file, "--chunk-size", "1")
    killed = subprocess.run([sys.executable, "-c", KILLED_MERGE, *args], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert not output.exists() and Path(f"{output}.failures.csv").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the half-written table
    assert main([*args, "--resume"]) == 0
    assert len(read_table(output)) == 4 and len(pd.read_csv(f"{output}.failures.csv")) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


# -- 12. merge refuses a doubled chunk, a tampered manifest and names damaged files ------------------------------
@pytest.fixture
def parts(tiny_model_file, tmp_path):
    photos = tmp_path / "photos"
    write_random_crops(photos, 4, "x")
    assert main(extract_args(photos, tmp_path / "out.parquet", tiny_model_file, "--chunk-size", "2")) == 0
    return tmp_path / "out.parts"


def test_merge_refuses_a_chunk_copied_over_another(parts, tmp_path, capsys):
    for ending in (".parquet", ".json"):
        shutil.copy(parts / f"chunk-000000{ending}", parts / f"chunk-000001{ending}")
    capsys.readouterr()
    assert main(["merge", str(parts), "-o", str(tmp_path / "merged.parquet")]) == 2
    error = one_line_error(capsys)
    assert "chunk 1" in error and "x0.png" in error
    assert not (tmp_path / "merged.parquet").exists()


def test_merge_never_writes_where_a_tampered_manifest_points(parts, tmp_path, capsys):
    manifest = json.loads((parts / "manifest.json").read_text())
    manifest["output"] = "../escaped.csv"
    (parts / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["merge", str(parts), "--overwrite"]) == 2
    assert "-o" in one_line_error(capsys)
    assert not (tmp_path.parent / "escaped.csv").exists()


@pytest.mark.parametrize("damage, name", [
    (lambda parts: (parts / "manifest.json").write_text("{ not json"), "manifest.json"),
    (lambda parts: (parts / "chunk-000001.json").write_text("[1, 2"), "chunk-000001.json"),
    (lambda parts: (parts / "chunk-000001.parquet").write_bytes(b"PAR1 truncated"), "chunk-000001.parquet"),
    (lambda parts: (parts / "chunk-000000.parquet").unlink(), "chunk-000000.parquet"),
    (lambda parts: (parts / "inputs.jsonl").write_text("not json\n"), "inputs.jsonl"),
])
def test_merge_names_the_damaged_file(parts, tmp_path, capsys, damage, name):
    damage(parts)
    capsys.readouterr()
    assert main(["merge", str(parts), "-o", str(tmp_path / "merged.csv")]) == 2
    assert name in one_line_error(capsys)
    assert not (tmp_path / "merged.csv").exists()
