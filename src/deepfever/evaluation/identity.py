"""How much of a person's identity leaks into their expression vectors.

An expression vector should say *how* someone looks, not *who* they are. Two measures, each put
next to the same measure for expression labels so the numbers have a scale: retrieval mAP (rank
every other face by cosine similarity; are the top ones the same person?) and the accuracy of a
linear probe trained to predict the identity.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfever.evaluation.probe import cross_validate_probe, make_folds
from deepfever.models.vectors import unit

logger = logging.getLogger(__name__)


def retrieval_map(vectors: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, chunk: int = 256) -> dict[str, float]:
    """Leave-one-out mean average precision of ranking all other rows by cosine similarity.

    A row's relevant items are the other rows with its label; rows with no such row are skipped.
    With ``groups`` (e.g. the video a frame came from), the rows of a query's own group are left out
    of its ranking: near-identical frames would otherwise find each other and count as a hit.
    ``chance`` is the mean AP a random ranking would get (the share of relevant items).
    """
    vectors = unit(vectors)
    labels = np.asarray(labels)
    if len(vectors) != len(labels) or (groups is not None and len(groups) != len(labels)):
        raise ValueError(f"retrieval_map: {len(vectors)} vectors but {len(labels)} labels"
                         + ("" if groups is None else f" and {len(groups)} groups"))
    _, codes = np.unique(labels, return_inverse=True)
    # Without groups each row is its own group, so only the row itself is left out.
    _, group_codes = np.unique(np.asarray(groups).astype(str), return_inverse=True) if groups is not None else (None, np.arange(len(labels)))
    precisions, chance = [], []
    for start in range(0, len(vectors), chunk):
        block = slice(start, min(start + chunk, len(vectors)))
        own_group = group_codes[block, None] == group_codes[None, :]  # includes the row itself
        similarity = vectors[block] @ vectors.T
        similarity[own_group] = -np.inf
        order = np.argsort(-similarity, axis=1, kind="stable")  # the left-out rows sort last
        same_label = codes[None, :] == codes[block, None]
        relevant = np.take_along_axis(same_label & ~own_group, order, axis=1)
        positives = relevant.sum(1)
        candidates = (~own_group).sum(1)
        hits = np.cumsum(relevant, axis=1)
        ranks = np.arange(1, relevant.shape[1] + 1)
        average_precision = (relevant * hits / ranks).sum(1) / np.maximum(positives, 1)
        usable = positives > 0
        precisions.extend(average_precision[usable])
        chance.extend(positives[usable] / candidates[usable])
    if not precisions:
        raise ValueError("retrieval_map: no row has another row with its label" + ("" if groups is None else " outside its own group")
                         + "; need at least two rows sharing a label" + ("" if groups is None else " in different groups"))
    return {"map": float(np.mean(precisions)), "chance": float(np.mean(chance)), "queries": len(precisions)}


def linear_probe(vectors: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, folds: int = 5,
                 seed: int = 0) -> dict[str, Any]:
    """Cross-validated accuracy of the package's linear probe (``evaluation.probe``) predicting ``labels``.

    The vectors are scaled to unit length first (what cosine retrieval sees), then the probe's
    standardised logistic regression is fitted per fold. Folds are stratified by label and, with
    ``groups``, keep each group in one fold (no face of a group is both trained on and tested).
    Labels with fewer rows than folds are dropped and counted. ``accuracy`` pools every out-of-fold
    prediction; ``chance`` is the majority label's share.
    """
    labels = np.asarray(labels).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    kept = np.isin(labels, names[counts >= folds])
    if len(np.unique(labels[kept])) < 2:
        raise ValueError(f"linear_probe: need at least 2 labels with {folds} or more rows each; got counts "
                         f"{dict(zip(names.tolist(), counts.tolist()))}; use fewer folds or more data")
    x, y = unit(vectors)[kept], labels[kept]
    classes, codes = np.unique(y, return_inverse=True)
    grouping = None if groups is None else np.asarray(groups).astype(str)[kept]
    report = cross_validate_probe(x, codes, list(classes), make_folds(codes, grouping, folds, seed), "logistic", seed)
    majority = np.bincount(codes).max() / len(codes)
    return {"accuracy": report["pooled"]["accuracy"], "chance": float(majority), "classes": int(len(classes)),
            "rows": int(len(y)), "dropped_rows": int((~kept).sum()), "folds": folds}


def identity_leakage(vectors: np.ndarray, identities: np.ndarray, expressions: np.ndarray | None = None,
                     sources: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Identity retrieval mAP and identity probe accuracy, beside the same for expression labels.

    ``sources`` (e.g. the video a frame came from) keep near-identical frames apart: a face's own source
    is left out of its retrieval ranking, and the identity probe's folds keep each source whole; the
    expression probe groups by identity, so it must work on unseen people.

    Example:
        >>> report = identity_leakage(vectors, table["identity"], table["label"])  # doctest: +SKIP
        >>> report["identity"]["retrieval"]["map"], report["expression"]["retrieval"]["map"]  # doctest: +SKIP
    """
    identities = np.asarray(identities).astype(str)
    report: dict[str, Any] = {"faces": len(identities), "identities": int(len(np.unique(identities))), "identity": {
        "retrieval": retrieval_map(vectors, identities, sources),
        "probe": linear_probe(vectors, identities, sources, folds, seed),
    }}
    if expressions is not None:
        expressions = np.asarray(expressions).astype(str)
        report["expression"] = {"retrieval": retrieval_map(vectors, expressions, sources),
                                "probe": linear_probe(vectors, expressions, identities, folds, seed)}
    return report


