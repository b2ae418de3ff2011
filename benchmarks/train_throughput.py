"""Training throughput (images/s) of the real training step: augmentation, forward, losses, backward, SGD.

Measures fevernet_s and fevernet_m (or --archs, e.g. resnet18) on CPU, and on CUDA when present
(bf16 autocast, channels-last, augmentation on the GPU as in training; utilisation sampled with
torch.cuda.utilization or nvidia-smi while timing). The step is the multi-task one (soft CE on every
image + FEC triplet loss on a third of the batch), on random data; a real run's metrics.csv gives
images/s and, on CUDA, GPU utilisation per epoch with the full data pipeline.
Run: .venv/bin/python benchmarks/train_throughput.py [--batch-size 64] [--seconds 10] [--compile]
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import save_result
from deepfever.models import ModelConfig, build_model
from deepfever.models.preprocess import normalize
from deepfever.training.augment import AugmentConfig, augment_batch
from deepfever.training.config import DistillSection, LossSection
from deepfever.training.monitor import UtilisationMeter, read_gpu_utilisation
from deepfever.training.task import ExpressionTask


def measure(arch: str, device: torch.device, batch_size: int, seconds: float, compile_model: bool) -> dict:
    torch.manual_seed(0)
    config = ModelConfig(arch=arch, trained_heads=("emotion",))
    model = build_model(config).to(device).to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compile_model else model
    task = ExpressionTask(forward, LossSection(triplet=1.0), DistillSection(), config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 1, 48, 48), dtype=torch.uint8)
    soft = torch.softmax(torch.randn(batch_size, 8, generator=generator), dim=1).to(device)
    triplet_count = batch_size // 9
    batch = {"soft": soft, "valence_arousal": torch.full((batch_size, 2), float("nan"), device=device),
             "triplets": torch.arange(3 * triplet_count, device=device).view(-1, 3),
             "types": torch.randint(1, 4, (triplet_count,), generator=generator).to(device)}

    def step() -> None:
        augmented = augment_batch(images.to(device, non_blocking=True).float().div(255), AugmentConfig(), generator)
        batch["images"] = normalize(augmented, config).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            terms, _ = task(batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()

    for _ in range(3 if not compile_model else 10):
        step()
    meter = UtilisationMeter(lambda: read_gpu_utilisation(device), min_interval=0.2) if device.type == "cuda" else None
    if meter:
        torch.cuda.synchronize(device)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
        if meter:
            meter.maybe_sample()
    if meter:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    result = {"images_per_second": steps * batch_size / elapsed, "steps": steps, "seconds": elapsed}
    if meter:
        result["gpu_utilisation_percent"] = meter.take_mean()
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--archs", nargs="+", default=["fevernet_s", "fevernet_m"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--gpu-batch-size", type=int, default=512)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda", 0)] if torch.cuda.is_available() else [])
    result: dict = {"compile": args.compile}
    for device in devices:
        batch_size = args.batch_size if device.type == "cpu" else args.gpu_batch_size
        result[device.type] = {arch: {"batch_size": batch_size, **measure(arch, device, batch_size, args.seconds, args.compile)}
                               for arch in args.archs}
    save_result("train_throughput", result)


if __name__ == "__main__":
    main()
