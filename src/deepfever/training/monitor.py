"""GPU utilisation while training: is the data pipeline keeping the accelerator busy?

NVML's utilisation is the share of the last sample period in which a kernel ran, so reading it
every couple of seconds at step boundaries estimates an epoch's utilisation without a thread.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Callable

import torch


def read_gpu_utilisation(device: torch.device) -> float | None:
    """Utilisation (%) of ``device`` now; None where neither NVML (pynvml) nor nvidia-smi answers."""
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # pynvml missing or no NVML: ask nvidia-smi
        if not shutil.which("nvidia-smi"):
            return None
        output = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                 f"--id={device.index or 0}"], capture_output=True, text=True, timeout=10).stdout.strip()
        try:
            return float(output)
        except ValueError:
            return None


class UtilisationMeter:
    """Samples ``read()`` at most every ``min_interval`` seconds; ``take_mean`` empties it."""

    def __init__(self, read: Callable[[], float | None], min_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.min_interval, self.clock = read, min_interval, clock
        self.samples: list[float] = []
        self.last_read = -float("inf")

    def maybe_sample(self) -> None:
        now = self.clock()
        if now - self.last_read < self.min_interval:
            return
        self.last_read = now
        value = self.read()
        if value is not None:
            self.samples.append(value)

    def take_mean(self) -> float | None:
        mean = sum(self.samples) / len(self.samples) if self.samples else None
        self.samples = []
        return mean
