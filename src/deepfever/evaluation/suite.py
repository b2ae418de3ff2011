"""Benchmark suites: one YAML lists datasets and what to measure on each; one call scores models on all.

Tasks (``task:`` of an entry):

* ``emotion``: the model's own emotion head on labelled data in our label space (AffectNet,
  RAF-DB, ...): 8- and 7-class accuracy and macro-F1; valence/arousal CCC and RMSE when the model
  has a trained ``valence_arousal`` head and the data has those labels.
* ``ferplus``: ``evaluate_ferplus`` on a FERPlus folder (majority-vote labels).
* ``fec``: Google FEC triplet accuracy, overall and per triplet type (the odd one out is the face
  outside the closest pair of expression vectors).
* ``probe``: cross-validated linear probe of the frozen vectors (CK+, JAFFE, RAF-DB, any class folder).
* ``zero_shot``: the emotion head on a dataset it never trained on, over the ``classes`` it shares with
  ours (argmax over all outputs; per-class recall and confusion matrix), e.g. CK+48's 6 classes.

An entry reads crops from a ``prepared`` cache (``deepfever data prepare``; needed for photos,
e.g. AffectNet with ``--detector box``) or from ``root`` + ``format`` for datasets whose images are
already face crops, which are resized to the model's input. Relative paths are relative to the
working directory, as in training configs. Entries whose data is absent are reported as skipped.

Example:
    >>> suite = load_suite("configs/benchmark_default.yaml")  # doctest: +SKIP
    >>> report = run_suite(suite, ["fevernet_s.ferplus"], "reports/benchmark")  # doctest: +SKIP
    >>> report["matrix"]["rows"][0]["cells"]  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from deepfever._version import __version__, source_revision
from deepfever.errors import DeepFeverError

logger = logging.getLogger(__name__)

TASKS = ("emotion", "ferplus", "fec", "probe", "zero_shot")


@dataclass(frozen=True)
class SuiteEntry:
    """One dataset and the task to run on it (see the module docstring).

    ``split`` picks one split (all pooled when None; ``ferplus`` defaults to ``valid``, ``fec`` to
    ``test``); ``options`` go to the dataset reader; ``folds`` is the probe's cross-validation;
    ``classes`` are the classes a ``zero_shot`` entry scores (empty: every labelled class present).
    """

    name: str
    task: str
    root: str | None = None
    prepared: str | None = None
    format: str | None = None
    split: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    folds: int = 10
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        where = f"suite entry {self.name!r}"
        if self.task not in TASKS:
            raise ValueError(f"{where}: unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        if self.task in ("ferplus", "fec") and self.root is None:
            raise ValueError(f"{where}: task {self.task} needs root: the dataset folder")
        if self.task in ("emotion", "probe", "zero_shot") and self.prepared is None and (self.root is None or self.format is None):
            raise ValueError(f"{where}: task {self.task} needs prepared: <cache dir>, or root: and format:")

    def data_paths(self) -> list[Path]:
        """Where this entry's data must be; any missing one skips the entry."""
        paths = [Path(self.root)] if self.root is not None else []
        if self.prepared is not None:
            paths.append(Path(self.prepared) / "manifest.json")
        return paths


@dataclass(frozen=True)
class Suite:
    """A named list of entries plus how to run the models (mirror TTA, batch size)."""

    name: str
    entries: tuple[SuiteEntry, ...]
    flip_tta: bool = True
    batch_size: int = 256
    seed: int = 0


def load_suite(path: str | Path) -> Suite:
    """Read a suite YAML: ``name``, optional ``flip_tta``/``batch_size``/``seed``, and ``datasets:`` entries."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    suite_keys = {f.name for f in fields(Suite)} - {"entries"} | {"datasets"}
    entry_keys = {f.name for f in fields(SuiteEntry)}
    unknown = set(document) - suite_keys
    if unknown:
        raise ValueError(f"load_suite: {path}: unknown keys {sorted(unknown)}; valid: {sorted(suite_keys)}")
    entries = []
    for number, item in enumerate(document.get("datasets") or [], 1):
        if not isinstance(item, dict) or set(item) - entry_keys:
            bad = sorted(set(item) - entry_keys) if isinstance(item, dict) else item
            raise ValueError(f"load_suite: {path}: dataset {number} has unknown keys {bad}; valid: {sorted(entry_keys)}")
        entries.append(SuiteEntry(**item))
    if not entries:
        raise ValueError(f"load_suite: {path} lists no datasets; add entries under datasets:")
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"load_suite: {path}: dataset names must be unique, got {names}")
    settings = {key: document[key] for key in ("flip_tta", "batch_size", "seed") if key in document}
    return Suite(name=str(document.get("name", Path(path).stem)), entries=tuple(entries), **settings)


def run_entry(model, entry: SuiteEntry, suite: Suite, device: str = "cpu") -> dict[str, Any]:
    """Score one model on one entry: ``{"status": "ok"|"skipped"|"failed", ...}``; never raises for data problems."""
    from deepfever.evaluation._suite_tasks import TASK_FUNCTIONS

    missing = [path for path in entry.data_paths() if not path.exists()]
    if missing:
        return {"status": "skipped", "task": entry.task, "reason": f"skipped: data not found at {missing[0].resolve()}"}
    started = time.perf_counter()
    try:
        result = TASK_FUNCTIONS[entry.task](model, entry, suite, device)
    except (DeepFeverError, ValueError, OSError) as error:
        logger.exception("%s failed", entry.name)
        return {"status": "failed", "task": entry.task, "reason": f"{type(error).__name__}: {error}"}
    result.update(status="ok", task=entry.task, seconds=round(time.perf_counter() - started, 2))
    logger.info("%s: %s = %.4f", entry.name, result["headline"]["metric"], result["headline"]["value"])
    return result


def run_suite(suite: Suite, models: Sequence[str | Path], output_dir: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Run every entry for every model; write ``report.json``, ``report.md`` and ``plots/`` to ``output_dir``.

    The report's ``matrix`` crosses each model's training data (rows) with the evaluation data (columns).
    """
    from deepfever.evaluation._suite_report import cross_dataset_matrix, write_report
    from deepfever.models import load_model

    if not models:
        raise ValueError("run_suite: give at least one model (packaged name or .safetensors path)")
    report: dict[str, Any] = {"suite": suite.name, "deepfever_version": __version__, "deepfever_revision": source_revision(),
                              "flip_tta": suite.flip_tta, "entries": [entry.name for entry in suite.entries], "models": []}
    for name in models:
        model = load_model(name, device)
        info = getattr(model, "info", {})
        results = {}
        for entry in suite.entries:
            logger.info("%s on %s (%s)", name, entry.name, entry.task)
            results[entry.name] = run_entry(model, entry, suite, device)
        report["models"].append({
            "name": str(name),
            "arch": model.config.arch,
            "trained_heads": list(model.config.trained_heads),
            "training_data": str(info.get("training", {}).get("data", "unknown")),
            "results": results,
        })
    report["matrix"] = cross_dataset_matrix(report)
    write_report(report, Path(output_dir))
    return report
