"""``deepfever export onnx``: a model as an ONNX file (fp32, or int8 calibrated on face crops) for ONNX Runtime."""
from __future__ import annotations

import argparse

from deepfever import defaults
from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="write a model in another format (ONNX)")
    formats = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="ONNX with dynamic batch; the model's config and fingerprint in its metadata")
    onnx.add_argument("model", help="packaged model name or .safetensors path")
    onnx.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    onnx.add_argument("--int8", action="store_true",
                      help="statically quantise to int8 (QDQ), calibrated on --calibration faces: the fast CPU path")
    onnx.add_argument("--calibration", nargs="+", metavar="IMAGES",
                      help="photos of faces (files, folders, globs) to measure activation ranges on; needed with --int8")
    onnx.add_argument("--calibration-detector", default=defaults.DETECTOR, choices=("yunet", "mtcnn", "none"),
                      help="detector for --calibration images ('none' for folders of aligned crops)")
    onnx.add_argument("--calibration-count", type=int, default=512, help="faces used for calibration (default 512)")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    onnx.set_defaults(handler=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from deepfever.api import Extractor
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.models.onnx_export import INT8_SUFFIX, export_onnx, require_onnx

    try:
        require_onnx("deepfever export onnx")
    except ImportError as error:
        raise ValueError(str(error)) from error  # the CLI reports ValueErrors as one line
    if args.int8 != bool(args.calibration):
        raise ValueError("export onnx: --int8 and --calibration IMAGES go together (int8 ranges are measured on real faces)")
    if not args.output.endswith(".onnx"):
        raise ValueError(f"export onnx: the output must end in .onnx, got {args.output!r}")
    refuse_overwrite(args.output, args.overwrite)
    extractor = Extractor(model=args.model, device="cpu", backend="torch").load()
    crops = None
    if args.int8:
        crops = extractor.engine_.sample_crops(args.calibration, args.calibration_detector, args.calibration_count)
    path = export_onnx(extractor.model_, extractor.fingerprint_, args.output, calibration=crops)
    detail = f"int8, calibrated on {len(crops)} faces" if crops is not None else "fp32"
    model_id = extractor.fingerprint_["model_id"] + (INT8_SUFFIX if crops is not None else "")  # the id the file records
    status(args, f"wrote {path} ({detail}; model {model_id})")
    return 0
