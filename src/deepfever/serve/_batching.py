"""Micro-batching: aligned crops of concurrent requests share one forward pass of the model.

One worker thread owns the model. It takes the first waiting job, then keeps collecting jobs for at
most ``max_wait_s`` (or until ``max_batch`` crops are ready), runs them as one batch and hands each
job its own slice of the result. Under light load a request waits at most ``max_wait_s`` extra;
under heavy load the batches fill up and the per-face cost of the model drops.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class _Job:
    crops: np.ndarray
    future: Future
    cancelled: threading.Event | None


@dataclass
class BatchStats:
    """How the batches turned out: a mean batch above 1 face means micro-batching is working."""

    batches: int = 0
    faces: int = 0
    largest: int = 0
    skipped_jobs: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"batches": self.batches, "faces": self.faces, "largest_batch": self.largest,
                "mean_batch": self.faces / self.batches if self.batches else 0.0, "skipped_jobs": self.skipped_jobs}


@dataclass
class MicroBatcher:
    """Run ``predict`` on crops from many threads in shared batches, from a single worker thread.

    Example:
        >>> batcher = MicroBatcher(lambda crops: {"sum": crops.reshape(len(crops), -1).sum(1)}).start()
        >>> batcher.submit(np.ones((2, 4, 4, 3), np.uint8)).result()["sum"].tolist()
        [48, 48]
        >>> batcher.close()
    """

    predict: PredictFn
    max_wait_s: float = 0.005
    max_batch: int = 64
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        if self.max_wait_s < 0 or self.max_batch < 1:
            raise ValueError(f"MicroBatcher: need max_wait_s >= 0 and max_batch >= 1, got {self.max_wait_s} and {self.max_batch}")
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="deepfever-batcher", daemon=True)

    def start(self) -> "MicroBatcher":
        self._thread.start()
        return self

    def close(self) -> None:
        """Finish the jobs already queued, then stop the worker."""
        self._jobs.put(None)
        self._thread.join()

    def submit(self, crops: np.ndarray, cancelled: threading.Event | None = None) -> Future:
        """Queue crops (N, S, S, 3); the future gives ``predict``'s dict for exactly these N crops.

        A job whose ``cancelled`` event is set by the time its batch forms is dropped unpredicted
        (its client went away) and its future is cancelled.
        """
        if not self._thread.is_alive():
            raise RuntimeError("MicroBatcher.submit: the batcher is not running; call start() first")
        future: Future = Future()
        self._jobs.put(_Job(np.asarray(crops), future, cancelled))
        return future

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            self._run_batch(jobs)
            if stop:
                return

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus whatever arrives within the wait, up to ``max_batch`` crops; True when told to stop."""
        jobs, size = [first], len(first.crops)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.crops)
        return jobs, False

    def _run_batch(self, jobs: list[_Job]) -> None:
        live = []
        for job in jobs:
            if job.cancelled is not None and job.cancelled.is_set():
                job.future.cancel()
                self.stats.skipped_jobs += 1
            elif job.future.set_running_or_notify_cancel():
                live.append(job)
        if not live:
            return
        try:
            result = self.predict(np.concatenate([job.crops for job in live]))
        except Exception as error:  # every waiting request learns why, the worker lives on
            logger.exception("MicroBatcher: predict failed on a batch of %d jobs", len(live))
            for job in live:
                job.future.set_exception(error)
            return
        start = 0
        for job in live:
            stop = start + len(job.crops)
            job.future.set_result({key: value[start:stop] for key, value in result.items()})
            start = stop
        self.stats.batches += 1
        self.stats.faces += start
        self.stats.largest = max(self.stats.largest, start)
