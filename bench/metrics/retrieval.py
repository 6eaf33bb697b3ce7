"""Image-retrieval metrics: recall@k, mAP, and the revisited Oxford/Paris protocols.

Functional versions first (numpy/torch on descriptor matrices and ground-truth lists),
then the stateful metric shells. Retrieval is not per-sample independent: the runner's
loop feeds query and database images alike, ``update`` concatenates their descriptors
(and the queries' ground truth) into ``cat`` states, and ``compute`` searches the
database with the queries: exactly (batched matrix products and top-k, the rankings of faiss's flat
indices, on the run's device) or with a faiss IVF / HNSW index when the spec asks.

Conventions (``docs/retrieval.md``):

- scores: inner product (``metric: ip``, on L2-normalised descriptors = cosine) or negative
  squared L2 distance (``metric: l2``; faiss L2 indices return squared distances);
- ranking ties are broken by database order (stable);
- junk images are removed from the ranking before anything is counted, as revisitop's
  ``compute_map`` does; a query with no positive is reported and excluded from the means;
- ``ap: revisitop`` (default) is revisitop's trapezoid AP, ``ap: standard`` the
  non-interpolated AP (scikit-learn's ``average_precision_score`` on untied scores);
- ``recall: any`` (default) counts a query as found at k when any positive is among the
  first k results; ``recall: fraction`` is the information-retrieval recall.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import ContractError
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.registry import METRICS

faiss = lazy_import("faiss")
np = lazy_import("numpy")
torch = lazy_import("torch")

EASY, HARD, JUNK = 0, 1, 2
LEVELS = ("easy", "medium", "hard")
INDEX_KINDS = ("flat", "ivf", "hnsw")


@dataclass
class GroundTruth:
    """Per query: database indices of easy and hard positives and of junk images."""

    easy: list[np.ndarray]
    hard: list[np.ndarray]
    junk: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.easy)

    def protocol(self, level: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(positives, junk) per query under revisitop's easy / medium / hard protocol.

        easy: positives easy, junk junk+hard; medium: positives easy+hard, junk junk;
        hard: positives hard, junk junk+easy.
        """
        if level == "easy":
            return self.easy, [np.union1d(j, h) for j, h in zip(self.junk, self.hard, strict=True)]
        if level == "medium":
            return [np.union1d(e, h) for e, h in zip(self.easy, self.hard, strict=True)], self.junk
        if level == "hard":
            return self.hard, [np.union1d(j, e) for j, e in zip(self.junk, self.easy, strict=True)]
        raise ValueError(f"revisitop level must be one of {LEVELS}, got {level!r}")

    @classmethod
    def from_triples(cls, triples: np.ndarray, n_queries: int) -> GroundTruth:
        """From rows (query index, database index, kind 0 easy / 1 hard / 2 junk)."""
        triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        order = np.lexsort((triples[:, 1], triples[:, 0]))
        triples = triples[order]
        lists: list[list[np.ndarray]] = [[], [], []]
        for kind in (EASY, HARD, JUNK):
            rows = triples[triples[:, 2] == kind]
            bounds = np.searchsorted(rows[:, 0], np.arange(n_queries + 1))
            lists[kind] = [rows[bounds[q]:bounds[q + 1], 1] for q in range(n_queries)]
        return cls(*lists)


def check_descriptors(queries: np.ndarray, database: np.ndarray) -> None:
    """Raise ContractError for 2-D shape, dimension mismatch or non-finite descriptors."""
    for name, array in (("query", queries), ("database", database)):
        if array.ndim != 2:
            raise ContractError(f"{name} descriptors must be [N, D], got shape {array.shape}")
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).any(axis=1).sum())
            raise ContractError(f"{bad} {name} descriptors contain NaN or infinite values")
    if queries.shape[1] != database.shape[1]:
        raise ContractError(
            f"query descriptors have dimension {queries.shape[1]}, database descriptors "
            f"{database.shape[1]}; they must match")


