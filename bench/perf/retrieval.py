"""Retrieval search speed: recall@k for 1,000 queries against a 100,000 x 256 database by
exact search (arbench's matrix product + bounded top-k per block, and faiss's IndexFlatIP),
against a numpy brute force (matrix product + full argsort, same rankings) and against the
bare matrix product alone (the faster of numpy and torch), the floor for exact search.

faiss's flat search multiplies matrices only when a search call holds queries x dim >=
128,000 numbers (``faiss.cvar.distance_compute_blas_threshold``); smaller calls loop over
queries in SIMD code, several times slower. The row "batches of 250" shows that path (it is
what an earlier version of this case timed); arbench's ``knn_search`` raises its batches
above the threshold."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from bench.metrics.retrieval import (
    blas_batch,
    build_index,
    exact_search,
    knn_search,
    recall_at_k,
)
from bench.registry import PERF_CASES

KS = (1, 5, 10)


def _best(function: Callable[[], object], rounds: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def numpy_topk(queries: np.ndarray, database: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Ranked ids [Nq, k] by a full argsort of each batch of inner products."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch):
        scores = queries[start:start + batch] @ database.T
        out[start:start + batch] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return out


def matmul_floor(queries: np.ndarray, database: np.ndarray, batch: int,
                 device: torch.device | None = None) -> float:
    """The batched matrix products alone, numpy or (``device`` given) torch; returns a
    checksum so that nothing is skipped."""
    total = 0.0
    if device is not None:
        queries_t, database_t = (torch.from_numpy(queries).to(device),
                                 torch.from_numpy(database).to(device))
        for start in range(0, len(queries), batch):
            total += float((queries_t[start:start + batch] @ database_t.T)[:, 0].sum())
        return total
    for start in range(0, len(queries), batch):
        total += float((queries[start:start + batch] @ database.T)[:, 0].sum())
    return total


@PERF_CASES.register("retrieval")
def case(device: str | None = None, n_db: int = 100_000, n_queries: int = 1000, dim: int = 256,
         batch: int = 250, rounds: int = 3) -> list[dict]:
    """Seconds (best of ``rounds``) for recall@1/5/10 by arbench's exact search (query
    batches of ``batch``: bounded memory) and faiss's IndexFlatIP (batches of ``batch``
    raised to its BLAS threshold, and of ``batch`` as given), by numpy brute force, and for
    the bare matrix product (ratio 1.00); plus the share of equal top-10 ids."""
    rng = np.random.default_rng(0)
    database = rng.standard_normal((n_db, dim), dtype=np.float32)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    source = rng.choice(n_db, n_queries, replace=False)
    queries = database[source] + 0.06 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    positives = [np.array([s]) for s in source]
    junk = [np.empty(0, dtype=np.int64)] * n_queries

    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    floor = min(_best(lambda: matmul_floor(queries, database, batch), rounds)[0],
                _best(lambda: matmul_floor(queries, database, batch, torch_device), rounds)[0])

    def exact_recall() -> tuple[np.ndarray, np.ndarray]:
        ids = exact_search(queries, database, max(KS), batch_size=batch, device=torch_device)[1]
        return ids, np.nanmean(recall_at_k(ids, positives, junk, list(KS)), axis=0)

    def faiss_recall() -> tuple[np.ndarray, np.ndarray]:
        index = build_index(database, "ip", "flat")
        ids = knn_search(index, queries, max(KS), batch_size=batch)[1]
        return ids, np.nanmean(recall_at_k(ids, positives, junk, list(KS)), axis=0)

    def faiss_small_batches() -> tuple[np.ndarray, np.ndarray]:
        index = build_index(database, "ip", "flat")
        ids = np.concatenate([index.search(queries[start:start + batch], max(KS))[1]
                              for start in range(0, n_queries, batch)])
        return ids, np.nanmean(recall_at_k(ids, positives, junk, list(KS)), axis=0)

    def numpy_recall() -> tuple[np.ndarray, np.ndarray]:
        ids = numpy_topk(queries, database, max(KS), batch)
        return ids, np.nanmean(recall_at_k(ids, positives, junk, list(KS)), axis=0)

    exact_s, (exact_ids, exact_rec) = _best(exact_recall, rounds)
    faiss_s, (faiss_ids, faiss_rec) = _best(faiss_recall, rounds)
    small_s, (small_ids, small_rec) = _best(faiss_small_batches, max(1, rounds - 2))
    numpy_s, (numpy_ids, numpy_rec) = _best(numpy_recall, max(1, rounds - 2))
    size = f"{n_queries} x {n_db} x {dim}"

    def row(method: str, seconds: float, ids: np.ndarray, recall: np.ndarray) -> dict:
        return {"method": method, "size": size, "seconds": f"{seconds:.3f}",
                "x floor": f"{seconds / floor:.2f}",
                "recall@1/5/10": "/".join(f"{r:.3f}" for r in recall),
                "same top-10 as numpy": f"{(ids == numpy_ids).mean():.4f}"}

    return [
        {"method": "matrix product only (floor)", "size": size, "seconds": f"{floor:.3f}",
         "x floor": "1.00", "recall@1/5/10": "", "same top-10 as numpy": ""},
        row(f"arbench exact search ({torch_device.type}) + recall@k", exact_s, exact_ids,
            exact_rec),
        row(f"faiss IndexFlatIP + recall@k (batches of {max(batch, blas_batch(dim))}, BLAS)",
            faiss_s, faiss_ids, faiss_rec),
        row(f"faiss IndexFlatIP + recall@k (batches of {batch}, below its BLAS threshold)",
            small_s, small_ids, small_rec),
        {"method": "numpy matmul + argsort + recall@k", "size": size,
         "seconds": f"{numpy_s:.3f}", "x floor": f"{numpy_s / floor:.2f}",
         "recall@1/5/10": "/".join(f"{r:.3f}" for r in numpy_rec),
         "same top-10 as numpy": "1.0000"},
    ]
