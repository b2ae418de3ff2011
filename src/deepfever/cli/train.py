"""``deepfever train``: run the training loop from a YAML config plus ``key=value`` overrides."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model from a YAML config")
    parser.add_argument("--config", required=True, help="YAML file, e.g. configs/ferplus.yaml")
    parser.add_argument("overrides", nargs="*", help="key.subkey=value overrides, e.g. epochs=3 optim.lr=0.05")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from checkpoints/last")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in output_dir")
    parser.add_argument("--stop-after-epochs", type=int, default=0, help="end this call after N epochs (resume later)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from deepfever.config import load_config
    from deepfever.training.config import TrainConfig
    from deepfever.training.loop import train

    if args.stop_after_epochs < 0:
        raise ValueError(f"--stop-after-epochs must be 0 (run to the end) or more, got {args.stop_after_epochs}")
    config = load_config(TrainConfig, args.config, args.overrides)
    result = train(config, resume=args.resume, overwrite=args.overwrite, stop_after_epochs=args.stop_after_epochs)
    print(json.dumps(result, indent=2))
    return 0
