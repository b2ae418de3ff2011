"""Two gloo processes on CPU: identical weights on both ranks, only rank 0 writes, and the result
matches one process that accumulates the same two micro-batches per step."""
import json
import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from conftest import write_ferplus_fixture
from deepfever.config import load_config
from deepfever.training.config import TrainConfig
from deepfever.models.distributed import init_distributed
from deepfever.training.loop import Trainer


def config_for(root, output, *extra):
    sources = f"sources=[{{name: vote_triplets, format: ferplus, root: {root}, ratio: 0.5, triplets: 40}}]"
    return load_config(TrainConfig, None, [
        f"data.root={root}", f"output_dir={output}", sources, "data.ratio=0.5", "batch_size=12", "epochs=1",
        "steps_per_epoch=3", "optim.lr=0.05", "optim.warmup_epochs=0", "eval_flip_tta=false", "num_threads=1",
        "augment.erase_probability=0", "loss.triplet=1.0", *extra,
    ])


def run_and_save_parameters(config, results, name):
    trainer = Trainer(config, init_distributed(config.device), resume=False, overwrite=False)
    try:
        trainer.run()
        save_file({key: value.detach().contiguous() for key, value in trainer.model.named_parameters()}, str(results / f"{name}.safetensors"))
    finally:
        trainer.context.close()


def _worker(rank, root, output, results, port):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      DEEPFEVER_CACHE=str(results / f"cache{rank}"))
    written = []
    replace = os.replace

    def recording_replace(source, destination):  # every output file lands through os.replace (atomic_write)
        written.append(str(destination))
        replace(source, destination)

    os.replace = recording_replace
    run_and_save_parameters(config_for(root, output), results, f"rank{rank}")
    (results / f"written{rank}.json").write_text(json.dumps([path for path in written if path.startswith(str(output))]))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_gloo_run_matches_one_process_with_accumulation(tmp_path, monkeypatch):
    root = write_ferplus_fixture(tmp_path / "ferplus", per_split=36)
    results, output = tmp_path / "results", tmp_path / "ddp"
    results.mkdir()
    mp.spawn(_worker, args=(root, output, results, free_port()), nprocs=2, join=True)

    rank0, rank1 = (load_file(str(results / f"rank{r}.safetensors")) for r in range(2))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    written = [json.loads((results / f"written{r}.json").read_text()) for r in range(2)]
    assert written[1] == [] and any(path.endswith("last.safetensors") for path in written[0])
    assert json.loads((output / "environment.json").read_text())["world_size"] == 2

    monkeypatch.setenv("DEEPFEVER_CACHE", str(results / "cache0"))
    run_and_save_parameters(config_for(root, tmp_path / "single", "accumulate_steps=2"), results, "single")
    single = load_file(str(results / "single.safetensors"))
    for key in rank0:
        torch.testing.assert_close(single[key], rank0[key], rtol=1e-4, atol=1e-5, msg=key)
