"""``deepfever compare``, ``odd-one-out`` and ``identity-check``: judgements made from expression vectors."""
from __future__ import annotations

import argparse
import json
import logging

from deepfever.cli._common import add_extractor_arguments, build_extractor, status

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser("compare", help="how similar the expressions of the faces in two images are")
    compare.add_argument("a", help="first image")
    compare.add_argument("b", help="second image")
    compare.add_argument("--face", nargs=2, type=int, default=(0, 0), metavar=("FACE_A", "FACE_B"),
                         help="which face of each image (0 = leftmost; default 0 0)")
    compare.add_argument("--reference", help="folder of face images, or a FER+ root (its FER2013Valid faces), whose random "
                                             "pairs give the distance a percentile; embeddings are cached per model")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    add_extractor_arguments(compare)
    compare.set_defaults(handler=run_compare)

    odd = subparsers.add_parser("odd-one-out", help="which of three faces has the expression least like the other two")
    odd.add_argument("images", nargs=3, help="three images")
    odd.add_argument("--face", nargs=3, type=int, default=(0, 0, 0), metavar="FACE", help="which face of each image (default 0 0 0)")
    odd.add_argument("--temperature", type=float, default=None, help="softmax temperature over pair distances (default 0.05)")
    odd.add_argument("--json", action="store_true", help="print the result as JSON")
    add_extractor_arguments(odd)
    odd.set_defaults(handler=run_odd_one_out)

    identity = subparsers.add_parser("identity-check", help="how much identity leaks into the vectors of a table")
    identity.add_argument("table", help="table from 'deepfever extract'")
    identity.add_argument("--identities", required=True, help="CSV with columns path,identity, or path,face,identity for images with several faces "
                                                             "(other columns may hold labels)")
    identity.add_argument("--label-column", help="expression label column (table or CSV) to compare against")
    identity.add_argument("--source-column", help="column grouping near-duplicate faces for the identity probe (e.g. a video)")
    identity.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    identity.add_argument("-o", "--output", help="write the report as JSON here")
    identity.add_argument("--overwrite", action="store_true", help="replace an existing report")
    identity.set_defaults(handler=run_identity_check)


def run_compare(args: argparse.Namespace) -> int:
    from deepfever.applications.compare import compare_faces, load_reference

    extractor = build_extractor(args).load()
    reference = load_reference(extractor, args.reference) if args.reference else None
    result = compare_faces(extractor, args.a, args.b, args.face[0], args.face[1], reference)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['a']} (face {result['face_a']}, {result['emotion_a']}) vs {result['b']} (face {result['face_b']}, {result['emotion_b']})")
    print(f"cosine similarity {result['cosine_similarity']:.3f}, distance {result['cosine_distance']:.3f}")
    print(result["interpretation"] or "no reference set: pass --reference DIR (face images or a FER+ root) for a percentile")
    return 0


def run_odd_one_out(args: argparse.Namespace) -> int:
    from deepfever.applications.compare import ODD_ONE_OUT_TEMPERATURE, odd_one_out

    extractor = build_extractor(args).load()
    temperature = ODD_ONE_OUT_TEMPERATURE if args.temperature is None else args.temperature
    result = odd_one_out(extractor, *args.images, faces=tuple(args.face), temperature=temperature)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for index, (path, emotion, p) in enumerate(zip(result["inputs"], result["emotions"], result["probabilities"])):
        marker = "->" if index == result["odd_one_out"] else "  "
        print(f"{marker} {index} {path} ({emotion}): p(odd) {p:.3f}")
    distances = ", ".join(f"{pair} {value:.3f}" for pair, value in result["pair_distances"].items())
    print(f"odd one out: {result['odd_path']} (confidence {result['confidence']:.2f}; pair distances {distances}; "
          f"temperature {temperature}, uncalibrated)")
    print("confidence: the softmax over the three pair distances; about 0.33 means no clear odd one, near 1 one face is far "
          "from a close pair")
    return 0


def run_identity_check(args: argparse.Namespace) -> int:
    import numpy as np

    from deepfever.evaluation.identity import attach_identities, format_report, identity_leakage
    from deepfever.io.atomic import atomic_write, refuse_overwrite
    from deepfever.io.tables import read_table

    if args.output:
        refuse_overwrite(args.output, args.overwrite)
    table = attach_identities(read_table(args.table), args.identities)
    for column in (args.label_column, args.source_column):
        if column and column not in table:
            raise ValueError(f"identity-check: no column {column!r} in the table or CSV; columns: {', '.join(map(str, table.columns))}")
    if args.label_column == "emotion":
        logger.warning("identity-check: 'emotion' is the model's own prediction, not a ground-truth label")
    report = identity_leakage(
        np.stack(table["embedding"].to_list()), table["identity"].to_numpy(),
        table[args.label_column].to_numpy() if args.label_column else None,
        table[args.source_column].to_numpy() if args.source_column else None, folds=args.folds,
    )
    report.update(table=str(args.table), identities_csv=str(args.identities), label_column=args.label_column)
    print(format_report(report))
    if args.output:
        with atomic_write(args.output) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        status(args, f"wrote {args.output}")
    return 0
