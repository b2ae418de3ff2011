"""``deepfever probe``: linear probes of frozen vectors on a labelled dataset, and the classifiers they make.

``evaluate`` cross-validates a probe (by subject when the data names people), ``fit`` also fits the
final classifier on every example and saves it, ``predict`` applies a saved classifier to new images.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from deepfever.cli._common import add_extractor_arguments, build_extractor, progress_disabled, status
from deepfever.defaults import DETECTOR as DEFAULT_DETECTOR

logger = logging.getLogger(__name__)

REPORT_FILES = {"report": "probe.json", "confusion": "confusion_matrix.png", "curve": "learning_curve.png",
                "predictions": "predictions.csv", "failures": "failures.csv"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("probe", help="linear probe of frozen vectors on a labelled dataset; fit and apply classifiers")
    actions = parser.add_subparsers(dest="probe_action", metavar="ACTION", required=True)
    evaluate = actions.add_parser("evaluate", help="cross-validated accuracy, macro-F1, confusion matrix and learning curve")
    _add_data_arguments(evaluate)
    evaluate.add_argument("-o", "--output-dir", help=f"write {', '.join(REPORT_FILES.values())} here")
    evaluate.set_defaults(handler=run_evaluate)
    fit = actions.add_parser("fit", help="evaluate, then fit a classifier on all examples and save it")
    _add_data_arguments(fit)
    fit.add_argument("-o", "--output", required=True, help="classifier path: writes OUT.json and OUT.safetensors")
    fit.add_argument("--report-dir", help="also write the full evaluation report here (as `evaluate -o`)")
    fit.set_defaults(handler=run_fit)
    predict = actions.add_parser("predict", help="apply a saved classifier to every face in images or folders")
    predict.add_argument("classifier", help="classifier written by `probe fit` (OUT, OUT.json or OUT.safetensors)")
    predict.add_argument("inputs", nargs="+", help="image files, folders (searched recursively) or globs")
    predict.add_argument("-o", "--output", required=True, help="OUT.csv, OUT.parquet, OUT.jsonl or OUT.npz")
    add_extractor_arguments(predict)
    predict.set_defaults(model=None, detector=None, handler=run_predict)  # None: as recorded in the classifier
    predict.epilog = (f"Faces are detected with the detector the classifier was fitted with (recorded in it), or {DEFAULT_DETECTOR} when "
                      "it was fitted on ready crops (detector none); pass --detector none when the inputs are face crops themselves.")
    predict.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="?", help="labelled data: a <class>/<image> folder, a path,label[,subject] CSV, or the --format root")
    parser.add_argument("--root", help="the same as DATA (for --format datasets)")
    parser.add_argument("--format", default="auto", help="auto (CSV file or class folders), folder, csv, or a dataset format such as ckplus48")
    add_extractor_arguments(parser)
    # None: resolved in _embed_and_evaluate, from what the data is (dataset formats ship face crops).
    parser.set_defaults(detector=None)
    parser.add_argument("--classifier", default="logistic", help="logistic (default) or mlp (one hidden layer)")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds (by subject when subjects are known)")
    parser.add_argument("--learning-curve", type=_parse_shots, default="1,5,10,20,all", metavar="SHOTS",
                        help="examples per class to train on, e.g. 1,5,10,20,all; 'none' skips the curve")
    parser.add_argument("--repeats", type=int, default=5, help="random draws per learning-curve point (fixed seeds)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and of the learning-curve draws")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _parse_shots(text: str) -> tuple[int | None, ...]:
    if text.strip().lower() in ("none", ""):
        return ()
    shots = []
    for item in text.split(","):
        item = item.strip().lower()
        if item != "all" and not (item.isdigit() and int(item) > 0):
            raise argparse.ArgumentTypeError(f"expected positive counts or 'all' separated by commas (e.g. 1,5,10,20,all) or 'none', got {text!r}")
        shots.append(None if item == "all" else int(item))
    return tuple(shots)


def run_evaluate(args: argparse.Namespace) -> int:
    paths = _report_paths(args.output_dir, args) if args.output_dir else {}
    vectors, report = _embed_and_evaluate(args)
    if paths:
        _write_report(report, vectors, paths)
        status(args, f"wrote {', '.join(str(p) for p in paths.values() if p.exists())}")
    else:
        print(json.dumps({key: report[key] for key in ("accuracy", "macro_f1")}, indent=2))
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from deepfever.evaluation.classifier_io import SavedClassifier, classifier_paths, save_classifier
    from deepfever.evaluation.probe import fit_classifier
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.io.failures import failures_path_for, write_failures

    document_path, weights_path = classifier_paths(args.output)
    failures_path = failures_path_for(document_path.with_suffix(""))  # clf.failures.csv beside clf.json and clf.safetensors
    for target in (document_path, weights_path, failures_path):
        refuse_overwrite(target, args.overwrite)
    paths = _report_paths(args.report_dir, args) if args.report_dir else {}
    vectors, report = _embed_and_evaluate(args)
    pipeline = fit_classifier(vectors.features, vectors.labels, args.classifier, args.seed)
    info = {key: report[key] for key in ("extractor", "data", "created")}
    info["cross_validation"] = {key: report[key] for key in ("protocol", "accuracy", "macro_f1") if key in report}
    info["cross_validation"]["learning_curve"] = [
        {"per_class": p["per_class"], "accuracy": p["accuracy"]["mean"]} for p in report.get("learning_curve", {}).get("points", [])]
    info["sklearn_version"] = _sklearn_version()
    saved = save_classifier(SavedClassifier.from_pipeline(pipeline, vectors.class_names, info), args.output, args.overwrite)
    if vectors.failures:
        write_failures(vectors.failures, failures_path)
    if paths:
        _write_report(report, vectors, paths)
    status(args, f"wrote {saved} and {weights_path}" + (f" ({failures_path})" if vectors.failures else ""))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepfever.cli._common import write_outputs
    from deepfever.evaluation._probe_data import warn_unless_crops
    from deepfever.io.failures import failures_path_for
    from deepfever.evaluation.classifier_io import detector_for_photos, load_classifier
    from deepfever.io.atomic import refuse_overwrite
    from deepfever.io.inputs import expand_inputs
    from deepfever.io.tables import check_table_path
    from deepfever.pipeline import ExtractionReport

    classifier = load_classifier(args.classifier)
    output = check_table_path(args.output, args.overwrite)
    refuse_overwrite(failures_path_for(output), args.overwrite)
    recorded = classifier.info.get("extractor", {})
    args.model = args.model or recorded.get("model")
    args.detector = detector_for_photos(args.detector, recorded.get("detector"), DEFAULT_DETECTOR)
    files = expand_inputs(args.inputs)
    extractor = build_extractor(args).load()
    classifier.check_fingerprint(extractor.fingerprint_)  # before any image is read
    mismatch = classifier.face_stage_mismatch({**extractor.fingerprint_, "detector": args.detector})
    if mismatch:
        logger.warning("probe predict: %s", mismatch)
    with tqdm(total=len(files), unit="file", file=sys.stderr, disable=progress_disabled(args)) as bar:
        frame = extractor.extract(files, progress=bar.update)
    warn_unless_crops(frame, args.detector, extractor.fingerprint_["crop_size"])
    report = ExtractionReport.of_table(frame)
    write_outputs(_prediction_table(frame, classifier), report, output)
    status(args, f"deepfever probe predict: {report.summary()}", stderr=True)
    status(args, f"wrote {output} and {failures_path_for(output)} ({len(report.failures)} failures)")
    return 0 if report.faces else 1


def _prediction_table(frame, classifier):
    import numpy as np
    import pandas as pd

    columns = ["path", "face", "box_x1", "box_y1", "box_x2", "box_y2", "score"]
    table = frame[columns].reset_index(drop=True)
    features = np.stack(frame["embedding"].to_list()) if len(frame) else np.zeros((0, classifier.input_dim))
    probabilities = classifier.predict_proba(features)
    table["prediction"] = np.asarray(classifier.class_names)[probabilities.argmax(axis=1)] if len(frame) else []
    scores = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in classifier.class_names])
    return pd.concat([table, scores, frame[["model_id", "template_id", "crop_size"]].reset_index(drop=True)], axis=1)


def _report_paths(folder: str, args: argparse.Namespace) -> dict[str, Path]:
    from deepfever.io.atomic import refuse_overwrite

    paths = {key: Path(folder) / name for key, name in REPORT_FILES.items() if key != "curve" or args.learning_curve}
    for path in paths.values():
        refuse_overwrite(path, args.overwrite)
    return paths


def _embed_and_evaluate(args: argparse.Namespace):
    """Embed the dataset once; the folds, learning curve and final fit all reuse these vectors."""
    import datetime

    from tqdm import tqdm

    from deepfever._version import __version__, source_revision
    from deepfever.evaluation._probe_data import OWN_FORMATS, embed_labelled, load_labelled
    from deepfever.evaluation.probe import CLASSIFIERS, evaluate_probe
    from deepfever.models import DEFAULT_MODEL

    if args.classifier not in CLASSIFIERS:
        raise ValueError(f"--classifier must be one of {', '.join(CLASSIFIERS)}, got {args.classifier!r}")
    if (args.data is None) == (args.root is None):
        raise ValueError("give the labelled data once: as DATA or as --root DIR, e.g. `deepfever probe evaluate --format ckplus48 --root CK+48/`")
    data = load_labelled(args.data or args.root, args.format)
    if args.detector is None:  # dataset formats ship aligned face crops; your own folders and CSVs hold photos
        args.detector = "none" if args.format not in OWN_FORMATS else DEFAULT_DETECTOR
        logger.info("detector: %s (pass --detector to choose)", args.detector)
    extractor = build_extractor(args).load()
    with tqdm(total=len(data.sources), unit="img", file=sys.stderr, disable=progress_disabled(args)) as bar:
        vectors = embed_labelled(extractor, data, args.detector, progress=bar.update)
    logger.info("%d of %d images embedded, %d failures", len(vectors.labels), len(data.sources), len(vectors.failures))
    model = args.model or DEFAULT_MODEL
    report: dict[str, Any] = {
        "deepfever_version": __version__,
        "deepfever_revision": source_revision(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "extractor": {**extractor.fingerprint_, "model": str(Path(model).resolve()) if Path(model).suffix == ".safetensors" else model,
                      "detector": args.detector},
        "data": {**data.description, "embedded": len(vectors.labels), "failures": len(vectors.failures)},
    }
    report.update(evaluate_probe(vectors.features, vectors.labels, vectors.class_names, vectors.subjects, args.classifier,
                                 args.folds, args.learning_curve, args.repeats, args.seed))
    _print_summary(report)
    return vectors, report


def _print_summary(report: dict[str, Any]) -> None:
    protocol, accuracy, f1 = report["protocol"], report["accuracy"], report["macro_f1"]
    grouping = "subject-wise" if protocol["grouping"] == "subject" else "stratified"
    print(f"probe ({protocol['classifier']}, {protocol['folds']} {grouping} folds, {protocol['examples']} images): "
          f"accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f}, macro-F1 {f1['mean']:.4f} ± {f1['std']:.4f}")
    for name, scores in report["pooled"]["per_class"].items():
        print(f"  {name:>10}: recall {scores['recall']:.3f}  precision {scores['precision']:.3f}  ({scores['support']} images)")
    for point in report.get("learning_curve", {}).get("points", []):
        print(f"  {point['per_class']:>4} per class: accuracy {point['accuracy']['mean']:.4f} ± {point['accuracy']['std']:.4f}")


def _write_report(report: dict[str, Any], vectors, paths: dict[str, Path]) -> None:
    import pandas as pd

    from deepfever.evaluation._probe_plots import plot_learning_curve
    from deepfever.evaluation.ferplus import plot_confusion
    from deepfever.io.atomic import atomic_write
    from deepfever.io.failures import write_failures

    predicted = report["predicted"]
    document = {key: value for key, value in report.items() if key != "predicted"}
    with atomic_write(paths["report"]) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    title = f"{report['extractor']['model_id']} probe (accuracy {report['accuracy']['mean']:.3f})"
    plot_confusion(report["pooled"], paths["confusion"], title)
    if "curve" in paths:
        plot_learning_curve(report["learning_curve"]["points"], len(vectors.class_names), paths["curve"], title)
    names = pd.Series(vectors.class_names)
    table = pd.DataFrame({"path": vectors.paths, "subject": vectors.subjects if vectors.subjects is not None else "",
                          "label": names[vectors.labels].to_numpy(), "predicted_out_of_fold": names[predicted].to_numpy()})
    with atomic_write(paths["predictions"]) as tmp:
        table.to_csv(tmp, index=False)
    write_failures(vectors.failures, paths["failures"])


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
