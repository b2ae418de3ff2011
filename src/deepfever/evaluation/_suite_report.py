"""Benchmark report files: ``report.json``, ``report.md`` and ``plots/``; used by ``deepfever.evaluation.suite``."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from deepfever.io.atomic import atomic_write
from deepfever.io.figures import save_figure

REPORT_FILES = ("report.json", "report.md")


def cross_dataset_matrix(report: dict[str, Any]) -> dict[str, Any]:
    """Rows: each model with its training data; columns: the evaluation entries; cells: headline values (None unless ok)."""
    rows = []
    for model in report["models"]:
        cells, metrics = {}, {}
        for entry in report["entries"]:
            result = model["results"][entry]
            cells[entry] = result["headline"]["value"] if result["status"] == "ok" else None
            metrics[entry] = result["headline"]["metric"] if result["status"] == "ok" else result["status"]
        rows.append({"model": model["name"], "training_data": model["training_data"], "cells": cells, "metrics": metrics})
    return {"columns": list(report["entries"]), "rows": rows}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(text).stem if text.endswith(".safetensors") else text).strip("_")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure with one axis, laid out tightly when saved (matplotlib is slow to import; only plotting needs it)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="tight")
    return figure, figure.subplots()


def plot_per_class(summary: dict[str, Any], path: Path, title: str) -> None:
    """Recall and F1 per class, as grouped bars."""
    names = summary["class_names"]
    recall = [summary["per_class"][name]["recall"] for name in names]
    f1 = [summary["per_class"][name]["f1"] for name in names]
    positions = np.arange(len(names))
    figure, axis = _figure(max(5, 0.8 * len(names) + 2), 4)
    axis.bar(positions - 0.2, recall, 0.4, label="recall")
    axis.bar(positions + 0.2, f1, 0.4, label="F1")
    axis.set_xticks(positions, names, rotation=45, ha="right")
    axis.set(ylim=(0, 1), ylabel="score", title=title)
    axis.legend()
    save_figure(figure, path)


def plot_triplet_types(per_type: dict[str, Any], path: Path, title: str) -> None:
    names = list(per_type)
    figure, axis = _figure(5, 4)
    axis.bar(names, [per_type[name]["accuracy"] for name in names])
    for position, name in enumerate(names):
        axis.text(position, 0.02, f"n={per_type[name]['n']}", ha="center")
    axis.set(ylim=(0, 1), ylabel="triplet accuracy", title=title)
    save_figure(figure, path)


def _plots(model: dict[str, Any], entry: str, result: dict[str, Any], folder: Path) -> list[str]:
    """Write this result's plots; returns their paths relative to the report folder."""
    from deepfever.evaluation.ferplus import plot_confusion

    written = []
    stem = f"{_slug(model['name'])}__{_slug(entry)}"
    for protocol, summary in result.get("classification", {}).items():
        title = f"{model['name']} on {entry} ({protocol}, acc {summary['accuracy']:.3f})"
        for kind, plot in (("confusion", plot_confusion), ("per_class", plot_per_class)):
            relative = f"plots/{stem}__{_slug(protocol)}_{kind}.png"
            plot(summary, folder / relative, title)
            written.append(relative)
    if "per_type" in result:
        relative = f"plots/{stem}__triplet_types.png"
        plot_triplet_types(result["per_type"], folder / relative, f"{model['name']} on {entry}")
        written.append(relative)
    return written


def _strict(value: Any) -> Any:
    """NaN (e.g. accuracy over zero triplets of a type) -> null, so the file is standard JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def _cell(value: float | None, metric: str) -> str:
    return f"{value:.4f} ({metric})" if value is not None else metric


def _markdown(report: dict[str, Any]) -> str:
    matrix = report["matrix"]
    lines = [f"# Benchmark `{report['suite']}`", "",
             f"deepfever {report['deepfever_version']}; mirror TTA {'on' if report['flip_tta'] else 'off'}.", "",
             "## Cross-dataset matrix", "", "Rows: models and their training data; columns: evaluation data.", "",
             "| model (trained on) | " + " | ".join(matrix["columns"]) + " |",
             "|---|" + "---|" * len(matrix["columns"])]
    for row in matrix["rows"]:
        cells = [_cell(row["cells"][column], row["metrics"][column]) for column in matrix["columns"]]
        lines.append(f"| {row['model']} ({row['training_data']}) | " + " | ".join(cells) + " |")
    for model in report["models"]:
        lines += ["", f"## {model['name']}", "", f"Architecture `{model['arch']}`, trained heads: {', '.join(model['trained_heads']) or 'none'}, "
                  f"training data: {model['training_data']}."]
        for entry, result in model["results"].items():
            lines += ["", f"### {entry} ({result['task']})", ""]
            if result["status"] != "ok":
                lines.append(f"**{result['status']}**: {result['reason']}")
                continue
            lines += [f"{result['n']} samples, {result['seconds']} s.", "", "| metric | value |", "|---|---|"]
            lines += [f"| {key} | {value:.4f} |" if value is not None else f"| {key} | n/a |" for key, value in _strict(result["metrics"]).items()]
            lines += ["", *[f"- {note}" for note in result.get("notes", [])]]
            lines += ["", *[f"![{Path(plot).stem}]({plot})" for plot in result.get("plots", [])]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], folder: Path) -> None:
    """Plots first (their paths go into the report), then ``report.json`` and ``report.md``."""
    for model in report["models"]:
        for entry, result in model["results"].items():
            if result["status"] == "ok":
                result["plots"] = _plots(model, entry, result, folder)
    with atomic_write(folder / "report.json") as tmp:
        tmp.write_text(json.dumps(_strict(report), indent=2, allow_nan=False) + "\n")
    with atomic_write(folder / "report.md") as tmp:
        tmp.write_text(_markdown(report))
