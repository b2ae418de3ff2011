"""Generality of a model in one table (issue 8): in-domain accuracy, vector quality and transfer.

Per model, and per output prior where the model can give both:
  * FER2013Valid 8-class accuracy, flip TTA (the split no choice was made on for models selected
    on a held-out slice or the last epoch; the default fevernet_s.ferplus was selected on it);
  * FER2013Valid vote-triplet accuracy (10,000 triplets, seed 0, margin 0.2, single crop);
  * CK+48 zero-shot accuracy (927 frames of the 6 shared classes, argmax over all 8, single crop),
    with CK+48's own crops resized (``none``) and detected + aligned (``mtcnn``);
  * CK+48 linear probe of the vectors, 10 folds by subject (crops resized).
CK+48 is used for model development, so it is no longer an unseen dataset.
``--assume-prior`` gives models that record no training prior FER+'s (mean soft target of
FER2013Train), so their uniform-prior numbers (post-hoc logit adjustment) can be measured too.
Targets for the new default: CK+ zero-shot >= 80 %, probe >= 95 %, FER2013Valid >= 87 %, triplets >= 85 %.
``--setting NAME=RUN[,RUN...]`` names the runs (seeds) of one training setting: they are measured like
``--models`` and summarised as mean and spread (half the range) per prior, the way the issue asks
settings to be compared (transfer moves by several points between seeds of one config).
``--average NAME=MODEL,MODEL`` measures the uniform weight average of models fine-tuned from one start
(a "model soup", Wortsman et al., ICML 2022), whose averaged weights are reported to transfer better than
each ingredient; its batch-norm statistics are averaged too.
Run: .venv/bin/python benchmarks/generality.py --models fevernet_s.ferplus runs/x/model.safetensors [--assume-prior]
     [--setting A=runs/a0/m.safetensors,runs/a1/m.safetensors] [--average soup=fevernet_s.ferplus,fevernet_s.ferplus_recipe2]
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from _common import SHARED, save_result
from deepfever.data.arrays import load_crop_array
from deepfever.data.splits import load_split
from deepfever.evaluation.ferplus import evaluate_ferplus
from deepfever.models.predict import predict_arrays
from deepfever.evaluation.probe import evaluate_probe
from deepfever.evaluation.transfer import ckplus_zero_shot
from deepfever.evaluation.triplets import ferplus_vote_triplets, triplet_accuracy
from deepfever.models import ExpressionModel, load_model
from deepfever.models.prior import available_priors
from deepfever.training.data import class_prior

TARGETS = {"ckplus_zero_shot": 0.80, "ckplus_probe": 0.95, "ferplus_valid": 0.87, "vote_triplets": 0.85}
SUMMARISED = ("ferplus_valid", "ckplus_zero_shot", "ckplus_zero_shot_mtcnn", "ckplus_probe", "vote_triplets")


def model_label(name: str) -> str:
    return Path(str(name)).stem if str(name).endswith(".safetensors") else str(name)


def parse_setting(text: str) -> tuple[str, list[str]]:
    name, _, runs = text.partition("=")
    if not name or not runs:
        raise argparse.ArgumentTypeError(f"--setting wants NAME=RUN[,RUN...], got {text!r}")
    return name, runs.split(",")


def average_weights(names: list[str]) -> ExpressionModel:
    """The uniform average of the weights (and batch-norm statistics) of models of one architecture and head."""
    models = [load_model(name) for name in names]
    first = models[0].config
    for name, model in zip(names, models):
        if (model.config.arch, model.config.logit_adjustment, model.config.class_names) != (first.arch, first.logit_adjustment, first.class_names):
            raise SystemExit(f"--average: {name} differs from {names[0]} in architecture, classes or logit adjustment")
    states = [model.state_dict() for model in models]
    averaged = {key: torch.stack([state[key].float() for state in states]).mean(0).to(value.dtype) if value.is_floating_point() else value
                for key, value in states[0].items()}
    models[0].load_state_dict(averaged)
    return models[0]


def summarise_settings(settings: list[tuple[str, list[str]]], rows: list[dict]) -> list[dict]:
    """Mean and spread (half the range) of each metric over the runs of every setting, per prior."""
    summaries = []
    for name, runs in settings:
        labels = {model_label(run) for run in runs}
        for prior in sorted({row["prior"] for row in rows if row["model"] in labels}):
            chosen = [row for row in rows if row["model"] in labels and row["prior"] == prior]
            summary = {"setting": name, "prior": prior, "runs": [row["model"] for row in chosen]}
            for key in SUMMARISED:
                values = np.array([row[key]["mean"] if isinstance(row[key], dict) else row[key] for row in chosen])
                summary[key] = {"mean": float(values.mean()), "spread": float(np.ptp(values) / 2), "values": values.tolist()}
            summaries.append(summary)
            print(f"{name:<34} prior {prior:<8} " + "  ".join(
                f"{key} {summary[key]['mean']:.4f} ± {summary[key]['spread']:.4f}" for key in SUMMARISED))
    return summaries


def ferplus_train_prior(root: str) -> tuple[float, ...]:
    train = load_split("ferplus", root, {"keep_ambiguous": True}, "train", "none", "", 48, 1)
    return tuple(float(p) for p in class_prior(train.soft))


def ckplus_probe(model, root: str) -> dict:
    from deepfever.data.formats import read_dataset

    samples = read_dataset("ckplus48", root)["all"].samples
    crops = load_crop_array(samples, model.config.input_size, model.config.in_chans)
    labels = np.array([sample.label for sample in samples])
    present = sorted(set(labels))
    features = predict_arrays(model, crops)["embedding"]
    report = evaluate_probe(features, np.searchsorted(present, labels), [str(p) for p in present],
                            [sample.subject for sample in samples], n_splits=10, shots=())
    return {"mean": report["accuracy"]["mean"], "std": report["accuracy"]["std"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], help="packaged names or .safetensors paths")
    parser.add_argument("--setting", action="append", type=parse_setting, default=[],
                        help="NAME=RUN[,RUN...]: runs (seeds) of one setting, summarised as mean ± spread")
    parser.add_argument("--average", action="append", type=parse_setting, default=[],
                        help="NAME=MODEL,MODEL: measure the weight average of these models as NAME")
    parser.add_argument("--ferplus", default=str(SHARED / "data" / "ferplus"))
    parser.add_argument("--ckplus", default=str(SHARED / "data" / "ckplus48"))
    parser.add_argument("--assume-prior", action="store_true", help="give prior-less models FER+'s training prior")
    parser.add_argument("--name", default="generality", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    models = list(dict.fromkeys([*args.models, *(run for _, runs in args.setting for run in runs)]))
    if not models and not args.average:
        parser.error("give --models, --setting or --average")
    samples, triplets = ferplus_vote_triplets(args.ferplus, "valid", 10_000, 0, 0.2)
    assumed = ferplus_train_prior(args.ferplus) if args.assume_prior else None
    rows = []
    candidates = [(name, lambda name=name: load_model(name)) for name in models]
    candidates += [(name, lambda runs=runs: average_weights(runs)) for name, runs in args.average]
    for name, build in candidates:
        model = build()
        if model.config.class_prior is None and assumed is not None:
            model.config = replace(model.config, class_prior=assumed)
        crops = load_crop_array(samples, model.config.input_size, model.config.in_chans)
        vectors = predict_arrays(model, crops)["embedding"]
        shared = {"vote_triplets": triplet_accuracy(vectors, triplets)["accuracy"], "ckplus_probe": ckplus_probe(model, args.ckplus)}
        priors = available_priors(model.config)
        for prior in priors:
            zero_shot = {detector: ckplus_zero_shot(model, args.ckplus, detector, prior=prior) for detector in ("none", "mtcnn")}
            row = {
                "model": model_label(name),
                "prior": prior, "recorded_prior": prior == model.config.output_prior,
                "ferplus_valid": evaluate_ferplus(model, args.ferplus, "valid", flip_tta=True, prior=prior)["accuracy"],
                "ckplus_zero_shot": zero_shot["none"]["accuracy"],
                "ckplus_zero_shot_recall": zero_shot["none"]["per_class_recall"],
                "ckplus_zero_shot_mtcnn": zero_shot["mtcnn"]["accuracy"], "ckplus_mtcnn_frames": zero_shot["mtcnn"]["n"],
                **shared,
            }
            rows.append(row)
            print(f"{row['model']:<34} prior {prior:<8} FER+ valid {row['ferplus_valid']:.4f}  CK+ zero-shot "
                  f"{row['ckplus_zero_shot']:.4f} (aligned {row['ckplus_zero_shot_mtcnn']:.4f})  probe "
                  f"{shared['ckplus_probe']['mean']:.4f} ± {shared['ckplus_probe']['std']:.4f}  triplets {shared['vote_triplets']:.4f}")
    save_result(args.name, {"doc": __doc__.split("\n\n")[1], "targets": TARGETS, "assumed_prior": assumed, "rows": rows,
                            "settings": summarise_settings(args.setting, rows)})


if __name__ == "__main__":
    main()