def build_index(
    database: np.ndarray, metric: str = "ip", index: str = "flat", nlist: int = 100,
    nprobe: int = 10, hnsw_m: int = 32, gpu: bool = True,
) -> faiss.Index:
    """A faiss index over ``database`` [N, D] float32: exact flat, IVF-flat or HNSW.

    ``metric`` ``ip`` (inner product) or ``l2`` (squared distances); the flat index moves
    to the GPU when faiss has GPU support and ``gpu`` is true.
    """
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    if index not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS}, got {index!r}")
    database = np.ascontiguousarray(database, dtype=np.float32)
    dim = database.shape[1]
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if index == "flat":
        result = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        if gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            result = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, result)
    elif index == "ivf":
        quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        result = faiss.IndexIVFFlat(quantizer, dim, min(nlist, len(database)), faiss_metric)
        result.train(database)
        result.nprobe = nprobe
    else:
        result = faiss.IndexHNSWFlat(dim, hnsw_m, faiss_metric)
    result.add(database)
    return result


def knn_search(
    index: faiss.Index, queries: np.ndarray, k: int, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best database entries per query, searched in query batches (bounded memory).

    Batches hold at least ``blas_batch(dim)`` queries: below that faiss's flat search takes
    its one-query-at-a-time SIMD path, several times slower than its BLAS path.
    Returns (scores [Nq, k], ids [Nq, k] int64, -1 where fewer than k exist). Scores are
    inner products, or squared L2 distances for an L2 index (smaller is better).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, index.ntotal)
    batch_size = max(batch_size, blas_batch(queries.shape[1]))
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        block = slice(start, start + batch_size)
        scores[block], ids[block] = index.search(queries[block], k)
    return scores, ids


