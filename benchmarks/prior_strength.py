"""Output prior strength: the tau a packaged model reports by default, chosen by a stated rule (issue 22).

Rule: on the held-out slice of FER2013Train (``training.data.load_primary`` with ``select_on=holdout``,
``holdout=0.1``, ``holdout_seed=0``: the rows a held-out training run keeps out, those with a FER+ majority
label), single crop as ``Extractor`` runs by default, take the strength tau on the grid 0, step, ..., 1 that
maximises the mean of accuracy and macro recall (over the classes present); a tie goes to the smaller tau.
Probabilities are ``p ∝ p_train · prior^(−tau)`` (``deepfever.models.prior``). FER2013Valid and CK+48 play
no part in the choice; they are then reported once for the chosen tau beside tau = 0 and 1: FER2013Valid
8-class accuracy with flip TTA (as ``generality.py``), CK+48 zero-shot on its 6 shared classes, crops resized,
single crop (as ``ckplus_zero_shot.py``).
Caveat: the packaged models trained on the whole of FER2013Train, so this slice was in their training data.
How firm the choice is: the rule applied to bootstrap resamples of the slice (seed 0), chosen tau's quantiles.
Run: .venv/bin/python benchmarks/prior_strength.py [--models fevernet_s.ferplus ...] [--step 0.05]
Writes benchmarks/results/prior_strength.json and benchmarks/results/prior_strength.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import RESULTS, SHARED, save_result
from deepfever.evaluation.ferplus import evaluate_ferplus
from deepfever.evaluation.metrics import classification_summary
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.transfer import ckplus_zero_shot
from deepfever.models import list_pretrained, load_model
from deepfever.models.prior import native_prior, prior_offset
from deepfever.training.config import DataSection
from deepfever.training.data import load_primary


def holdout_slice(size: int, in_chans: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and majority labels of FER2013Train's held-out slice, as training draws it."""
    data = DataSection(root=str(SHARED / "data" / "ferplus"), select_on="holdout", holdout=0.1, holdout_seed=0)
    _, held_out = load_primary(data, size, in_chans)
    return held_out.images, held_out.labels


