"""ADD-S speed: 1,000 poses of a 20,000-point model against two references, same values.

References: a brute-force all-pairs numpy distance matrix (in chunks), and the common
approach of building a scipy cKDTree on the estimated-pose points for every pose (as
bop_toolkit's ``adi``). arbench builds one tree per model in its own frame and maps the
ground-truth points into it, all poses in one batched query; on a GPU it searches all
poses exactly by matrix products instead. The "x per-pose trees" column is the per-pose trees'
time over each method's (above 1: faster than bop_toolkit's way).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from bench.geometry.rotations import random_rotation
from bench.metrics.pose import ModelTree
from bench.registry import PERF_CASES

POSES = 1000
POINTS = 20000
BRUTE_POSES = 20


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(POINTS, 3)) * np.array([0.05, 0.03, 0.02])
    R_gt = np.stack([random_rotation(rng) for _ in range(POSES)])
    t_gt = rng.uniform(-0.1, 0.1, (POSES, 3)) + np.array([0.0, 0.0, 0.6])
    noise = np.stack([random_rotation(rng) for _ in range(POSES)])
    # Small perturbations: blend each GT rotation towards a random one, re-orthonormalise.
    R_est = np.stack([np.linalg.svd(0.97 * a + 0.03 * b @ a)[0] @ np.linalg.svd(
        0.97 * a + 0.03 * b @ a)[2] for a, b in zip(R_gt, noise, strict=True)])
    t_est = t_gt + rng.normal(scale=0.005, size=(POSES, 3))
    return points, R_gt, t_gt, R_est, t_est


def brute_force(points: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, R_est: np.ndarray,
                t_est: np.ndarray, chunk: int = 2000) -> np.ndarray:
    """ADD-S [B] from the full gt x est distance matrix (in row chunks)."""
    out = np.empty(len(R_gt))
    for b in range(len(R_gt)):
        gt = points @ R_gt[b].T + t_gt[b]
        est = points @ R_est[b].T + t_est[b]
        est_sq = (est ** 2).sum(1)
        best = np.empty(len(gt))
        for start in range(0, len(gt), chunk):
            g = gt[start:start + chunk]
            d2 = (g ** 2).sum(1)[:, None] + est_sq[None] - 2.0 * g @ est.T
            best[start:start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        out[b] = best.mean()
    return out


def tree_per_pose(points: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, R_est: np.ndarray,
                  t_est: np.ndarray) -> np.ndarray:
    """ADD-S [B] with a cKDTree built on the estimated-pose points for every pose."""
    out = np.empty(len(R_gt))
    for b in range(len(R_gt)):
        tree = cKDTree(points @ R_est[b].T + t_est[b])
        out[b] = tree.query(points @ R_gt[b].T + t_gt[b], k=1)[0].mean()
    return out


def _arbench(points: np.ndarray, poses: tuple[np.ndarray, ...],
             device: torch.device) -> tuple[float, np.ndarray]:
    """Seconds and ADD-S [B] of arbench's ModelTree on ``device`` (tree built included)."""
    start = time.perf_counter()
    tree = ModelTree(torch.from_numpy(points))
    values = tree.adds(*(torch.from_numpy(a).to(device) for a in poses)).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, values


@PERF_CASES.register("pose")
def case(device: str | None = None) -> list[dict]:
    """ADD-S: arbench (model-frame tree on the CPU, batched exact search on a GPU) vs
    per-pose trees and brute force, in the same run."""
    points, R_gt, t_gt, R_est, t_est = _problem()
    poses = (R_est, t_est, R_gt, t_gt)
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    runs = {"cpu": _arbench(points, poses, torch.device("cpu"))}
    if torch_device.type == "cuda":
        _arbench(points, tuple(a[:2] for a in poses), torch_device)  # CUDA start-up
        runs["cuda"] = _arbench(points, poses, torch_device)
    start = time.perf_counter()
    per_pose = tree_per_pose(points, R_gt, t_gt, R_est, t_est)
    t_tree = time.perf_counter() - start
    start = time.perf_counter()
    brute = brute_force(points, R_gt[:BRUTE_POSES], t_gt[:BRUTE_POSES], R_est[:BRUTE_POSES],
                        t_est[:BRUTE_POSES])
    t_brute = (time.perf_counter() - start) * POSES / BRUTE_POSES
    rows = [{"method": "cKDTree per pose (bop_toolkit adi)", "seconds": f"{t_tree:.2f}",
             "x per-pose trees": "1.0x", "max |diff| (m)": "-"},
            {"method": f"brute-force numpy (timed on {BRUTE_POSES}, scaled)",
             "seconds": f"{t_brute:.1f}", "x per-pose trees": f"{t_tree / t_brute:.2f}x",
             "max |diff| (m)": f"{np.abs(per_pose[:BRUTE_POSES] - brute).max():.1e}"}]
    names = {"cpu": "arbench, cpu (model-frame tree, batched)",
             "cuda": "arbench, cuda (batched exact search, float64)"}
    for kind, (seconds, values) in runs.items():
        rows.append({"method": names[kind], "seconds": f"{seconds:.2f}",
                     "x per-pose trees": f"{t_tree / seconds:.1f}x",
                     "max |diff| (m)": f"{np.abs(values - per_pose).max():.1e}"})
    return rows
