"""The trainer's hook contract: when each hook is called, and what run state it sees."""
import pytest

from conftest import write_ferplus_fixture
from deepfever.cli import main
from deepfever.config import load_config
from deepfever.training.config import TrainConfig
from deepfever.models.distributed import init_distributed
from deepfever.training.hooks import Hook
from deepfever.training.loop import Trainer, train
from deepfever.training.selection import EvaluationHook

OVERRIDES = ["epochs=2", "steps_per_epoch=2", "batch_size=8", "optim.warmup_epochs=0", "eval_flip_tta=false",
             "augment.erase_probability=0", "num_threads=1", "data.limit_train=32", "data.limit_valid=16"]


@pytest.fixture(scope="module")
def ferplus_root(tmp_path_factory):
    return write_ferplus_fixture(tmp_path_factory.mktemp("ferplus"), per_split=32)


class RecordingHook(Hook):
    def __init__(self):
        self.calls = []

    def before_train(self, trainer):
        self.calls.append(("before_train", trainer.step))

    def after_step(self, trainer):
        self.calls.append(("after_step", trainer.step))

    def after_epoch(self, trainer):
        # Earlier hooks have scored, selected and logged this epoch by now.
        evaluation = next(hook for hook in trainer.hooks if isinstance(hook, EvaluationHook))
        assert trainer.epoch_scores["valid_accuracy"] == evaluation.scores["accuracy"]
        assert (trainer.output / "metrics.csv").read_text().count("\n") == trainer.epoch + 1
        self.calls.append(("after_epoch", trainer.step))

    def after_train(self, trainer):
        self.calls.append(("after_train", trainer.step, sorted(trainer.result)))


def test_hooks_are_called_around_steps_and_epochs_in_order(ferplus_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    config = load_config(TrainConfig, None, [f"data.root={ferplus_root}", f"output_dir={tmp_path / 'run'}", *OVERRIDES])
    context = init_distributed(config.device)
    try:
        trainer = Trainer(config, context, resume=False, overwrite=False)
        recorder = RecordingHook()
        trainer.hooks.append(recorder)
        trainer.run()
    finally:
        context.close()
    result_keys = ["best_valid_accuracy", "epochs", "epochs_done", "output_dir", "steps_done"]
    assert recorder.calls == [("before_train", 0), ("after_step", 1), ("after_step", 2), ("after_epoch", 2),
                              ("after_step", 3), ("after_step", 4), ("after_epoch", 4), ("after_train", 4, result_keys)]
    assert trainer.scheduler.last_epoch == 4  # the schedule hook stepped once per optimiser step


def test_negative_stops_are_refused_before_work(ferplus_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPFEVER_CACHE", str(tmp_path / "cache"))
    config = load_config(TrainConfig, None, [f"data.root={ferplus_root}", f"output_dir={tmp_path / 'run'}", *OVERRIDES])
    with pytest.raises(ValueError, match="stop_after_epochs and stop_after_steps must be 0"):
        train(config, stop_after_steps=-1)
    status = main(["train", "--config", "/dev/null", "--stop-after-epochs", "-1", f"data.root={ferplus_root}",
                   f"output_dir={tmp_path / 'run'}", *OVERRIDES])
    assert status == 2 and "--stop-after-epochs must be 0 (run to the end) or more, got -1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