def attach_identities(table: pd.DataFrame, identity_csv: str | os.PathLike) -> pd.DataFrame:
    """Rows of ``table`` with an ``identity`` column from a CSV of ``path,identity`` or ``path,face,identity``
    (other CSV columns come too).

    Paths match as written, else as resolved files, else by file name when the CSV's names are unique.
    With a ``face`` column each face of a group photo gets its own identity; without one, an image
    with several faces cannot say who is who, so its faces are left out (with a warning).
    """
    identities = pd.read_csv(identity_csv, dtype={"identity": str})
    missing = {"path", "identity"} - set(identities.columns)
    if missing:
        raise ValueError(f"attach_identities: {identity_csv} needs columns path,identity or path,face,identity; missing "
                         f"{', '.join(sorted(missing))} (found {', '.join(identities.columns)})")
    if "identity" in table.columns:
        raise ValueError("attach_identities: the table already has an 'identity' column; drop it or use it directly")
    by_face = "face" in identities.columns
    if by_face and (identities["face"].isna().any() or not (identities["face"] % 1 == 0).all()):
        raise ValueError(f"attach_identities: {identity_csv} has a face column with empty or non-integer values; "
                         "give the face index of each row (the table's 'face' column, 0 = leftmost)")
    columns = [c for c in identities.columns if c not in ("path", "face") and c not in table.columns]
    records = identities[columns].to_dict("records")
    faces = identities["face"].astype(int).tolist() if by_face else [None] * len(identities)
    keyers = [str, _resolved] + ([_name] if identities.drop_duplicates(["path", "face"] if by_face else ["path"])["path"].map(_name).is_unique else [])
    paths = table["path"].astype(str).tolist()
    table_faces = table["face"].astype(int).tolist() if by_face else [None] * len(paths)
    found: list[dict | None] = [None] * len(paths)
    for keyer in keyers:
        if all(record is not None for record in found):
            break
        lookup = {(keyer(str(path)), face): record for path, face, record in zip(identities["path"], faces, records)}
        found = [record if record is not None else lookup.get((keyer(path), face))
                 for path, face, record in zip(paths, table_faces, found)]
    keep = np.array([record is not None for record in found])
    if not keep.any():
        raise ValueError(f"attach_identities: none of the {len(table)} table paths is in {identity_csv} "
                         f"(e.g. table {paths[0]!r} vs CSV {identities['path'].iloc[0]!r}); write the CSV with the table's paths")
    if not by_face and "face" in table.columns:
        crowded = table.groupby("path")["face"].transform("count").to_numpy() > 1
        if (keep & crowded).any():
            logger.warning("attach_identities: %d faces are in images with several faces, but %s names one identity per image; "
                           "they are left out (add a face column: path,face,identity)", int((keep & crowded).sum()), identity_csv)
            keep &= ~crowded
    if not keep.all():
        logger.warning("attach_identities: %d of %d faces have no identity in %s and are left out", (~keep).sum(), len(table), identity_csv)
    joined = pd.concat([table.reset_index(drop=True), pd.DataFrame([r or {} for r in found], columns=columns)], axis=1)
    return joined[keep].reset_index(drop=True)


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def _name(path: str) -> str:
    return Path(str(path)).name


def format_report(report: dict[str, Any]) -> str:
    """A short human summary of ``identity_leakage``'s report, ending with its verdict."""
    lines = [f"{report['faces']} faces of {report['identities']} identities"]
    for part in ("identity", "expression"):
        if part in report:
            retrieval, probe = report[part]["retrieval"], report[part]["probe"]
            lines.append(f"{part:>10}: retrieval mAP {retrieval['map']:.3f} (chance {retrieval['chance']:.3f}), "
                         f"linear probe accuracy {probe['accuracy']:.3f} (majority {probe['chance']:.3f}, "
                         f"{probe['classes']} classes, {probe['folds']}-fold grouped CV)")
    lines.append(f"verdict: {leakage_verdict(report)}")
    return "\n".join(lines)


def retrieval_lift(retrieval: dict[str, float]) -> float:
    """How far retrieval mAP lies from chance (0) towards perfect (1): comparable across label sets of any size."""
    return (retrieval["map"] - retrieval["chance"]) / max(1.0 - retrieval["chance"], 1e-12)


def leakage_verdict(report: dict[str, Any]) -> str:
    """One sentence on ``identity_leakage``'s report, by a stated rule on retrieval lift (``retrieval_lift``).

    With expression labels, identity is judged against expression: strong if people are retrieved at
    least as well as expressions, noticeable if at least half as well, little otherwise. Without
    labels, by identity's lift alone: strong from 0.5, some from 0.1, little below.
    """
    identity = retrieval_lift(report["identity"]["retrieval"])
    if "expression" not in report:
        level = "strong" if identity >= 0.5 else "some" if identity >= 0.1 else "little"
        return (f"{level} identity leakage (identity retrieval lift {identity:.2f} over chance; strong from 0.5, some "
                "from 0.1); give expression labels to judge it against expression")
    expression = retrieval_lift(report["expression"]["retrieval"])
    if expression <= 0:
        return (f"expression labels are retrieved no better than chance (lift {expression:.2f}), so identity (lift "
                f"{identity:.2f}) cannot be judged against them; check the label column")
    ratio = identity / expression
    if ratio >= 1:
        judgement = "strong identity leakage: people are retrieved as well as expressions or better, so searches and probes will group people"
    elif ratio >= 0.5:
        judgement = "noticeable identity leakage: people are retrieved at least half as well as expressions"
    else:
        judgement = "little identity leakage: expressions are retrieved more than twice as well as people"
    return f"{judgement} (retrieval lift over chance: identity {identity:.2f}, expression {expression:.2f})"