def strength_predictions(model, images: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(strengths, images) single-crop predicted classes.

    The model runs once: a strength only adds ``prior_offset`` to the raw logits, and the log of the
    native-prior probabilities differs from those logits by a per-image constant, so the argmax is the same.
    """
    log_native = np.log(np.maximum(predict_arrays(model, images, prior=native_prior(model.config))["probabilities"], 1e-30))
    offsets = [prior_offset(model.config, float(tau)) for tau in grid]
    return np.stack([(log_native + (offset if offset is not None else 0.0)).argmax(1) for offset in offsets])


def strength_curve(predictions: np.ndarray, labels: np.ndarray, grid: np.ndarray, class_names) -> list[dict]:
    """Accuracy, macro recall (over the classes present) and per-class recall at each strength."""
    points = []
    for tau, predicted in zip(grid, predictions):
        summary = classification_summary(labels, predicted, class_names)
        present = [name for name, values in summary["per_class"].items() if values["support"] > 0]
        recall = {name: summary["per_class"][name]["recall"] for name in present}
        macro_recall = float(np.mean(list(recall.values())))
        points.append({"tau": round(float(tau), 4), "accuracy": summary["accuracy"], "macro_recall": macro_recall,
                       "score": (summary["accuracy"] + macro_recall) / 2, "per_class_recall": recall})
    return points


def bootstrap_choices(predictions: np.ndarray, labels: np.ndarray, grid: np.ndarray, resamples: int, seed: int = 0) -> dict:
    """The rule applied to ``resamples`` bootstrap resamples of the images: how much the chosen tau moves."""
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels)) for _ in range(resamples)])
    correct = (predictions == labels).astype(np.float64)  # (strengths, images)
    accuracy = counts @ correct.T / len(labels)  # (resamples, strengths)
    recalls = []
    for label in np.unique(labels):
        member = labels == label
        support = counts @ member
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((counts @ (correct * member).T) / support[:, None])  # NaN where a resample lacks the class
    score = (accuracy + np.nanmean(np.stack(recalls), axis=0)) / 2
    chosen = grid[score.argmax(1)]  # argmax takes the first maximum: the smaller tau on a tie
    values, times = np.unique(chosen, return_counts=True)
    return {"resamples": resamples, "seed": seed, "quantiles": {f"{q:g}": float(np.quantile(chosen, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "share": {f"{value:g}": round(float(count / resamples), 4) for value, count in zip(values, times)}}


def direct_accuracy(model, images: np.ndarray, labels: np.ndarray, tau: float) -> float:
    """Accuracy at ``tau`` through ``predict_arrays(prior=tau)`` itself: checks the one-pass curve."""
    return float((predict_arrays(model, images, prior=tau)["probabilities"].argmax(1) == labels).mean())


def choose(points: list[dict]) -> float:
    """The rule: highest mean of accuracy and macro recall, the smaller tau on a tie."""
    return max(points, key=lambda point: (round(point["score"], 12), -point["tau"]))["tau"]


def plot_curves(curves: dict[str, dict], path: Path) -> None:
    """Accuracy, macro recall and per-class recall against tau, one column per model, the chosen tau marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(curves), 7.5), layout="constrained")
    axes = figure.subplots(2, len(curves), squeeze=False, sharex=True)
    for column, (name, curve) in enumerate(curves.items()):
        taus = [point["tau"] for point in curve["points"]]
        top, bottom = axes[0][column], axes[1][column]
        for key, label in (("accuracy", "accuracy"), ("macro_recall", "macro recall"), ("score", "mean (the rule)")):
            top.plot(taus, [point[key] for point in curve["points"]], marker=".", label=label)
        for class_name in curve["points"][0]["per_class_recall"]:
            bottom.plot(taus, [point["per_class_recall"][class_name] for point in curve["points"]], label=class_name)
        for axis in (top, bottom):
            axis.axvline(curve["chosen_tau"], color="grey", linestyle="--", linewidth=1)
            axis.grid(alpha=0.3)
        top.set(title=f"{name}: chosen tau = {curve['chosen_tau']:g}", ylabel="held-out FER2013Train")
        bottom.set(xlabel="prior strength tau (0 = train, 1 = uniform)", ylabel="recall per class", ylim=(0, 1))
        top.legend(fontsize=8)
        bottom.legend(fontsize=7, ncol=2)
    from deepfever.io.atomic import atomic_write

    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None,
                        help="packaged model names or .safetensors paths (default: every packaged model that records its training prior)")
    parser.add_argument("--step", type=float, default=0.05, help="grid step of tau in (0, 1]")
    parser.add_argument("--ckplus-root", default=str(SHARED / "data" / "ckplus48"))
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the held-out slice to see how firm the choice is")
    parser.add_argument("--name", default="prior_strength", help="results file stem (JSON and PNG)")
    args = parser.parse_args()
    names = args.models or [name for name in list_pretrained() if load_model(name).config.class_prior is not None]
    grid = np.round(np.arange(0.0, 1.0 + args.step / 2, args.step), 6)
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    curves, checks = {}, {}
    for name in names:
        model = load_model(name)
        key = (model.config.input_size, model.config.in_chans)
        if key not in cache:
            cache[key] = holdout_slice(*key)
        images, labels = cache[key]
        predictions = strength_predictions(model, images, grid)
        points = strength_curve(predictions, labels, grid, model.config.class_names)
        chosen = choose(points)
        direct = direct_accuracy(model, images, labels, chosen)
        curve_accuracy = next(point["accuracy"] for point in points if point["tau"] == chosen)
        if abs(direct - curve_accuracy) > 1e-3:
            raise SystemExit(f"{name}: the one-pass curve gives accuracy {curve_accuracy:.4f} at tau {chosen:g}, predict_arrays {direct:.4f}")
        curves[name] = {"n": int(len(labels)), "chosen_tau": chosen, "direct_accuracy_at_chosen": direct,
                        "bootstrap": bootstrap_choices(predictions, labels, grid, args.bootstrap), "points": points}
        print(f"  bootstrap of the choice: {curves[name]['bootstrap']['quantiles']}")
        print(f"{name}: chosen tau {chosen:g} on {len(labels)} held-out images; "
              + ", ".join(f"tau {p['tau']:g}: acc {p['accuracy']:.4f} macro recall {p['macro_recall']:.4f}" for p in points if p["tau"] in (0, chosen, 1)))
        checks[name] = {}
        for tau in sorted({0.0, chosen, 1.0}):
            valid = evaluate_ferplus(model, str(SHARED / "data" / "ferplus"), "valid", flip_tta=True, prior=tau)
            ckplus = ckplus_zero_shot(model, args.ckplus_root, "none", prior=tau)
            checks[name][f"{tau:g}"] = {
                "ferplus_valid_accuracy": valid["accuracy"], "ferplus_valid_n": valid["n"],
                "ferplus_valid_macro_recall": float(np.mean([c["recall"] for c in valid["per_class"].values() if c["support"] > 0])),
                "ckplus_zero_shot_accuracy": ckplus["accuracy"], "ckplus_n": ckplus["n"],
                "ckplus_per_class_recall": ckplus["per_class_recall"],
            }
            print(f"  tau {tau:g}: FER2013Valid {valid['accuracy']:.4f} (n {valid['n']}), CK+48 zero-shot {ckplus['accuracy']:.4f} (n {ckplus['n']})")
    figure_path = RESULTS / f"{args.name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, figure_path)
    save_result(args.name, {"protocol": " ".join(__doc__.split("\n\n")[1].split()), "grid_step": args.step,
                            "curves": curves, "checks_for_chosen_tau": checks, "figure": str(figure_path.relative_to(RESULTS.parents[1]))})


if __name__ == "__main__":
    main()
