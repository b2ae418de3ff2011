"""Find the faces whose expression is closest to a query, in collections of hundreds to millions.

Vectors are L2-normalised, so the inner product is the cosine similarity. Up to ``EXACT_LIMIT``
faces an exact scan is fast enough (a few ms); above it an inverted-file index (IVF) scans only the
``nprobe`` clusters nearest the query, and ``nprobe`` is tuned at build time until recall@10 against
exact search reaches ``TARGET_RECALL`` on queries sampled from the collection itself.

From ``PQ_LIMIT`` faces (or sooner, when the float vectors would not fit a memory budget) the IVF lists
hold product-quantised codes (IVF-PQ, ``dim / 4`` bytes a face instead of ``4 * dim``), and the
``RERANK`` x k best candidates are re-scored exactly against the float vectors, which a saved index
keeps on disk and memory-maps: memory holds the codes, the disk the vectors, and recall stays that of
exact scoring within the probed lists.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfever.errors import DeepFeverError
from deepfever.io.atomic import refuse_overwrite
from deepfever.io.hashing import file_sha256
from deepfever.models.fingerprint import model_id_change
from deepfever.models.vectors import unit

logger = logging.getLogger(__name__)

INDEX_FILE = "vectors.faiss"
META_FILE = "meta.parquet"
INFO_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
INDEX_KINDS = ("auto", "exact", "ivf", "ivfpq")
EXACT_LIMIT = 100_000
PQ_LIMIT = 2_000_000  # 1 GB of float32 vectors at D=128: from here on, codes in memory and vectors on disk
RERANK = 10  # IVF-PQ candidates re-scored exactly per result wanted
ADD_CHUNK = 1_000_000  # vectors normalised / encoded at a time, so building never copies a huge array whole
MAX_LISTS = 4096  # IVF clusters: beyond this, training and assignment cost more than the lists save
TARGET_RECALL = 0.95
TUNING_MARGIN = 0.02  # tuning queries are stored faces, a little easier than new ones: aim slightly higher
FINGERPRINT_COLUMNS = ("model_id", "template_id", "crop_size")
RESULT_COLUMNS = ("rank", "row", "path", "frame", "track", "face", "similarity", "emotion", "score")
FORMAT = 2
"""Index folder format: 2 records the checksums that tie the vector files to the fingerprint in ``index.json``."""
MAX_RERANK = 1000
SAMPLE_ROWS = 64  # rows of a memory-mapped vectors.npy whose digest is checked at load (the file may exceed memory)


class IndexMismatchError(DeepFeverError, ValueError):
    """A query comes from a different model (or alignment) than the vectors in the index."""


class IndexFileError(DeepFeverError, ValueError):
    """An index folder's file is damaged, edited, or was copied from another index."""


