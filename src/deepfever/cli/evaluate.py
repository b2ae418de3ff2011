"""``deepfever evaluate ferplus``: accuracy, macro-F1 and a confusion matrix on a FER+ split."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="score a model on a labelled benchmark")
    parser.add_argument("dataset", choices=("ferplus",), help="benchmark to run")
    parser.add_argument("--root", required=True, help="FERPlus folder holding FER2013Train/Valid/Test")
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    parser.add_argument("--model", default=None, help="packaged model name or .safetensors path (default: bundled)")
    parser.add_argument("--no-flip-tta", action="store_true", help="score single crops instead of crop + mirror")
    parser.add_argument("-o", "--output-dir", default=None, help="write metrics JSON and confusion PNG here")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deepfever.evaluation.ferplus import evaluate_ferplus, plot_confusion
    from deepfever.io.atomic import atomic_write, refuse_overwrite
    from deepfever.models import DEFAULT_MODEL, load_model

    name = args.model or DEFAULT_MODEL
    outputs = []
    if args.output_dir:
        folder = Path(args.output_dir)
        outputs = [folder / f"ferplus_{args.split}.json", folder / f"ferplus_{args.split}_confusion.png"]
        for path in outputs:
            refuse_overwrite(path, args.overwrite)
    summary = evaluate_ferplus(load_model(name), args.root, args.split, flip_tta=not args.no_flip_tta)
    summary["model"] = str(name)
    print(f"FER+ {args.split}: accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f} on {summary['n']} images")
    if outputs:
        with atomic_write(outputs[0]) as tmp:
            tmp.write_text(json.dumps(summary, indent=2))
        plot_confusion(summary, outputs[1], f"{name} on FER+ {args.split} (acc {summary['accuracy']:.3f})")
        status(args, f"wrote {outputs[0]} and {outputs[1]}")
    else:
        print(json.dumps({k: summary[k] for k in ("n", "accuracy", "macro_f1")}, indent=2))
    return 0
