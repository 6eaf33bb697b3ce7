"""Image-based localization metrics: recall@k within d metres and median position error.

Follows NetVLAD's Pittsburgh protocol (Arandjelovic et al. 2016): a query counts as
localized at k when any of its first k retrieved database images lies within ``d`` metres
(inclusive, 25 m by default). The median position error is the distance between the query
and its top-1 database image, over all queries. Queries with no database image within d
are reported and excluded from recall (``no_positive: exclude``, as revisitop excludes
queries without positives) or counted as misses (``no_positive: miss``).
"""

from __future__ import annotations

from typing import Any

from bench.lazy import lazy_import
from bench.metrics.retrieval import DescriptorMetric, check_descriptors, check_ks
from bench.registry import METRICS

np = lazy_import("numpy")
torch = lazy_import("torch")


def positives_within(query_pos: np.ndarray, db_pos: np.ndarray, radius: float) -> np.ndarray:
    """Number of database positions within ``radius`` metres (inclusive) of each query [Nq]."""
    from scipy.spatial import cKDTree  # here, not at the top: `arbench validate` stays light

    tree = cKDTree(db_pos)
    return np.asarray(tree.query_ball_point(query_pos, r=radius, return_length=True))


def retrieved_distances(ids: np.ndarray, query_pos: np.ndarray, db_pos: np.ndarray) -> np.ndarray:
    """Distances in metres [Nq, K] from each query to its ranked database images (inf: none)."""
    dist = np.linalg.norm(db_pos[np.where(ids >= 0, ids, 0)] - query_pos[:, None, :], axis=2)
    return np.where(ids >= 0, dist, np.inf)


def recall_within(distances: np.ndarray, ks: list[int], radius: float) -> np.ndarray:
    """[Nq, len(ks)]: 1.0 when any of the first k retrieved images is within ``radius``."""
    close = np.logical_or.accumulate(distances <= radius, axis=1)
    return np.stack([close[:, min(k, close.shape[1]) - 1] for k in ks], axis=1).astype(float)


@METRICS.register("localization")
class LocalizationMetric(DescriptorMetric):
    """recall@k within d metres (NetVLAD protocol) and median top-1 position error (m)."""

    figure_name = "localization_top5.png"

    @classmethod
    def declare(cls, ks: list[int] = (1, 5, 10), threshold_m: float = 25.0,
                no_positive: str = "exclude", **kwargs: Any) -> dict[str, bool]:
        super().declare(**kwargs)
        sorted_ks = check_ks(ks)
        if float(threshold_m) <= 0:
            raise ValueError(f"threshold_m must be positive, got {threshold_m}")
        if no_positive not in ("exclude", "miss"):
            raise ValueError(f"no_positive must be 'exclude' or 'miss', got {no_positive!r}")
        return {f"recall@{k}": True for k in sorted_ks} | {"median_error_m": False}

    def __init__(self, ks: list[int] = (1, 5, 10), threshold_m: float = 25.0,
                 no_positive: str = "exclude", **kwargs: Any) -> None:
        outputs = self.declare(ks=ks, threshold_m=threshold_m, no_positive=no_positive,
                               **kwargs)
        super().__init__(**kwargs)
        self.ks = sorted(int(k) for k in ks)
        self.threshold, self.no_positive = float(threshold_m), no_positive
        for role in ("query", "db"):
            self.add_state(f"{role}_pos", torch.zeros(0, 2, dtype=torch.float64), "cat")
        self.higher_is_better = outputs
        self.per_sample_key = {f"recall@{k}": f"recall@{k}" for k in self.ks}

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        is_query = batch["is_query"].bool().to(batch["position"].device)
        for role, mask in (("query", is_query), ("db", ~is_query)):
            if mask.any():
                self.accumulate(f"{role}_pos", batch["position"][mask].double())
        return super().update(pred, batch)

    def compute(self) -> dict[str, float]:
        if self.incomplete():
            return self.nan_outputs()
        queries, database = self.descriptors("query"), self.descriptors("db")
        check_descriptors(queries, database)
        query_pos, db_pos = self.ordered("query", "pos"), self.ordered("db", "pos")
        ids = self.search(queries, database, max(self.ks))
        distances = retrieved_distances(ids, query_pos, db_pos)
        recalls = recall_within(distances, self.ks, self.threshold)
        has_positive = positives_within(query_pos, db_pos, self.threshold) > 0
        counted = has_positive if self.no_positive == "exclude" else np.ones_like(has_positive)
        out = {f"recall@{k}": float(recalls[counted, c].mean()) if counted.any() else float("nan")
               for c, k in enumerate(self.ks)}
        out["median_error_m"] = float(np.median(distances[:, 0]))
        found = np.where(counted[:, None], recalls, np.nan)
        self._records = self.query_records(
            {f"recall@{k}": found[:, c] for c, k in enumerate(self.ks)}
            | {"top1_error_m": distances[:, 0]})
        self._details = {"localization": {
            "n_queries": len(queries), "n_database": len(database),
            "threshold_m": self.threshold,
            "queries_without_positive": np.flatnonzero(~has_positive).tolist(),
            "top1_error_m": [round(float(d), 3) for d in distances[:, 0]],
        }}
        top = ids[:, : min(5, ids.shape[1])]
        self._top = (top, distances[:, : top.shape[1]] <= self.threshold,
                     np.zeros(top.shape, dtype=bool))
        return out