@dataclass
class FaceIndex:
    """A FAISS index of expression vectors, one metadata row per vector, and how it was built.

    Example:
        >>> index = build_index(read_table("faces.parquet"))  # doctest: +SKIP
        >>> index.search(query_vector, k=5)[["rank", "path", "similarity"]]  # doctest: +SKIP
    """

    index: Any
    meta: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def check_fingerprint(self, fingerprint: dict[str, Any], detector: str | None = None) -> None:
        """Refuse a query embedded by another model or alignment: its similarities would be meaningless.

        A query whose faces come from another ``detector`` than the indexed ones is only logged (one line):
        its crops differ slightly, its vectors stay comparable.
        """
        expected = self.info["fingerprint"]
        differing = [key for key in FINGERPRINT_COLUMNS if str(fingerprint.get(key)) != str(expected[key])]
        if differing:
            why = model_id_change(expected["model_id"], fingerprint.get("model_id"))
            raise IndexMismatchError(
                f"FaceIndex.search: the query was embedded with {_describe(fingerprint)} but the index holds vectors of "
                f"{_describe(expected)} (differs in {', '.join(differing)}{'; ' + why if why else ''}); query with the same "
                f"model (--model {self.info.get('model') or expected['model_id']}) or rebuild the index"
            )
        recorded = (self.info.get("face_stage") or {}).get("detector")
        if detector is not None and recorded is not None and detector != recorded:
            logger.warning("FaceIndex.search: the indexed faces were found with detector %r, the query's with %r; "
                           "pass --detector %s for crops framed alike", recorded, detector, recorded)

    def vector(self, row: int) -> np.ndarray:
        """The stored vector of index row ``row`` (to use a face of the collection as the query)."""
        if not 0 <= row < len(self):
            raise IndexError(f"FaceIndex.vector: row {row} is outside the index (0..{len(self) - 1})")
        return self.index.reconstruct(int(row))

    def search(self, vector: np.ndarray, k: int = 10, exclude_path: str | os.PathLike | None = None,
               exclude_row: int | None = None, min_score: float | None = None) -> pd.DataFrame:
        """The ``k`` most similar faces, best first, after the filters.

        Args:
            vector: the query's expression vector (D,).
            k: how many results.
            exclude_path: drop faces from this image file (the query's own image).
            exclude_row: drop faces of the same image as this index row, and of its ``track`` when the
                index has that column (the same person in the same video).
            min_score: drop faces whose detection score is below this.
        """
        if k < 1:
            raise ValueError(f"FaceIndex.search: k must be at least 1, got {k}")
        query = unit(np.asarray(vector, np.float32).reshape(1, -1))
        if query.shape[1] != self.info["dim"]:
            raise ValueError(f"FaceIndex.search: the query has {query.shape[1]} dimensions, the index {self.info['dim']}")
        if min_score is not None and "score" not in self.meta:
            raise ValueError("FaceIndex.search: min_score was given but the index has no 'score' column")
        excluded = _Exclusion.build(self.meta, exclude_path, exclude_row, min_score)
        fetch = min(len(self), k + max(3 * k, 32))
        while True:
            similarities, rows = self.index.search(query, fetch)
            found = rows[0] >= 0
            rows, similarities = rows[0][found], similarities[0][found]
            keep = ~excluded.mask(self.meta, rows)
            exhausted = fetch >= len(self) or len(rows) < fetch  # IVF: the probed clusters ran out
            if keep.sum() >= k or exhausted:
                break
            fetch = min(len(self), fetch * 4)
        rows, similarities = rows[keep][:k], similarities[keep][:k]
        result = self.meta.iloc[rows].reset_index(drop=True)
        result.insert(0, "rank", np.arange(1, len(rows) + 1))
        result.insert(1, "row", rows)
        result["similarity"] = similarities
        return result


