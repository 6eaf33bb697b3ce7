"""Nearest neighbours between point sets: a KD-tree on CPU, chunked ``torch.cdist`` on GPU,
never an N x N matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from scipy.spatial import cKDTree


CHUNK = 4096


def _tree(points: np.ndarray) -> cKDTree:
    from scipy.spatial import cKDTree

    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def _query_in_leaf_order(tree: cKDTree, points: np.ndarray,
                         order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query ``points`` in ``order`` (spatially coherent: cache-friendly), unpermute."""
    dist, index = np.empty(len(points)), np.empty(len(points), dtype=np.int64)
    dist[order], index[order] = tree.query(points[order], k=1, workers=-1)
    return dist, index


def nearest_neighbours(source: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                       device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """For each source point [N,3], the distance to and index of its nearest target point.

    CPU: a KD-tree (scipy cKDTree, sliding-midpoint build, all cores). CUDA: exact chunked
    ``torch.cdist`` (memory bounded by CHUNK x M). Distances are Euclidean.
    """
    if torch.device(device).type == "cuda":
        return chunked_cdist(source, target, device)
    return _tree(np.asarray(target, dtype=np.float64)).query(
        np.asarray(source, dtype=np.float64), k=1, workers=-1)


def nearest_both_ways(a: np.ndarray, b: np.ndarray, device: str | torch.device = "cpu"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest neighbours a -> b and b -> a: (dist_ab, index_ab, dist_ba, index_ba).

    On CPU one KD-tree per set; each set queries the other's tree in its own tree's leaf
    order (``tree.indices``), which keeps consecutive queries close in space (~1.5x faster
    than random order on 100k points) and gives the same values.
    """
    if torch.device(device).type == "cuda":
        return (*chunked_cdist(a, b, device), *chunked_cdist(b, a, device))
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    tree_a, tree_b = _tree(a), _tree(b)
    dist_ab, index_ab = _query_in_leaf_order(tree_b, a, tree_a.indices)
    dist_ba, index_ba = _query_in_leaf_order(tree_a, b, tree_b.indices)
    return dist_ab, index_ab, dist_ba, index_ba


def chunked_cdist(source: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                  device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbours by float64 ``torch.cdist`` over CHUNK source rows at a time.

    float64 keeps the matrix-product form of ``cdist`` exact to ~1e-12 (float32 would be off
    by ~1e-6 near small distances and flip F-score decisions). Memory: CHUNK x M doubles.
    """
    src = torch.as_tensor(np.asarray(source), dtype=torch.float64, device=device)
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.float64, device=device)
    dists, index = [], []
    for chunk in src.split(CHUNK):
        d, i = torch.cdist(chunk, tgt).min(dim=1)
        dists.append(d)
        index.append(i)
    return torch.cat(dists).cpu().numpy(), torch.cat(index).cpu().numpy()