def blas_batch(dim: int) -> int:
    """The fewest queries of dimension ``dim`` for which faiss's flat search uses BLAS: it
    multiplies matrices when queries x dim >= ``faiss.cvar.distance_compute_blas_threshold``
    (128,000 in faiss 1.8 to 1.15) and loops over queries otherwise."""
    return -(-int(faiss.cvar.distance_compute_blas_threshold) // max(dim, 1))


def exact_search(
    queries: np.ndarray, database: np.ndarray, k: int, metric: str = "ip",
    batch_size: int = 256, device: torch.device | str = "cpu", db_block: int = 131_072,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN by matrix products and a bounded top-k per block (the rankings of faiss's
    IndexFlatIP / IndexFlatL2 at the cost of the matrix product). Queries go in batches of
    ``batch_size`` and the database in blocks of ``db_block`` rows into one reused score
    buffer [batch_size, db_block] on ``device``; each block keeps its k best, merged
    across blocks. Equal scores are ranked by database id, a stable full sort's order
    (faiss's flat indices order them by id descending for inner products, ascending for
    L2); which of several equal scores at the k-th place are kept is ``torch.topk``'s
    choice. Returns (scores [Nq, k], ids [Nq, k]); for ``l2`` squared distances, ascending.
    """
    db = torch.from_numpy(np.ascontiguousarray(database, dtype=np.float32)).to(device)
    k = min(k, len(db))
    db_norms = (db * db).sum(dim=1) if metric == "l2" else None
    buffer = torch.empty(min(batch_size, len(queries)), min(db_block, len(db)),
                         device=db.device)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        block = torch.from_numpy(np.ascontiguousarray(queries[start:start + batch_size],
                                                      dtype=np.float32)).to(device)
        values, indices = _block_topk(block, db, db_norms, k, buffer, metric)
        if metric == "l2":
            values = values.neg_()
        scores[start:start + len(block)] = values.cpu().numpy()
        ids[start:start + len(block)] = indices.cpu().numpy()
    return scores, ids


def _block_topk(queries: torch.Tensor, db: torch.Tensor, db_norms: torch.Tensor | None, k: int,
                buffer: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The k highest scores [Nq, k] (``similarity``'s values, bit for bit) and their
    database ids, one database block of ``buffer``'s width at a time."""
    query_norms = (queries * queries).sum(dim=1, keepdim=True) if metric == "l2" else None
    kept_values, kept_ids = [], []
    width = buffer.shape[1]
    for first in range(0, len(db), width):
        chunk = db[first:first + width]
        scores = buffer[:len(queries), :len(chunk)]
        torch.mm(queries, chunk.T, out=scores)
        if metric == "l2":
            # 2 p - |q|^2 - |d|^2 in similarity's order, in place
            scores.mul_(2.0).sub_(query_norms).sub_(db_norms[first:first + width])
        top = scores.topk(min(k, len(chunk)), dim=1)
        kept_values.append(top.values)
        kept_ids.append(top.indices + first)
    values, ids = torch.cat(kept_values, dim=1), torch.cat(kept_ids, dim=1)
    # equal scores in database order: ids ascending, then a stable sort by score
    by_id = ids.argsort(dim=1)
    values, ids = values.gather(1, by_id), ids.gather(1, by_id)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return values.gather(1, order), ids.gather(1, order)


def similarity(queries: torch.Tensor, database: torch.Tensor, metric: str = "ip") -> torch.Tensor:
    """Scores [Nq, Ndb], higher is better: inner products or negative squared L2 distances."""
    products = queries @ database.T
    if metric == "ip":
        return products
    q2 = (queries * queries).sum(dim=1, keepdim=True)
    d2 = (database * database).sum(dim=1)
    return 2.0 * products - q2 - d2


def ranking_until(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Database indices ranked by descending score (ties: database order), cut after the
    last positive: only the entries scoring at least the worst positive are sorted."""
    if len(positives) == 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero(scores >= scores[positives].min())
    return candidates[np.lexsort((candidates, -scores[candidates]))]


def positive_ranks(ranking: np.ndarray, positives: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """0-based ranks of the positives in ``ranking`` once junk images are removed (sorted)."""
    kept = ranking[~np.isin(ranking, junk)] if len(junk) else ranking
    return np.flatnonzero(np.isin(kept, positives))


def average_precision(ranks: np.ndarray, n_positives: int, kind: str = "revisitop") -> float:
    """AP from the sorted 0-based ranks of the retrieved positives (missing ones count 0).

    ``revisitop``: trapezoids of the precision-recall curve, precision at recall step j
    averaged between j/rank (1 at rank 0) and (j+1)/(rank+1), as revisitop's compute_ap;
    ``standard``: mean over positives of the precision at their rank, (j+1)/(rank+1).
    """
    if n_positives == 0:
        return float("nan")
    ranks = np.asarray(ranks, dtype=np.float64)
    hits = np.arange(len(ranks), dtype=np.float64)
    after = (hits + 1.0) / (ranks + 1.0)
    if kind == "standard":
        return float(after.sum() / n_positives)
    if kind != "revisitop":
        raise ValueError(f"ap must be 'revisitop' or 'standard', got {kind!r}")
    before = np.where(ranks == 0, 1.0, hits / np.maximum(ranks, 1.0))
    return float(((before + after) / 2.0).sum() / n_positives)


def precision_at_k(ranks: np.ndarray, ks: list[int]) -> np.ndarray:
    """revisitop's mP@k for one query: hits among the first min(k, last positive's 1-based
    rank) results divided by that number; [len(ks)]."""
    if len(ranks) == 0:
        return np.zeros(len(ks))
    one_based = np.asarray(ranks) + 1
    limits = np.minimum(one_based.max(), np.asarray(ks))
    return (one_based[None, :] <= limits[:, None]).sum(axis=1) / limits


def query_rankings(
    queries: np.ndarray, database: np.ndarray, positives: list[np.ndarray], metric: str = "ip",
    index: faiss.Index | None = None, depth: int = 1000, batch_size: int = 256,
) -> list[np.ndarray]:
    """Per query the database ranking up to its last positive.

    With ``index`` None the ranking is exact (scores from a batched matrix product, only
    the part down to the worst-scored positive sorted); with an approximate faiss index it
    is the index's first ``depth`` results (positives beyond them are not retrieved).
    """
    rankings: list[np.ndarray] = []
    if index is not None:
        _, ids = knn_search(index, queries, depth)
        return [row[row >= 0] for row in ids]
    db = torch.from_numpy(np.ascontiguousarray(database, dtype=np.float32))
    for start in range(0, len(queries), batch_size):
        block = torch.from_numpy(np.ascontiguousarray(queries[start:start + batch_size],
                                                      dtype=np.float32))
        scores = similarity(block, db, metric).numpy()
        for row, q in zip(scores, range(start, start + len(block)), strict=True):
            rankings.append(ranking_until(row, positives[q]))
    return rankings


def mean_average_precision(
    rankings: list[np.ndarray], positives: list[np.ndarray], junk: list[np.ndarray],
    ks: list[int] = (1, 5, 10), ap: str = "revisitop",
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(mAP, mP@k [len(ks)], AP per query [Nq] (NaN: no positive), P@k per query [Nq, K]).

    Queries without positives are excluded from the means, as revisitop's compute_map does.
    """
    ks = list(ks)
    aps = np.full(len(rankings), np.nan)
    prs = np.full((len(rankings), len(ks)), np.nan)
    for q, ranking in enumerate(rankings):
        if len(positives[q]) == 0:
            continue
        ranks = positive_ranks(ranking, positives[q], junk[q])
        aps[q] = average_precision(ranks, len(positives[q]), ap)
        prs[q] = precision_at_k(ranks, ks)
    valid = ~np.isnan(aps)
    if not valid.any():
        return float("nan"), np.full(len(ks), np.nan), aps, prs
    return float(aps[valid].mean()), prs[valid].mean(axis=0), aps, prs


def recall_at_k(
    ids: np.ndarray, positives: list[np.ndarray], junk: list[np.ndarray], ks: list[int],
    mode: str = "any",
) -> np.ndarray:
    """Per query and k [Nq, len(ks)]: ``any`` 1.0 when a positive is among the first k
    non-junk results, ``fraction`` the share of the query's positives found there; NaN for
    a query without positives. ``ids`` [Nq, K] ranked results (-1 = none)."""
    if mode not in ("any", "fraction"):
        raise ValueError(f"recall must be 'any' or 'fraction', got {mode!r}")
    n_db = int(ids.max()) + 1 if ids.size else 1
    n_db = max(n_db, *(int(p.max()) + 1 for p in positives if len(p)), 1)
    n_db = max(n_db, *(int(j.max()) + 1 for j in junk if len(j)), 1)
    rows = np.arange(len(ids))[:, None]
    keys = rows * n_db + np.where(ids >= 0, ids, 0)
    pos_keys = _keys(positives, n_db)
    junk_keys = _keys(junk, n_db)
    is_junk = np.isin(keys, junk_keys) | (ids < 0)
    is_pos = np.isin(keys, pos_keys) & ~is_junk
    # rank among non-junk results, so a junk image never takes one of the k places
    position = np.cumsum(~is_junk, axis=1) - 1
    n_pos = np.array([len(p) for p in positives], dtype=np.float64)
    out = np.empty((len(ids), len(ks)))
    for column, k in enumerate(ks):
        found = (is_pos & (position < k)).sum(axis=1)
        out[:, column] = found > 0 if mode == "any" else found / np.maximum(n_pos, 1)
    out[n_pos == 0] = np.nan
    return out


def _keys(lists: list[np.ndarray], n_db: int) -> np.ndarray:
    if not lists:
        return np.empty(0, dtype=np.int64)
    sizes = np.array([len(x) for x in lists])
    values = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if sizes.sum() else (
        np.empty(0, dtype=np.int64))
    return np.repeat(np.arange(len(lists)), sizes) * n_db + values


def search_depth(ks: list[int], junk: list[np.ndarray], n_db: int) -> int:
    """How many results to fetch so that max(ks) non-junk results remain for every query."""
    most_junk = max((len(j) for j in junk), default=0)
    return min(n_db, max(ks) + most_junk)


def check_ks(ks: list[int]) -> list[int]:
    """The cut-offs ``ks`` as sorted ints; ValueError unless there is one and all are >= 1."""
    sorted_ks = sorted(int(k) for k in ks)
    if not sorted_ks or sorted_ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    return sorted_ks


class DescriptorMetric(Metric):
    """Collects query and database descriptors (``cat`` states) for search in ``compute``.

    Samples carry ``is_query`` (bool) and ``index`` (position among the queries or among
    the database images); descriptors are stored by that index so that any batching or
    sharding gives the same matrices. ``figure_queries`` > 0 also keeps small thumbnails
    for the figure of queries and their top-5 results (subclasses set ``figure_name`` and,
    in ``compute``, ``_top``; ``_details`` is what ``details()`` returns).
    """

    figure_name = ""

    @classmethod
    def declare(cls, metric: str = "ip", index: str = "flat", nlist: int = 100,
                nprobe: int = 10, hnsw_m: int = 32, figure_queries: int = 0,
                thumb: int = 64) -> dict[str, bool]:
        """Checks the search parameters; the subclasses' ``declare`` name the outputs."""
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
        if index not in INDEX_KINDS:
            raise ValueError(f"index must be one of {INDEX_KINDS}, got {index!r}")
        return {}

    def __init__(self, metric: str = "ip", index: str = "flat", nlist: int = 100,
                 nprobe: int = 10, hnsw_m: int = 32, figure_queries: int = 0,
                 thumb: int = 64) -> None:
        super().__init__()
        self.metric, self.index_kind = metric, index
        self.nlist, self.nprobe, self.hnsw_m = int(nlist), int(nprobe), int(hnsw_m)
        self.figure_queries, self.thumb = int(figure_queries), int(thumb)
        self._details: dict[str, Any] = {}
        self._records: dict[str, dict[str, float | None]] = {}
        self._top: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.add_object_state("query_ids", "union")
        for role in ("query", "db"):
            self.add_state(f"{role}_desc", torch.zeros(0, 0), "cat")
            self.add_state(f"{role}_index", torch.zeros(0, dtype=torch.int64), "cat")
            if self.figure_queries:
                self.add_state(f"{role}_thumb", torch.zeros(0, 3, self.thumb, self.thumb,
                                                            dtype=torch.uint8), "cat")
                self.add_state(f"{role}_thumb_index", torch.zeros(0, dtype=torch.int64), "cat")

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        is_query = batch["is_query"].bool().to(pred.device)
        index = batch["index"].long().to(pred.device)
        for role, mask in (("query", is_query), ("db", ~is_query)):
            if mask.any():
                self.accumulate(f"{role}_desc", pred[mask].float())
                self.accumulate(f"{role}_index", index[mask])
        self.accumulate("query_ids", {position: sample_id for position, sample_id, flag in zip(
            index.tolist(), batch["id"], is_query.tolist(), strict=True) if flag})
        if self.figure_queries:
            self._keep_thumbnails(batch, is_query, index)
        return {}

    def _keep_thumbnails(self, batch: dict[str, Any], is_query: torch.Tensor,
                         index: torch.Tensor) -> None:
        images = batch["image"]
        for i in range(len(index)):
            if bool(is_query[i]) and int(index[i]) >= self.figure_queries:
                continue
            image = images[i][None].float()
            if image.shape[1] == 1:
                image = image.expand(-1, 3, -1, -1)
            small = torch.nn.functional.interpolate(image[:, :3], size=(self.thumb, self.thumb),
                                                    mode="area")
            role = "query" if bool(is_query[i]) else "db"
            self.accumulate(f"{role}_thumb", (small * 255).round().clamp(0, 255).to(torch.uint8))
            self.accumulate(f"{role}_thumb_index", index[i:i + 1])

    def ordered(self, role: str, name: str) -> np.ndarray:
        """State ``<role>_<name>`` (stored in batch order) sorted by image index."""
        order = torch.argsort(self.state(f"{role}_index"))
        return self.state(f"{role}_{name}")[order].cpu().numpy()

    def seen(self, role: str) -> np.ndarray:
        """The sorted indices of the ``query`` or ``db`` images evaluated (all of them unless
        the run was limited with ``--limit``)."""
        return np.sort(self.state(f"{role}_index").cpu().numpy())

    def incomplete(self) -> bool:
        """True when no query or no database image was evaluated (outputs are then NaN)."""
        return len(self.seen("query")) == 0 or len(self.seen("db")) == 0

    def nan_outputs(self) -> dict[str, float]:
        """Every output NaN, for a run that saw no query or no database image."""
        self._details = {"partial": "no query or no database image was evaluated"}
        return {key: float("nan") for key in self.higher_is_better}

    def descriptors(self, role: str) -> np.ndarray:
        """The collected descriptors of ``query`` or ``db`` images in index order [N, D]."""
        return self.ordered(role, "desc").astype(np.float32)

    def thumbnails(self, role: str) -> dict[int, np.ndarray]:
        """Thumbnails (uint8 [t, t, 3]) by query or database index."""
        thumbs = self.state(f"{role}_thumb").cpu().numpy().transpose(0, 2, 3, 1)
        return dict(zip(self.state(f"{role}_thumb_index").tolist(), thumbs, strict=True))

    def search(self, queries: np.ndarray, database: np.ndarray, k: int) -> np.ndarray:
        """Ranked database ids [Nq, k]: exact search for ``index: flat``, else the spec's
        faiss index (IVF or HNSW)."""
        check_descriptors(queries, database)
        if self.index_kind == "flat":
            device = self._defaults["query_index"].device
            return exact_search(queries, database, k, self.metric, device=device)[1]
        return knn_search(self.faiss_index(database), queries, k)[1]

    def faiss_index(self, database: np.ndarray) -> faiss.Index:
        """The spec's approximate faiss index over ``database``."""
        return build_index(database, self.metric, self.index_kind, self.nlist, self.nprobe,
                           self.hnsw_m)

    def details(self) -> dict[str, Any]:
        return self._details

    def query_records(self, columns: dict[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
        """Per evaluated query (by sample id, in index order) its value of each column [Nq]
        (NaN -> None: the query is not counted in that mean)."""
        ids = self.state("query_ids")
        return {ids[position]: {key: None if np.isnan(values[q]) else float(values[q])
                                for key, values in columns.items()}
                for q, position in enumerate(self.seen("query").tolist())}

    def set_records(self) -> dict[str, dict[str, float | None]]:
        return self._records

    def figures(self, out_dir: Path) -> list[Path]:
        if not (self.figure_queries and self.figure_name) or self._top is None:
            return []
        return self.figure_rows(*self._top, out_dir, self.figure_name)

    def figure_rows(self, ids: np.ndarray, correct: np.ndarray, junk: np.ndarray,
                    out_dir: Path, name: str) -> list[Path]:
        """PNG of the first queries (left) and their top-5: correct framed green, wrong red,
        junk grey; each tile captioned. ``correct``/``junk`` are booleans [Nq, 5] aligned
        with ``ids``. Composed with numpy and OpenCV (no plotting library needed)."""
        import cv2

        queries, db = self.thumbnails("query"), self.thumbnails("db")
        shown = [q for q in sorted(queries) if q < len(ids)][: self.figure_queries]
        if not shown:
            return []
        t, pad, caption, gap = self.thumb, 5, 14, 6
        cell_h, cell_w = t + 2 * pad + caption + gap, t + 2 * pad + gap
        canvas = np.full((len(shown) * cell_h, (1 + ids.shape[1]) * cell_w, 3), 255,
                         dtype=np.uint8)
        colours = {"green": (40, 200, 40), "red": (220, 30, 30), "grey": (150, 150, 150),
                   "none": (255, 255, 255)}

        def tile(row: int, col: int, image: np.ndarray | None, text: str, frame: str) -> None:
            y, x = row * cell_h + caption, col * cell_w
            canvas[y:y + t + 2 * pad, x:x + t + 2 * pad] = colours[frame]
            if image is not None:
                canvas[y + pad:y + pad + t, x + pad:x + pad + t] = image
            cv2.putText(canvas, text, (x + 2, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1, cv2.LINE_AA)

        for row, q in enumerate(shown):
            tile(row, 0, queries[q], f"query {q}", "none")
            for col in range(ids.shape[1]):
                db_id = int(ids[q, col])
                frame = "grey" if junk[q, col] else ("green" if correct[q, col] else "red")
                tile(row, col + 1, db.get(db_id), f"#{col + 1}: {db_id}", frame)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        return [path]


class _GroundTruthMetric(DescriptorMetric):
    """A descriptor metric whose queries carry ``easy``/``hard``/``junk`` database lists.

    ``ks``: cut-offs (sorted); ``ap``: ``revisitop`` (its compute_map) or ``standard``
    average precision; ``depth``: how many results are ranked per query for AP.
    """

    @classmethod
    def declare(cls, ks: list[int] = (1, 5, 10), ap: str = "revisitop", depth: int = 1000,
                **kwargs: Any) -> dict[str, bool]:
        """Checks the search parameters and ``ks`` and ``ap``; subclasses name the outputs."""
        super().declare(**kwargs)
        check_ks(ks)
        if ap not in ("revisitop", "standard"):
            raise ValueError(f"ap must be 'revisitop' or 'standard', got {ap!r}")
        return {}

    def __init__(self, ks: list[int] = (1, 5, 10), ap: str = "revisitop", depth: int = 1000,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ks = sorted(int(k) for k in ks)
        self.ap, self.depth = ap, int(depth)
        self.add_state("gt", torch.zeros(0, 3, dtype=torch.int64), "cat")

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        rows = []
        for i, flag in enumerate(batch["is_query"].tolist()):
            if not flag:
                continue
            q = int(batch["index"][i])
            for kind, key in ((EASY, "easy"), (HARD, "hard"), (JUNK, "junk")):
                items = np.asarray(batch[key][i], dtype=np.int64)
                rows.append(np.stack([np.full(len(items), q), items,
                                      np.full(len(items), kind)], axis=1))
        if rows:
            self.accumulate("gt", torch.from_numpy(np.concatenate(rows)).to(pred.device))
        return super().update(pred, batch)

    def ground_truth(self) -> GroundTruth:
        """The evaluated queries' ground truth over the evaluated database images, both
        renumbered in index order (a ``--limit`` run drops the database images not seen)."""
        triples = self.state("gt").cpu().numpy().reshape(-1, 3)
        queries, db = self.seen("query"), self.seen("db")
        triples = triples[np.isin(triples[:, 1], db)]
        triples[:, 0] = np.searchsorted(queries, triples[:, 0])
        triples[:, 1] = np.searchsorted(db, triples[:, 1])
        return GroundTruth.from_triples(triples, len(queries))


@METRICS.register("retrieval")
class RetrievalMetric(_GroundTruthMetric):
    """recall@k and mAP of global-descriptor retrieval (positives: easy + hard, junk ignored)."""

    figure_name = "retrieval_top5.png"

    @classmethod
    def declare(cls, ks: list[int] = (1, 5, 10), ap: str = "revisitop", recall: str = "any",
                depth: int = 1000, **kwargs: Any) -> dict[str, bool]:
        super().declare(ks=ks, ap=ap, depth=depth, **kwargs)
        if recall not in ("any", "fraction"):
            raise ValueError(f"recall must be 'any' or 'fraction', got {recall!r}")
        return {f"recall@{k}": True for k in check_ks(ks)} | {"mAP": True}

    def __init__(self, ks: list[int] = (1, 5, 10), ap: str = "revisitop", recall: str = "any",
                 depth: int = 1000, **kwargs: Any) -> None:
        outputs = self.declare(ks=ks, ap=ap, recall=recall, depth=depth, **kwargs)
        super().__init__(ks=ks, ap=ap, depth=depth, **kwargs)
        self.recall = recall
        self.higher_is_better = outputs
        self.per_sample_key = {f"recall@{k}": f"recall@{k}" for k in self.ks} | {"mAP": "AP"}

    def compute(self) -> dict[str, float]:
        if self.incomplete():
            return self.nan_outputs()
        queries, database = self.descriptors("query"), self.descriptors("db")
        check_descriptors(queries, database)
        gt = self.ground_truth()
        positives, junk = gt.protocol("medium")
        ids = self.search(queries, database, search_depth(self.ks, junk, len(database)))
        recalls = recall_at_k(ids, positives, junk, self.ks, self.recall)
        index = None if self.index_kind == "flat" else self.faiss_index(database)
        rankings = query_rankings(queries, database, positives, self.metric, index, self.depth)
        m_ap, _, aps, _ = mean_average_precision(rankings, positives, junk, self.ks, self.ap)
        valid = ~np.isnan(aps)
        self._details = {
            "retrieval": {
                "n_queries": len(queries), "n_database": len(database),
                "queries_without_positive": np.flatnonzero(~valid).tolist(),
                "ap_per_query": [None if np.isnan(a) else round(float(a), 6) for a in aps],
            }
        }
        self._records = self.query_records(
            {"AP": aps} | {f"recall@{k}": recalls[:, c] for c, k in enumerate(self.ks)})
        top = ids[:, : min(5, ids.shape[1])]
        self._top = (top, _membership(top, positives), _membership(top, junk))
        out = {f"recall@{k}": float(np.nanmean(recalls[:, c])) if valid.any() else float("nan")
               for c, k in enumerate(self.ks)}
        out["mAP"] = m_ap
        return out


@METRICS.register("revisitop")
class RevisitopMetric(_GroundTruthMetric):
    """Revisited Oxford/Paris: mAP and mP@k under the easy, medium and hard protocols."""

    @classmethod
    def declare(cls, ks: list[int] = (1, 5, 10), ap: str = "revisitop", depth: int = 1000,
                **kwargs: Any) -> dict[str, bool]:
        super().declare(ks=ks, ap=ap, depth=depth, **kwargs)
        outputs = {}
        for level in LEVELS:
            outputs[f"mAP_{level}"] = True
            for k in check_ks(ks):
                outputs[f"mP@{k}_{level}"] = True
        return outputs

    def __init__(self, ks: list[int] = (1, 5, 10), ap: str = "revisitop", depth: int = 1000,
                 **kwargs: Any) -> None:
        outputs = self.declare(ks=ks, ap=ap, depth=depth, **kwargs)
        super().__init__(ks=ks, ap=ap, depth=depth, **kwargs)
        self.higher_is_better = outputs
        for level in LEVELS:
            self.per_sample_key[f"mAP_{level}"] = f"AP_{level}"
            for k in self.ks:
                self.per_sample_key[f"mP@{k}_{level}"] = f"P@{k}_{level}"

    def compute(self) -> dict[str, float]:
        if self.incomplete():
            return self.nan_outputs()
        queries, database = self.descriptors("query"), self.descriptors("db")
        check_descriptors(queries, database)
        gt = self.ground_truth()
        index = None if self.index_kind == "flat" else self.faiss_index(database)
        everything = [np.union1d(e, h) for e, h in zip(gt.easy, gt.hard, strict=True)]
        rankings = query_rankings(queries, database, everything, self.metric, index, self.depth)
        out: dict[str, float] = {}
        self._details = {"revisitop": {}}
        columns: dict[str, np.ndarray] = {}
        for level in LEVELS:
            positives, junk = gt.protocol(level)
            m_ap, m_p, aps, prs = mean_average_precision(rankings, positives, junk, self.ks,
                                                         self.ap)
            columns[f"AP_{level}"] = aps
            columns.update({f"P@{k}_{level}": prs[:, c] for c, k in enumerate(self.ks)})
            out[f"mAP_{level}"] = m_ap
            for k, value in zip(self.ks, m_p, strict=True):
                out[f"mP@{k}_{level}"] = float(value)
            self._details["revisitop"][level] = {
                "queries_without_positive": np.flatnonzero(np.isnan(aps)).tolist(),
                "ap_per_query": [None if np.isnan(a) else round(float(a), 6) for a in aps],
            }
        self._records = self.query_records(columns)
        return out


def _membership(ids: np.ndarray, lists: list[np.ndarray]) -> np.ndarray:
    """Booleans [Nq, K]: whether ids[q, j] is in lists[q]."""
    return np.stack([np.isin(row, items) for row, items in zip(ids, lists, strict=True)]) if len(
        ids) else np.zeros(ids.shape, dtype=bool)
