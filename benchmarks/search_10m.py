"""Similarity search at 10^7 faces with the index ``auto`` picks at that size (IVF-PQ, re-ranked from
vectors on disk): build time, memory, single-query latency and recall@10 against exact search.

The 10^7 x 128 float32 vectors (5.1 GB) are generated in chunks into a memory-mapped .npy file (the
same synthetic mixture as ``search_scale.py``), so nothing ever holds them whole in memory; the index
is built from that file, as ``load_index`` would use it. Exact neighbours of the queries (fresh draws,
never stored vectors) come from a brute-force scan of the file.
Target (issue 10): query < 20 ms, recall@10 >= 0.95, index memory reported.
Run: nice -n 15 .venv/bin/python benchmarks/search_10m.py [--count 10000000] [--queries 200] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from _common import save_result
from deepfever.applications.search import build_vector_index, choose_kind, recall_at_k
from search_scale import latency_ms, synthetic_vectors

CHUNK = 500_000


def memory_mib() -> dict[str, float]:
    """Anonymous (heap) and file-backed (memory-mapped vectors) resident memory now, and the peak RSS."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {key: float(status[key].split()[0]) for key in ("RssAnon", "RssFile") if key in status}
    return {"rss_anon_mib": round(kib.get("RssAnon", 0) / 1024, 1), "rss_file_mib": round(kib.get("RssFile", 0) / 1024, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for the timed single queries")
    parser.add_argument("--dir", default=None, help="where the temporary vector file goes (needs count x 512 bytes)")
    args = parser.parse_args()
    build_threads = faiss.omp_get_max_threads()
    queries = synthetic_vectors(args.queries, np.random.default_rng(999))
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = Path(scratch) / "vectors.npy"
        started = time.perf_counter()
        vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.count, 128))
        rng = np.random.default_rng(0)
        for start in range(0, args.count, CHUNK):
            stop = min(args.count, start + CHUNK)
            vectors[start:stop] = synthetic_vectors(stop - start, rng)
        vectors.flush()
        del vectors
        generate_seconds = time.perf_counter() - started
        vectors = np.load(path, mmap_mode="r")
        started = time.perf_counter()
        _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
        exact_seconds = time.perf_counter() - started
        print(f"generated {args.count} vectors in {generate_seconds:.0f} s; exact search of {args.queries} queries "
              f"{exact_seconds:.0f} s", flush=True)
        before = memory_mib()
        started = time.perf_counter()
        index, info = build_vector_index(vectors, kind="auto")
        build_seconds = time.perf_counter() - started
        after = memory_mib()
        faiss.omp_set_num_threads(args.threads)
        latency_ms(index, queries[:20])  # warm-up: the lists and vector pages the queries touch
        median, p95, found = latency_ms(index, queries)
        faiss.omp_set_num_threads(build_threads)
        recall = recall_at_k(found, truth)
    save_result("search_10m", {
        "faiss": faiss.__version__, "count": args.count, "dim": 128, "queries": args.queries,
        "build_threads": build_threads, "query_threads": args.threads, "auto_kind": choose_kind(args.count, 128),
        "generate_seconds": round(generate_seconds, 1), "exact_scan_seconds_all_queries": round(exact_seconds, 1),
        "exact_query_ms_estimate": round(exact_seconds * 1000 / args.queries, 1),
        "build_seconds": round(build_seconds, 1), "query_ms_median": round(median, 3), "query_ms_p95": round(p95, 3),
        "recall_at_10": round(recall, 4), "index_memory_mib": round(info["memory_bytes"] / 2**20, 1),
        "vectors_on_disk_mib": round(args.count * 128 * 4 / 2**20, 1), "memory_before_build": before,
        "memory_after_build": after, **{key: info[key] for key in ("kind", "nlist", "nprobe", "tuned_recall_at_10", "rerank",
                                                                     "pq_bytes_per_vector") if key in info},
    })


if __name__ == "__main__":
    main()
