"""Hand-edited or damaged training files: ``--resume`` refuses them in one line naming the file and field."""
import json
import shutil

import pytest

from conftest import write_ferplus_fixture
from deepfever.cli import main

ARGS = ["epochs=2", "batch_size=16", "num_threads=1", "eval_flip_tta=false", "augment.erase_probability=0", "data.limit_valid=8"]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped after its first epoch, kept pristine; each test resumes a copy of it in place."""
    work = tmp_path_factory.mktemp("state")
    root = write_ferplus_fixture(work / "ferplus", per_split=32)
    output = work / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPFEVER_CACHE", str(work / "cache"))
        assert main(["train", "--config", "/dev/null", "--stop-after-epochs", "1", f"data.root={root}", f"output_dir={output}", *ARGS]) == 0
    shutil.copytree(output, work / "pristine")
    return {"root": root, "output": output, "pristine": work / "pristine", "cache": work / "cache"}


def _edit_json(**changes):
    def edit(output):
        path = output / "checkpoints" / "last.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return edit


DAMAGES = {
    "not json": ("checkpoints/last.json", "not valid JSON", lambda out: (out / "checkpoints" / "last.json").write_text("{")),
    "step as text": ("checkpoints/last.json", "step must be a whole number", _edit_json(step="x")),
    "step past the end": ("checkpoints/last.json", "step 1000000000 is after this run's last step", _edit_json(step=10**9)),
    "no param groups": ("checkpoints/last.json", "param_groups must be", _edit_json(param_groups=None)),
    "best accuracy as text": ("checkpoints/last.json", "best_accuracy must be", _edit_json(best_accuracy="high")),
    "negative sampler position": ("checkpoints/last.json", "sampler.position must be", _edit_json(sampler={"position": -3})),
    "epoch totals without steps": ("checkpoints/last.json", "epoch_totals must hold", _edit_json(epoch_totals={"loss": 1.0})),
    "cut weights": ("checkpoints/last.safetensors", "not a readable .safetensors checkpoint",
                    lambda out: (out / "checkpoints" / "last.safetensors").write_bytes(b"\x10" + b"\0" * 20)),
    "metrics as text": ("metrics.csv", "not the metrics table a run writes",
                        lambda out: (out / "metrics.csv").write_text("epoch,lr\nfirst,x\n")),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_resume_refuses_a_damaged_training_file_in_one_line(stopped_run, monkeypatch, capsys, damage):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(stopped_run["cache"]))
    name, message, edit = DAMAGES[damage]
    output = stopped_run["output"]
    shutil.rmtree(output)
    shutil.copytree(stopped_run["pristine"], output)
    edit(output)
    capsys.readouterr()
    status = main(["train", "--config", "/dev/null", "--resume", f"data.root={stopped_run['root']}", f"output_dir={output}", *ARGS])
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO ")]
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith("deepfever train: error:") and str(output / name) in errors[0] and message in errors[0]


def test_the_pristine_copy_resumes(stopped_run, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(stopped_run["cache"]))
    output = stopped_run["output"]
    shutil.rmtree(output)
    shutil.copytree(stopped_run["pristine"], output)
    assert main(["train", "--config", "/dev/null", "--resume", f"data.root={stopped_run['root']}", f"output_dir={output}", *ARGS]) == 0
    assert json.loads((output / "metrics.json").read_text())["epochs_done"] == 2
