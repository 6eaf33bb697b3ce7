"""Retrieval metrics against hand-checked rankings and revisitop's compute_map definition."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from bench.errors import ContractError
from bench.metrics.localization import LocalizationMetric, recall_within, retrieved_distances
from bench.metrics.retrieval import (
    GroundTruth,
    RetrievalMetric,
    RevisitopMetric,
    average_precision,
    blas_batch,
    build_index,
    check_descriptors,
    exact_search,
    knn_search,
    mean_average_precision,
    positive_ranks,
    precision_at_k,
    query_rankings,
    ranking_until,
    recall_at_k,
    similarity,
)


def revisitop_compute_map(ranks: np.ndarray, gnd: list[dict], kappas: list[int]):
    """revisitop's compute_map (evaluate.py), re-stated loop by loop as the reference:
    ``ranks`` [Ndb, Nq] full rankings, gnd[i] with 'ok' and 'junk'."""
    nq = len(gnd)
    aps, prs = np.zeros(nq), np.zeros((nq, len(kappas)))
    total, pr, nempty = 0.0, np.zeros(len(kappas)), 0
    for i in range(nq):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            aps[i], prs[i] = np.nan, np.nan
            nempty += 1
            continue
        qgndj = np.array(gnd[i]["junk"])
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k, ij = 0, 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        ap = 0.0
        for j, rank in enumerate(pos):
            precision_0 = 1.0 if rank == 0 else j / rank
            precision_1 = (j + 1) / (rank + 1)
            ap += (precision_0 + precision_1) / len(qgnd) / 2.0
        total += ap
        aps[i] = ap
        pos = pos + 1
        for j, kappa in enumerate(kappas):
            kq = min(max(pos), kappa)
            prs[i, j] = (pos <= kq).sum() / kq
        pr = pr + prs[i]
    return total / (nq - nempty), aps, pr / (nq - nempty), prs


def test_average_precision_by_hand() -> None:
    # positives at ranks 0 and 2 of 2: trapezoids (1+1)/2*1/2 + (1/2+2/3)/2*1/2
    assert average_precision(np.array([0, 2]), 2) == pytest.approx(0.5 + 7 / 24)
    assert average_precision(np.array([0, 2]), 2, "standard") == pytest.approx((1 + 2 / 3) / 2)
    # one of three positives retrieved (at rank 1): (0 + 1/2)/2 * 1/3
    assert average_precision(np.array([1]), 3) == pytest.approx(1 / 12)
    assert np.isnan(average_precision(np.array([]), 0))
    # mP@k: positives at 1-based ranks 2 and 4; k=1 -> 0/1, k=5 -> limit min(4, 5) -> 2/4
    assert precision_at_k(np.array([1, 3]), [1, 5, 10]).tolist() == [0.0, 0.5, 0.5]


def test_junk_is_removed_from_the_ranking() -> None:
    ranking = np.array([7, 3, 0, 9, 1, 5])  # 7 junk, 0 and 1 positives
    assert positive_ranks(ranking, np.array([0, 1]), np.array([7])).tolist() == [1, 3]
    assert positive_ranks(ranking, np.array([0, 1]), np.array([])).tolist() == [2, 4]


def test_ranking_until_sorts_only_down_to_the_worst_positive() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.5, 0.2, 0.95])
    # positive 3 scores 0.5; the tie with 2 goes by database order; 0 and 4 are never sorted
    assert ranking_until(scores, np.array([3])).tolist() == [5, 1, 2, 3]


def test_fast_map_equals_revisitop_compute_map() -> None:
    rng = np.random.default_rng(1)
    queries, database = rng.normal(size=(12, 16)), rng.normal(size=(80, 16))
    gt = GroundTruth(
        easy=[rng.choice(80, rng.integers(0, 4), replace=False) for _ in range(12)],
        hard=[rng.choice(80, rng.integers(0, 4), replace=False) for _ in range(12)],
        junk=[rng.choice(80, rng.integers(0, 6), replace=False) for _ in range(12)],
    )
    gt.hard = [np.setdiff1d(h, e) for e, h in zip(gt.easy, gt.hard, strict=True)]
    gt.junk = [np.setdiff1d(j, np.union1d(e, h))
               for e, h, j in zip(gt.easy, gt.hard, gt.junk, strict=True)]
    full = np.argsort(-(queries @ database.T), axis=1).T  # [Ndb, Nq] as revisitop's ranks
    everything = [np.union1d(e, h) for e, h in zip(gt.easy, gt.hard, strict=True)]
    rankings = query_rankings(queries.astype(np.float32), database.astype(np.float32),
                              everything)
    for level in ("easy", "medium", "hard"):
        positives, junk = gt.protocol(level)
        ref = revisitop_compute_map(full, [{"ok": p, "junk": j}
                                           for p, j in zip(positives, junk, strict=True)],
                                    [1, 5, 10])
        ours = mean_average_precision(rankings, positives, junk, [1, 5, 10])
        assert ours[0] == pytest.approx(ref[0], abs=1e-9)
        np.testing.assert_allclose(ours[1], ref[2], atol=1e-9)
        np.testing.assert_allclose(ours[2], ref[1], atol=1e-9)


def test_standard_ap_equals_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=50)
    labels = np.zeros(50, dtype=bool)
    labels[rng.choice(50, 7, replace=False)] = True
    ranking = ranking_until(scores, np.flatnonzero(labels))
    ranks = positive_ranks(ranking, np.flatnonzero(labels), np.array([]))
    assert average_precision(ranks, 7, "standard") == pytest.approx(
        average_precision_score(labels, scores))


def test_recall_at_k_skips_junk_and_queries_without_positives() -> None:
    ids = np.array([[4, 2, 0, 1], [3, 1, 2, 0], [0, 1, 2, 3]])
    positives = [np.array([0]), np.array([3, 2]), np.array([], dtype=np.int64)]
    junk = [np.array([4, 2]), np.array([]), np.array([])]
    out = recall_at_k(ids, positives, junk, [1, 2])
    # query 0: junk 4 and 2 removed -> 0 first; query 1: 3 first; query 2: no positive
    assert out[0].tolist() == [1.0, 1.0]
    assert out[1].tolist() == [1.0, 1.0]
    assert np.isnan(out[2]).all()
    fraction = recall_at_k(ids, positives, junk, [1, 3], mode="fraction")
    assert fraction[1].tolist() == [0.5, 1.0]


def test_faiss_indices_and_squared_l2() -> None:
    rng = np.random.default_rng(3)
    database = rng.normal(size=(200, 8)).astype(np.float32)
    queries = database[:5] + 0.01
    for kind in ("flat", "ivf", "hnsw"):
        index = build_index(database, "l2", kind, nlist=4, nprobe=4)
        distances, ids = knn_search(index, queries, 3, batch_size=2)
        assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
        # L2 indices return squared distances: 8 dimensions x 0.01^2
        assert distances[:, 0] == pytest.approx(np.full(5, 8e-4), rel=1e-2)


def test_exact_search_matches_faiss_flat() -> None:
    rng = np.random.default_rng(4)
    database = rng.normal(size=(300, 12)).astype(np.float32)
    queries = rng.normal(size=(7, 12)).astype(np.float32)
    for metric in ("ip", "l2"):
        faiss_scores, faiss_ids = knn_search(build_index(database, metric), queries, 5)
        scores, ids = exact_search(queries, database, 5, metric, batch_size=3)
        np.testing.assert_array_equal(ids, faiss_ids)
        np.testing.assert_allclose(scores, faiss_scores, rtol=1e-4, atol=1e-4)


def test_exact_search_in_database_blocks_equals_one_full_sort() -> None:
    # Reference: every score of similarity(), ranked by a stable full sort (ties: database
    # order); blocks of 7 rows (43 blocks, the last one short) must give the same ids and
    # the same scores up to float32 rounding (BLAS sums in an order that depends on the
    # shape of the product).
    rng = np.random.default_rng(5)
    database = rng.normal(size=(300, 12)).astype(np.float32)
    queries = rng.normal(size=(9, 12)).astype(np.float32)
    for metric in ("ip", "l2"):
        full = similarity(torch.from_numpy(queries), torch.from_numpy(database), metric).numpy()
        order = np.argsort(-full, axis=1, kind="stable")[:, :6]
        expected = np.take_along_axis(full, order, axis=1) * (1 if metric == "ip" else -1)
        for block in (7, 300):
            scores, ids = exact_search(queries, database, 6, metric, batch_size=4, db_block=block)
            np.testing.assert_array_equal(ids, order)
            np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-6)


def test_exact_search_ties_across_blocks_keep_database_order() -> None:
    # The same vector at rows 1, 3, 5 and 7 (one per block of 2): all four tie; the others
    # point away from the query.
    database = np.tile(np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32), (4, 1))
    scores, ids = exact_search(np.array([[1.0, 0.0]], dtype=np.float32), database, 4,
                               db_block=2)
    assert ids.tolist() == [[1, 3, 5, 7]]
    assert scores.tolist() == [[1.0, 1.0, 1.0, 1.0]]


def test_exact_search_ranks_equal_scores_in_one_block_by_database_id() -> None:
    # 40 copies of the query spread over one block of 400 rows tie at the top. Ranked by
    # database id (a stable full sort's order); faiss's flat index gives the same ids in
    # ascending order for L2 and in descending order for inner products. Small integers:
    # every score is exact whatever order a CPU's kernels sum in, so the ties are exact.
    rng = np.random.default_rng(6)
    database = rng.integers(-3, 4, size=(400, 8)).astype(np.float32)
    copies = sorted(rng.permutation(400)[:40].tolist())
    query = (5 * rng.choice([-1, 1], size=(1, 8))).astype(np.float32)  # |q|^2 200 > q.x <= 120
    database[copies] = query
    for metric, faiss_order in (("ip", copies[::-1]), ("l2", copies)):
        faiss_ids = knn_search(build_index(database, metric), query, 40)[1]
        scores, ids = exact_search(query, database, 40, metric)
        assert ids.tolist() == [copies] and faiss_ids.tolist() == [faiss_order]
        assert len(set(scores[0].tolist())) == 1


def test_faiss_batches_reach_its_blas_threshold() -> None:
    # faiss multiplies matrices when queries x dim >= distance_compute_blas_threshold
    # (128,000 by default: 500 queries of dimension 256, 2,000 of dimension 64)
    threshold = faiss.cvar.distance_compute_blas_threshold
    for dim in (64, 256, 300):
        assert blas_batch(dim) * dim >= threshold > (blas_batch(dim) - 1) * dim
    if threshold == 128_000:
        assert (blas_batch(256), blas_batch(64)) == (500, 2000)


def test_bad_descriptors() -> None:
    with pytest.raises(ContractError, match="dimension 4, database descriptors 3"):
        check_descriptors(np.zeros((2, 4)), np.zeros((5, 3)))
    nan = np.zeros((2, 4))
    nan[1, 2] = np.nan
    with pytest.raises(ContractError, match="1 query descriptors contain NaN"):
        check_descriptors(nan, np.zeros((5, 4)))


def _angles(degrees: list[float]) -> torch.Tensor:
    radians = np.radians(degrees)
    return torch.tensor(np.stack([np.cos(radians), np.sin(radians)], axis=1), dtype=torch.float32)


def _feed(metric, descriptors: torch.Tensor, is_query: list[bool], index: list[int],
          **extra) -> None:
    """Feed in two batches, in a shuffled order, as the runner would."""
    order = [3, 0, 5, 1, 7, 2, 6, 4] if len(index) == 8 else list(range(len(index)))[::-1]
    for part in (order[: len(order) // 2], order[len(order) // 2:]):
        batch = {"id": [f"{'q' if is_query[i] else 'd'}{index[i]}" for i in part],
                 "is_query": torch.tensor([is_query[i] for i in part]),
                 "index": torch.tensor([index[i] for i in part]),
                 "image": torch.zeros(len(part), 3, 4, 4)}
        for key, values in extra.items():
            picked = [values[i] for i in part]
            batch[key] = torch.stack(picked) if isinstance(values, torch.Tensor) else picked
        metric.update(descriptors[part], batch)


def test_metric_shells_by_hand() -> None:
    # q0 at 0 deg; database d2 (junk) 0, d3 10, d0 (easy) 20, d4 30, d1 (hard) 40, d5 50 deg
    # q1 has no positive: reported and excluded
    desc = _angles([0, 90, 20, 40, 0, 10, 30, 50])
    is_query = [True, True] + [False] * 6
    index = [0, 1, 0, 1, 2, 3, 4, 5]
    extra = {"easy": [[0], [], [], [], [], [], [], []], "hard": [[1], [], [], [], [], [], [], []],
             "junk": [[2], [], [], [], [], [], [], []]}
    retrieval, revisitop = RetrievalMetric(), RevisitopMetric()
    for metric in (retrieval, revisitop):
        _feed(metric, desc, is_query, index, **extra)
    out = retrieval.compute()
    # without junk: d3, d0, d4, d1, d5 -> positives at ranks 1 and 3
    assert out["recall@1"] == 0.0 and out["recall@5"] == 1.0
    assert out["mAP"] == pytest.approx((0 + 1 / 2) / 4 + (1 / 3 + 1 / 2) / 4)
    assert retrieval.details()["retrieval"]["queries_without_positive"] == [1]
    rev = revisitop.compute()
    assert rev["mAP_medium"] == pytest.approx(1 / 3)
    assert rev["mAP_easy"] == pytest.approx(0.25)  # d1 junk: d3, d0 -> rank 1
    assert rev["mAP_hard"] == pytest.approx(1 / 6)  # d0 junk: d3, d4, d1 -> rank 2
    assert [rev["mP@1_medium"], rev["mP@5_medium"], rev["mP@5_hard"]] == pytest.approx(
        [0.0, 0.5, 1 / 3])
    # per query (the paired intervals of `compare`): q1 has no positive, so no value
    assert retrieval.per_sample_key == {"recall@1": "recall@1", "recall@5": "recall@5",
                                        "recall@10": "recall@10", "mAP": "AP"}
    assert retrieval.set_records() == {
        "q0": {"AP": pytest.approx(1 / 3), "recall@1": 0.0, "recall@5": 1.0, "recall@10": 1.0},
        "q1": {"AP": None, "recall@1": None, "recall@5": None, "recall@10": None}}
    records = revisitop.set_records()
    assert revisitop.per_sample_key["mP@5_hard"] == "P@5_hard"
    assert [records["q0"][key] for key in ("AP_easy", "AP_medium", "AP_hard", "P@5_hard")] == (
        pytest.approx([0.25, 1 / 3, 1 / 6, 1 / 3]))
    assert set(records["q1"].values()) == {None}
    standard = RetrievalMetric(ap="standard")
    _feed(standard, desc, is_query, index, **extra)
    assert standard.compute()["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_limited_run_scores_the_images_it_saw() -> None:
    # database images 1 and 3 only: the positive (0) was not seen, the hard one (3) was
    metric = RetrievalMetric(ks=[1])
    metric.update(_angles([0, 50, 10]), {"id": ["q0", "d1", "d3"],
                                         "is_query": torch.tensor([True, False, False]),
                                         "index": torch.tensor([0, 1, 3]),
                                         "easy": [[0], [], []], "hard": [[3], [], []],
                                         "junk": [[], [], []],
                                         "image": torch.zeros(3, 3, 4, 4)})
    assert metric.compute() == {"recall@1": 1.0, "mAP": 1.0}
    queries_only = RetrievalMetric()
    queries_only.update(_angles([0]), {"id": ["q0"], "is_query": torch.tensor([True]),
                                       "index": torch.tensor([0]), "easy": [[0]],
                                       "hard": [[]], "junk": [[]],
                                       "image": torch.zeros(1, 3, 4, 4)})
    assert all(np.isnan(v) for v in queries_only.compute().values())


def test_localization_by_hand() -> None:
    # database east 0, 10, 20, 30, 40 m; q0 at east 2 m, q1 at 100 m (no database within 25 m)
    positions = torch.tensor([[2.0, 0], [100, 0], [0, 0], [10, 0], [20, 0], [30, 0], [40, 0]],
                             dtype=torch.float64)
    desc = _angles([0, 90, 80, 60, 10, 45, 5])
    is_query = [True, True] + [False] * 5
    index = [0, 1, 0, 1, 2, 3, 4]
    metric = LocalizationMetric(ks=[1, 5])
    _feed(metric, desc, is_query, index, position=positions)
    out = metric.compute()
    # q0 retrieves 40 m (38 m away), then 20 m (18 m away); q1 retrieves 0 m (100 m away)
    assert out["recall@1"] == 0.0 and out["recall@5"] == 1.0
    assert out["median_error_m"] == pytest.approx((38 + 100) / 2)
    assert metric.details()["localization"]["queries_without_positive"] == [1]
    assert metric.set_records() == {
        "q0": {"recall@1": 0.0, "recall@5": 1.0, "top1_error_m": pytest.approx(38.0)},
        "q1": {"recall@1": None, "recall@5": None, "top1_error_m": pytest.approx(100.0)}}
    miss = LocalizationMetric(ks=[1, 5], no_positive="miss")
    _feed(miss, desc, is_query, index, position=positions)
    assert miss.compute()["recall@5"] == 0.5
    assert miss.set_records()["q1"]["recall@5"] == 0.0


def test_recall_within_is_inclusive() -> None:
    distances = retrieved_distances(np.array([[1, 0, -1]]), np.array([[0.0, 0.0]]),
                                    np.array([[25.0, 0.0], [0.0, 25.0001]]))
    assert distances[0, 2] == np.inf
    assert recall_within(distances, [1, 3], 25.0).tolist() == [[0.0, 1.0]]
