"""Similarity search at scale: build time, single-query latency and recall@10 on synthetic vectors.

Targets: at 10^6 faces, query latency < 20 ms with recall@10 >= 0.95 against exact search.
The vectors (D=128) are realistic in shape, not random noise: a mixture of 256 Gaussian clusters in a
32-dimensional latent space, mapped linearly to 128 dimensions, plus isotropic noise, L2-normalised
(expression vectors also lie near a low-dimensional, clustered set). Queries are fresh draws from the
same mixture, never stored vectors.
Run: nice -n 15 .venv/bin/python benchmarks/search_scale.py [--sizes 10000 100000 1000000] [--queries 300]
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from _common import save_result
from deepfever.applications.search import build_vector_index, recall_at_k


def synthetic_vectors(count: int, rng: np.random.Generator, dim: int = 128, latent: int = 32, clusters: int = 256) -> np.ndarray:
    mixing = np.random.default_rng(12345).normal(size=(latent, dim)) / np.sqrt(latent)  # fixed across calls
    centres = np.random.default_rng(54321).normal(size=(clusters, latent))
    points = centres[rng.integers(0, clusters, count)] + 1.0 * rng.normal(size=(count, latent))
    vectors = (points @ mixing + 0.15 * rng.normal(size=(count, dim))).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def latency_ms(index, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    """Median and 95th-percentile latency of one query at a time, and the result ids."""
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, rows = index.search(query[None], k)
        times.append((time.perf_counter() - started) * 1000)
        found.append(rows[0])
    return float(np.median(times)), float(np.percentile(times, 95)), np.stack(found)


def measure(count: int, queries: np.ndarray, kinds: list[str], threads: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    vectors = synthetic_vectors(count, rng)
    _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    result = {"count": count}
    build_threads = faiss.omp_get_max_threads()
    for kind in kinds:
        started = time.perf_counter()
        index, info = build_vector_index(vectors, kind=kind, seed=seed)
        build_seconds = time.perf_counter() - started
        faiss.omp_set_num_threads(threads)
        median, p95, found = latency_ms(index, queries)
        faiss.omp_set_num_threads(build_threads)
        result[kind] = {"build_seconds": round(build_seconds, 2), "query_ms_median": round(median, 3), "query_ms_p95": round(p95, 3),
                        "recall_at_10": round(recall_at_k(found, truth), 4),
                        **{key: info[key] for key in ("nlist", "nprobe", "tuned_recall_at_10") if key in info}}
        print(count, kind, result[kind], flush=True)
        del index
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kinds", nargs="+", default=["exact", "ivf"], choices=("exact", "ivf"))
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS threads for queries; one query at a time gains little from more, and on a shared"
                             " machine OpenMP waits for descheduled threads")
    args = parser.parse_args()
    queries = synthetic_vectors(args.queries, np.random.default_rng(999))
    build_threads = faiss.omp_get_max_threads()
    results = [measure(count, queries, args.kinds, args.threads) for count in args.sizes]
    save_result("search_scale", {"faiss": faiss.__version__, "build_threads": build_threads, "query_threads": args.threads,
                                 "queries": args.queries, "dim": 128, "results": results})


if __name__ == "__main__":
    main()