@dataclass
class _Exclusion:
    """Which candidate rows the filters remove; checked only on candidates, so it stays cheap at 10^6."""

    path: Path | None
    images: set
    tracks: set
    min_score: float | None

    @classmethod
    def build(cls, meta: pd.DataFrame, path, row: int | None, min_score: float | None) -> "_Exclusion":
        images, tracks = set(), set()
        if row is not None:
            source = meta.iloc[int(row)]
            images.add(_image_key(source))
            if "track" in meta and pd.notna(source["track"]):
                tracks.add((source["path"], source["track"]))
        return cls(Path(path).resolve() if path is not None else None, images, tracks, min_score)

    def mask(self, meta: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        candidates = meta.iloc[rows]
        drop = np.zeros(len(rows), bool)
        if self.min_score is not None:
            drop |= candidates["score"].to_numpy(float) < self.min_score
        for position, (_, candidate) in enumerate(candidates.iterrows()):
            if drop[position]:
                continue
            if self.path is not None and Path(candidate["path"]).resolve() == self.path:
                drop[position] = True
            elif _image_key(candidate) in self.images:
                drop[position] = True
            elif self.tracks and (candidate["path"], candidate.get("track")) in self.tracks:
                drop[position] = True
        return drop


def _image_key(row: pd.Series) -> tuple:
    """An image is a file, or one frame of a video when the table has a ``frame`` column."""
    return (row["path"], row["frame"]) if "frame" in row.index else (row["path"],)


def _describe(fingerprint: dict[str, Any]) -> str:
    return f"model {fingerprint.get('model_id')} (template {fingerprint.get('template_id')}, crop {fingerprint.get('crop_size')})"


def table_fingerprint(table: pd.DataFrame) -> dict[str, Any]:
    """The single model fingerprint of an extraction table; mixed models cannot share one index."""
    missing = [column for column in FINGERPRINT_COLUMNS if column not in table]
    if missing:
        raise ValueError(
            f"build_index: the table lacks {', '.join(missing)}; use a table written by 'deepfever extract' "
            "(those columns say which model made the vectors)"
        )
    fingerprint = {}
    for column in FINGERPRINT_COLUMNS:
        values = table[column].unique()
        if len(values) != 1:
            raise ValueError(f"build_index: the table mixes {len(values)} values of {column} ({', '.join(map(str, values[:5]))}); "
                             "index the rows of one model at a time")
        fingerprint[column] = values[0].item() if isinstance(values[0], np.generic) else values[0]
    return fingerprint


def build_index(table: pd.DataFrame, kind: str = "auto", target_recall: float = TARGET_RECALL, seed: int = 0,
                model: str | None = None, memory_budget: int | None = None, detector: str | None = None) -> FaceIndex:
    """Index the ``embedding`` column of an extraction table.

    Args:
        table: rows from ``Extractor.extract`` or ``read_table``.
        kind: ``exact`` (flat inner product), ``ivf`` (approximate), ``ivfpq`` (approximate, compressed,
            re-ranked from vectors on disk) or ``auto`` (see ``choose_kind``).
        target_recall: recall@10 the IVF ``nprobe`` is tuned to reach.
        seed: for the IVF training sample and the tuning queries.
        model: how the model was named (path or ``arch.tag``), stored to help users query correctly.
        memory_budget: bytes the index may hold in memory; ``auto`` moves to IVF-PQ when the vectors exceed it.
        detector: the detector that found the faces (None: the table's recorded ``metadata``), kept as the
            index's face stage so a query with another one is named.
    """
    if "embedding" not in table or table.empty:
        raise ValueError("build_index: expected a non-empty table with an 'embedding' column, as written by 'deepfever extract'")
    fingerprint = table_fingerprint(table)
    index, info = build_vector_index(np.stack(table["embedding"].to_list()), kind, target_recall, seed, memory_budget)
    recorded = (table.attrs.get("metadata") or {}).get("detector")
    info.update(fingerprint=fingerprint, model=model, face_stage={"detector": detector or recorded})
    meta = table.drop(columns=[c for c in ("embedding", "landmarks") if c in table]).reset_index(drop=True)
    if "path" in meta:  # files named from the working folder stay findable from any other
        meta["path"] = [os.path.abspath(path) if isinstance(path, str) and os.path.isfile(path) else path for path in meta["path"]]
    return FaceIndex(index, meta, info)


def choose_kind(count: int, dim: int, memory_budget: int | None = None) -> str:
    """``auto``'s choice: exact below ``EXACT_LIMIT``, IVF below ``PQ_LIMIT``, IVF-PQ above, or when the
    float vectors (``4 * count * dim`` bytes) exceed ``memory_budget``."""
    if memory_budget is not None and 4 * count * dim > memory_budget:
        return "ivfpq"
    return "exact" if count < EXACT_LIMIT else "ivf" if count < PQ_LIMIT else "ivfpq"


def build_vector_index(vectors: np.ndarray, kind: str = "auto", target_recall: float = TARGET_RECALL,
                       seed: int = 0, memory_budget: int | None = None) -> tuple[Any, dict[str, Any]]:
    """A FAISS inner-product index of the normalised ``vectors`` and a description of it (see ``build_index``).

    ``vectors`` may be a memory-mapped array larger than memory (``np.load(path, mmap_mode="r")``): if
    its rows are unit-length already it is used in place, and IVF-PQ reads it in chunks.
    """
    import faiss

    if kind not in INDEX_KINDS:
        raise ValueError(f"build_index: unknown kind {kind!r}; valid choices are {', '.join(INDEX_KINDS)}")
    if memory_budget is not None and memory_budget <= 0:
        raise ValueError(f"build_index: memory_budget must be a positive number of bytes, got {memory_budget}")
    vectors = _unit_rows(vectors)
    count, dim = vectors.shape
    chosen = choose_kind(count, dim, memory_budget) if kind == "auto" else kind
    info: dict[str, Any] = {"format": FORMAT, "kind": chosen, "count": count, "dim": dim, "metric": "inner_product"}
    if chosen == "exact":
        index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(vectors))
    else:
        index, tuning = _build_ivf(vectors, target_recall, seed, compressed=chosen == "ivfpq")
        info.update(tuning)
    info["memory_bytes"] = index_memory_bytes(index)
    return index, info


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` itself when every row has unit length (checked in chunks), else a normalised float32 copy."""
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"build_index: expected a non-empty (N, D) array of vectors, got shape {vectors.shape}")
    for start in range(0, len(vectors), ADD_CHUNK):
        norms = np.linalg.norm(np.asarray(vectors[start:start + ADD_CHUNK], np.float32), axis=1)
        if vectors.dtype != np.float32 or np.abs(norms - 1).max() > 1e-4:
            return np.ascontiguousarray(unit(vectors))
    return vectors


class RerankedIndex:
    """IVF-PQ codes for the candidate search, float vectors (in memory or memory-mapped) for exact re-scoring.

    Offers what ``FaceIndex`` and ``tune_nprobe`` use of a FAISS index: ``ntotal``, ``nlist``,
    ``nprobe``, ``search`` and ``reconstruct``.
    """

    def __init__(self, index: Any, vectors: np.ndarray, rerank: int = RERANK) -> None:
        if index.ntotal != len(vectors):
            raise ValueError(f"RerankedIndex: {index.ntotal} codes but {len(vectors)} vectors; rebuild the index")
        self.index, self.vectors, self.rerank = index, vectors, rerank

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = int(value)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, rows), best first; rows the lists ran out of are -1 as in FAISS."""
        _, candidates = self.index.search(queries, k * self.rerank)
        similarities = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for position, (query, found) in enumerate(zip(queries, candidates)):
            found = found[found >= 0]
            ordered = np.sort(found)  # ascending rows: sequential reads from a memory-mapped file
            scores = np.asarray(self.vectors[ordered], np.float32) @ query
            best = np.argsort(-scores, kind="stable")[:k]
            similarities[position, :len(best)], rows[position, :len(best)] = scores[best], ordered[best]
        return similarities, rows

    def reconstruct(self, row: int) -> np.ndarray:
        return np.asarray(self.vectors[row], np.float32)


def index_memory_bytes(index: Any) -> int:
    """Bytes the index holds in memory: vectors or codes, ids and centroids (a memory-mapped file excluded)."""
    import faiss

    base = index.index if isinstance(index, RerankedIndex) else index
    if isinstance(base, faiss.IndexFlat):
        return int(base.ntotal * base.d * 4)
    ivf = faiss.extract_index_ivf(base)
    per_vector = ivf.code_size + 8  # code + 64-bit id in the inverted lists
    centroids = ivf.nlist * ivf.d * 4
    pq = faiss.downcast_index(base).pq if hasattr(faiss.downcast_index(base), "pq") else None
    codebooks = pq.M * pq.ksub * pq.dsub * 4 if pq is not None else 0
    return int(ivf.ntotal * per_vector + centroids + codebooks)


def ivf_lists(count: int) -> int:
    """About sqrt(N) clusters (fast to train, ~sqrt(N) vectors each), with >= 39 training points per cluster."""
    return max(1, min(int(round(math.sqrt(count))), count // 39, MAX_LISTS))


def _build_ivf(vectors: np.ndarray, target_recall: float, seed: int, compressed: bool) -> tuple[Any, dict[str, Any]]:
    import faiss

    count, dim = vectors.shape
    lists = ivf_lists(count)
    quantizer = faiss.IndexFlatIP(dim)
    if compressed:
        if dim % 4:
            raise ValueError(f"build_index: IVF-PQ needs a dimension divisible by 4, got {dim}; use kind 'ivf'")
        # dim/4 sub-quantisers of 8 bits: 32 bytes a face at D=128, 16x smaller than float32.
        index = faiss.IndexIVFPQ(quantizer, dim, lists, dim // 4, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    training = max(64 * lists, 256 * 64) if compressed else 64 * lists  # PQ codebooks need >= 256 points x 39
    sample = np.ascontiguousarray(vectors[np.sort(rng.choice(count, min(count, training), replace=False))], np.float32)
    index.train(sample)
    for start in range(0, count, ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_CHUNK], np.float32))
    if not compressed:
        index.make_direct_map()  # lets FaceIndex.vector reconstruct a stored face as a query
    searchable = RerankedIndex(index, vectors) if compressed else index
    nprobe, recall = tune_nprobe(searchable, vectors, target_recall, seed=seed)
    searchable.nprobe = nprobe
    logger.info("%s index: %d lists, nprobe %d reaches recall@10 %.3f on sampled queries",
                "IVF-PQ" if compressed else "IVF", lists, nprobe, recall)
    tuning = {"nlist": lists, "nprobe": nprobe, "tuned_recall_at_10": recall, "target_recall_at_10": target_recall}
    if compressed:
        tuning.update(pq_bytes_per_vector=dim // 4, rerank=RERANK)
    return searchable, tuning


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (true neighbour ids) that appears in the same row of ``found``."""
    hits = [len((set(f.tolist()) & set(t.tolist())) - {-1}) for f, t in zip(found, truth)]
    return float(np.mean(hits) / truth.shape[1])


def tune_nprobe(index: Any, vectors: np.ndarray, target_recall: float = TARGET_RECALL, queries: int = 256,
                k: int = 10, seed: int = 0) -> tuple[int, float]:
    """Smallest power-of-two ``nprobe`` whose recall@k against exact search reaches ``target_recall`` + ``TUNING_MARGIN``.

    The queries are stored vectors; each query's own row is removed from both result lists, so the
    trivial self-match does not inflate the recall.
    """
    import faiss

    rng = np.random.default_rng(seed + 1)
    picked = rng.choice(len(vectors), min(queries, len(vectors)), replace=False)
    sample = vectors[picked]
    _, exact = faiss.knn(sample, vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    truth = _without_self(exact, picked, k)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, approximate = index.search(sample, k + 1)
        recall = recall_at_k(_without_self(approximate, picked, k), truth)
        if recall >= min(1.0, target_recall + TUNING_MARGIN) or nprobe >= index.nlist:
            return nprobe, recall
        nprobe = min(index.nlist, nprobe * 2)


def _without_self(rows: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, np.int64)
    for position, (row, self_row) in enumerate(zip(rows, own)):
        kept = row[row != self_row][:k]
        out[position, : len(kept)] = kept
    return out


def save_index(face_index: FaceIndex, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the index folder (FAISS file, metadata Parquet, JSON) so that it appears complete or not at all."""
    import faiss

    from deepfever._version import __version__

    target = Path(folder)
    if target.exists():
        refuse_overwrite(target, overwrite)
        if not (target / INFO_FILE).is_file():
            raise FileExistsError(f"save_index: {target} exists and is not a deepfever index folder (no {INFO_FILE}); "
                                  "refusing to replace it, choose another path")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        index = face_index.index
        if isinstance(index, RerankedIndex):
            np.save(staging / VECTORS_FILE, index.vectors)
            index = index.index
        faiss.write_index(index, str(staging / INDEX_FILE))
        face_index.meta.to_parquet(staging / META_FILE, index=False)
        # The checksums tie the vectors to the fingerprint recorded beside them: a vectors.faiss copied
        # from another index (another model, same face count) is refused at load.
        checksums = {name: file_sha256(staging / name) for name in (INDEX_FILE, META_FILE)}
        if isinstance(face_index.index, RerankedIndex):
            checksums[VECTORS_FILE] = _sample_digest(face_index.index.vectors)
        info = {**face_index.info, "format": FORMAT, "checksums": checksums, "deepfever_version": __version__}
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2, default=_json_default) + "\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def load_index(folder: str | os.PathLike) -> FaceIndex:
    """Read an index folder written by ``save_index``."""
    import faiss

    source = Path(folder)
    missing = [name for name in (INDEX_FILE, META_FILE, INFO_FILE) if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"load_index: {source} is not a complete index folder (missing {', '.join(missing)}); "
                                "build one with 'deepfever index build'")
    info = _read_info(source / INFO_FILE)
    for name in (INDEX_FILE, META_FILE):  # before parsing: a foreign or damaged file is named, not decoded
        if file_sha256(source / name) != info["checksums"][name]:
            raise IndexFileError(f"load_index: {source / name} is not the file this index was built with (its sha256 differs "
                                 f"from {INFO_FILE}'s checksums): it was edited or copied from another index, perhaps of another "
                                 "model; rebuild the index with 'deepfever index build'")
    try:
        index = faiss.read_index(str(source / INDEX_FILE))
    except RuntimeError as error:
        raise IndexFileError(f"load_index: {source / INDEX_FILE} is not a readable FAISS index ({' '.join(str(error).split())[:200]}); "
                             "rebuild the index") from error
    try:
        meta = pd.read_parquet(source / META_FILE)
    except Exception as error:  # pyarrow raises its own ArrowInvalid (or OSError) for damaged files
        raise IndexFileError(f"load_index: {source / META_FILE} is not a readable Parquet table ({error}); rebuild the index") from error
    if index.ntotal != len(meta) or index.ntotal != info["count"] or index.d != info["dim"]:
        raise IndexFileError(f"load_index: {source} is inconsistent ({index.ntotal} vectors of {index.d} dimensions, {len(meta)} "
                             f"metadata rows; {INFO_FILE} says count {info['count']}, dim {info['dim']}); rebuild it")
    if info["kind"] in ("ivf", "ivfpq") and not 1 <= info["nprobe"] <= faiss.extract_index_ivf(index).nlist:
        raise IndexFileError(f"load_index: {source / INFO_FILE}: nprobe must lie in [1, {faiss.extract_index_ivf(index).nlist}] "
                             f"(the index's lists), got {info['nprobe']}; rebuild the index")
    if info["kind"] == "ivfpq":
        index = RerankedIndex(index, _load_vectors(source / VECTORS_FILE, info), info["rerank"])
    elif info["kind"] == "ivf":
        index.make_direct_map()
    if info["kind"] in ("ivf", "ivfpq"):
        index.nprobe = info["nprobe"]
    return FaceIndex(index, meta, info)


def _read_info(path: Path) -> dict[str, Any]:
    """``index.json``, each field the loader relies on checked, or ``IndexFileError`` naming the first wrong one."""
    def refuse(problem: str) -> IndexFileError:
        return IndexFileError(f"load_index: {path}: {problem}; rebuild the index with 'deepfever index build'")

    def whole(value: Any, low: int, high: int | None = None) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)

    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise refuse(f"not valid JSON ({error})") from error
    if not isinstance(info, dict):
        raise refuse(f"expected a JSON object, got {type(info).__name__}")
    if info.get("format") != FORMAT:
        older = isinstance(info.get("format"), int) and info["format"] < FORMAT
        raise refuse(f"format {info.get('format')!r} is not {FORMAT}" + (
            " (an older index, whose vectors.faiss is not tied to the fingerprint it records)" if older else ""))
    if info.get("kind") not in INDEX_KINDS[1:]:
        raise refuse(f"kind must be one of {', '.join(INDEX_KINDS[1:])}, got {info.get('kind')!r}")
    for name in ("count", "dim"):
        if not whole(info.get(name), 1):
            raise refuse(f"{name} must be a positive integer, got {info.get(name)!r}")
    if info["kind"] != "exact" and not whole(info.get("nprobe"), 1):
        raise refuse(f"nprobe must be a positive integer, got {info.get('nprobe')!r}")
    if info["kind"] == "ivfpq" and not whole(info.get("rerank"), 1, MAX_RERANK):
        raise refuse(f"rerank must be an integer in [1, {MAX_RERANK}], got {info.get('rerank')!r}")
    fingerprint = info.get("fingerprint")
    if not isinstance(fingerprint, dict) or not all(isinstance(fingerprint.get(key), (str, int)) for key in FINGERPRINT_COLUMNS):
        raise refuse(f"fingerprint must record {', '.join(FINGERPRINT_COLUMNS)} of the indexed vectors, got {fingerprint!r}")
    checksums = info.get("checksums")
    needed = (INDEX_FILE, META_FILE, VECTORS_FILE) if info["kind"] == "ivfpq" else (INDEX_FILE, META_FILE)
    if not isinstance(checksums, dict) or not all(isinstance(checksums.get(name), str) for name in needed):
        raise refuse(f"checksums must give the sha256 of {', '.join(needed)}, got {checksums!r}")
    if not isinstance(info.get("face_stage", {}), dict):
        raise refuse(f"face_stage must be an object, got {info['face_stage']!r}")
    return info


def _sample_digest(vectors: np.ndarray) -> str:
    """sha256 of ``SAMPLE_ROWS`` rows spread over ``vectors``: checks a memory-mapped file without reading all of it."""
    import hashlib

    rows = np.unique(np.linspace(0, len(vectors) - 1, min(len(vectors), SAMPLE_ROWS)).astype(np.int64))
    digest = hashlib.sha256(f"{vectors.shape}".encode())
    digest.update(np.ascontiguousarray(vectors[rows], np.float32).tobytes())
    return digest.hexdigest()


def _load_vectors(path: Path, info: dict[str, Any]) -> np.ndarray:
    """The float vectors an IVF-PQ index re-ranks with, memory-mapped, checked against ``index.json``."""
    if not path.is_file():
        raise FileNotFoundError(f"load_index: {path.parent} is an IVF-PQ index without its {VECTORS_FILE}; rebuild it")
    try:
        # Memory-mapped: only the rows a query re-scores are read, and the OS caches what is used.
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise IndexFileError(f"load_index: {path} is not a readable .npy array ({error}); rebuild the index") from error
    if vectors.shape != (info["count"], info["dim"]) or vectors.dtype != np.float32 or _sample_digest(vectors) != info["checksums"][VECTORS_FILE]:
        raise IndexFileError(f"load_index: {path} is not the vectors file this index was built with ({vectors.dtype} {vectors.shape}, "
                             f"sampled rows differ from {INFO_FILE}'s checksums or shape): it was edited or copied from another "
                             "index, perhaps of another model; rebuild the index with 'deepfever index build'")
    return vectors


def result_columns(results: pd.DataFrame) -> list[str]:
    """The columns of a result table worth showing a person, in a fixed order."""
    return [column for column in RESULT_COLUMNS if column in results]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

