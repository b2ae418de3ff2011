"""The probe's learning-curve figure (the confusion matrix reuses ``ferplus.plot_confusion``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from deepfever.io.figures import save_figure


def plot_learning_curve(points: Sequence[dict[str, Any]], n_classes: int, path: str | Path, title: str) -> None:
    """Accuracy (mean ± std) against examples per class, written atomically as PNG.

    ``all`` sits at the mean training-fold size divided by ``n_classes``, so the x axis stays a count.
    """
    from matplotlib.figure import Figure  # slow to import; only plotting needs it

    x = [p["train_size_mean"] / n_classes if p["per_class"] == "all" else p["per_class"] for p in points]
    mean = [p["accuracy"]["mean"] for p in points]
    std = [p["accuracy"]["std"] for p in points]
    figure = Figure(figsize=(6, 4), layout="tight")
    axis = figure.subplots()
    axis.errorbar(x, mean, yerr=std, marker="o", capsize=3)
    for xi, yi, point in zip(x, mean, points):
        axis.annotate(f"{yi:.3f}", (xi, yi), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    axis.set_xscale("log")
    axis.set_xticks(x, [str(p["per_class"]) for p in points])
    axis.minorticks_off()
    axis.set(xlabel="training examples per class", ylabel="test accuracy", ylim=(0, 1.05), title=title)
    axis.grid(alpha=0.3)
    save_figure(figure, path)
