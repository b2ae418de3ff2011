"""What runs record about themselves: the source revision, and GPU utilisation per epoch."""
import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import deepfever._version
from deepfever._version import source_revision
from deepfever.training.hooks import GpuUtilisationHook
from deepfever.training.monitor import UtilisationMeter

PACKAGE = Path(deepfever._version.__file__).resolve().parent


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _copy_of_version_module(folder: Path):
    """deepfever/_version.py loaded from a copy in ``folder``, as if the package were installed there."""
    package = folder / "deepfever"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(PACKAGE / "_version.py", package / "_version.py")
    spec = importlib.util.spec_from_file_location("copied_version", package / "_version.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_source_revision_names_the_checked_out_commit():
    if _git("ls-files", "--error-unmatch", "__init__.py", cwd=PACKAGE).returncode:
        pytest.skip("the package is not a git checkout here")
    head = _git("rev-parse", "HEAD", cwd=PACKAGE).stdout.strip()
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=PACKAGE).stdout.strip())
    assert source_revision() == head + ("+dirty" if dirty else "")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_source_revision_is_none_outside_a_checkout_and_inside_someone_elses(tmp_path):
    assert _copy_of_version_module(tmp_path / "plain").source_revision() is None
    other = tmp_path / "other_repo"
    other.mkdir()
    _git("init", "-q", cwd=other)
    (other / "README").write_text("not deepfever")
    _git("add", "README", cwd=other)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=other)
    # a wheel unpacked (untracked) inside another repository must not report that repository's commit
    assert _copy_of_version_module(other / "site-packages").source_revision() is None


def test_meter_rate_limits_skips_unanswered_reads_and_empties_on_take():
    now = [0.0]
    readings = iter([50.0, None, 70.0, 90.0])
    meter = UtilisationMeter(lambda: next(readings), min_interval=2.0, clock=lambda: now[0])
    for moment in (0.0, 1.0, 2.5, 3.0, 5.0, 7.5):  # reads at 0, 2.5, 5.0, 7.5
        now[0] = moment
        meter.maybe_sample()
    assert meter.take_mean() == pytest.approx((50 + 70 + 90) / 3)
    assert meter.take_mean() is None


def test_gpu_hook_puts_the_epochs_mean_in_the_row_and_skips_each_epochs_first_step():
    readings = iter(range(100))
    hook = GpuUtilisationHook(UtilisationMeter(lambda: float(next(readings)), min_interval=0.0))
    trainer = SimpleNamespace(step=0, steps_per_epoch=4, epoch_extras={})
    means = []
    for _ in range(2):
        for _ in range(4):
            trainer.step += 1
            hook.after_step(trainer)
        hook.after_epoch(trainer)
        means.append(trainer.epoch_extras["gpu_utilisation_percent"])
    assert means == [1.0, 4.0]  # readings 0,1,2 then 3,4,5: steps 2-4 of each epoch


def test_gpu_hook_leaves_the_column_out_when_nothing_answers():
    hook = GpuUtilisationHook(UtilisationMeter(lambda: None, min_interval=0.0))
    trainer = SimpleNamespace(step=0, steps_per_epoch=2, epoch_extras={})
    for _ in range(2):
        trainer.step += 1
        hook.after_step(trainer)
    hook.after_epoch(trainer)
    assert trainer.epoch_extras == {}
