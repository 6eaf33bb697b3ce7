"""Chamfer and F-score between two 100,000-point surface samples: arbench's nearest
neighbours against the reference approach (scipy cKDTree queried both ways, as Occupancy
Networks' eval does) and a chunked ``torch.cdist``; values must agree to 1e-6."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import open3d as o3d
import torch
from scipy.spatial import cKDTree

from bench.geometry.distances import chunked_cdist, nearest_neighbours
from bench.geometry.mesh import sample_surface
from bench.metrics.shape import pointcloud_metrics
from bench.registry import PERF_CASES
from bench.runner import pick_device

N_POINTS = 100_000
CDIST_CPU_POINTS = 10_000
THRESHOLD = 0.01


def _summary(to_gt: np.ndarray, to_pred: np.ndarray) -> dict[str, float]:
    precision, recall = float((to_gt < THRESHOLD).mean()), float((to_pred < THRESHOLD).mean())
    return {"chamfer_l1": 0.5 * (to_gt.mean() + to_pred.mean()),
            "chamfer_l2": 0.5 * ((to_gt ** 2).mean() + (to_pred ** 2).mean()),
            "fscore": 2 * precision * recall / (precision + recall) if precision + recall else 0}


def reference(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """OccNet's approach: a default cKDTree on each set, queried with the other (1 thread)."""
    to_gt, _ = cKDTree(gt).query(pred)
    to_pred, _ = cKDTree(pred).query(gt)
    return _summary(to_gt, to_pred)


def torch_cdist(pred: np.ndarray, gt: np.ndarray, device: torch.device) -> dict[str, float]:
    """Nearest neighbours by chunked ``torch.cdist`` (``chunked_cdist``), both ways."""
    return _summary(chunked_cdist(pred, gt, device)[0], chunked_cdist(gt, pred, device)[0])


def arbench(pred: np.ndarray, gt: np.ndarray, device: torch.device) -> dict[str, float]:
    """``pointcloud_metrics`` (KD-tree on CPU, chunked cdist on GPU)."""
    out = pointcloud_metrics(pred, gt, thresholds=(THRESHOLD,), device=device)
    return {"chamfer_l1": out["chamfer_l1"], "chamfer_l2": out["chamfer_l2"],
            "fscore": out[f"fscore@{THRESHOLD:g}"]}


def _best(function, rounds: int) -> tuple[dict[str, float], float, float]:
    best = float("inf")
    tracemalloc.start()
    for _ in range(rounds):
        start = time.perf_counter()
        values = function()
        best = min(best, time.perf_counter() - start)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return values, best, peak


@PERF_CASES.register("shape")
def case(device: str | None = None, rounds: int = 3) -> list[dict]:
    """Seconds (best of ``rounds``) for Chamfer-L1/L2 + F-score@1% of two 100k-point sets
    sampled from a torus and a 2% larger one; ratio = reference time / time. On a CPU the
    chunked cdist row (N x N distances in all) runs on the first CDIST_CPU_POINTS points of
    each set and is compared with the reference on those."""
    torch_device = pick_device(device)
    rng = np.random.default_rng(0)
    mesh = o3d.geometry.TriangleMesh.create_torus(0.35, 0.12, 60, 30)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles).astype(np.int64)
    gt, _ = sample_surface(vertices, faces, N_POINTS, rng)
    pred, _ = sample_surface(vertices * 1.02, faces, N_POINTS, rng)
    nearest_neighbours(pred[:10], gt[:10], torch_device)
    ref_values, ref_time, ref_peak = _best(lambda: reference(pred, gt), rounds)
    rows = [{"method": "scipy cKDTree both ways (reference)", "points": N_POINTS,
             "seconds": f"{ref_time:.3f}", "ratio": "1.00", "peak MiB": f"{ref_peak:.0f}",
             "max |diff|": "0"}]
    n = N_POINTS if torch_device.type == "cuda" else CDIST_CPU_POINTS
    small_ref, small_time, _ = _best(lambda: reference(pred[:n], gt[:n]), 1)
    kind = "chunked cdist" if torch_device.type == "cuda" else "KD-trees, leaf-order queries"
    candidates = [(f"arbench ({kind}, {torch_device.type})", N_POINTS,
                   lambda: arbench(pred, gt, torch_device), rounds, ref_values, ref_time),
                  (f"torch.cdist chunked float64 ({torch_device.type})", n,
                   lambda: torch_cdist(pred[:n], gt[:n], torch_device), 1,
                   ref_values if n == N_POINTS else small_ref,
                   ref_time if n == N_POINTS else small_time)]
    for name, points, function, repeat, expected, baseline_time in candidates:
        values, seconds, peak = _best(function, repeat)
        diff = max(abs(values[k] - expected[k]) for k in expected)
        if diff > 1e-6:
            raise AssertionError(f"{name} differs from the reference by {diff:.3g}")
        rows.append({"method": name, "points": points, "seconds": f"{seconds:.3f}",
                     "ratio": f"{baseline_time / seconds:.2f}", "peak MiB": f"{peak:.0f}",
                     "max |diff|": f"{diff:.1e}"})
    return rows
