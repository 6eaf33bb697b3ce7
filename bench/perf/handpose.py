"""PA-MPJPE of 4,000 hands: batched torch (``procrustes_align``: all samples at once, a
scaled Newton polar iteration with a batched-SVD fallback) against a per-sample loop with
scipy's ``orthogonal_procrustes``, as FreiHAND's ``align_w_scale`` does it."""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from bench.metrics.handpose import keypoint_errors, procrustes_align
from bench.registry import PERF_CASES
from bench.runner import pick_device


def reference_align(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """FreiHAND's ``align_w_scale(gt, pred)`` for one sample [J,3] (numpy + scipy)."""
    gt_centre, pred_centre = gt.mean(0), pred.mean(0)
    gt_c, pred_c = gt - gt_centre, pred - pred_centre
    gt_norm = np.linalg.norm(gt_c) + 1e-8
    pred_norm = np.linalg.norm(pred_c) + 1e-8
    rotation, scale = orthogonal_procrustes(gt_c / gt_norm, pred_c / pred_norm)
    return (pred_c / pred_norm) @ rotation.T * scale * gt_norm + gt_centre


def reference_pa_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-sample loop: aligned keypoint errors [N,J] (metres)."""
    return np.stack([np.linalg.norm(reference_align(g, p) - g, axis=1)
                     for g, p in zip(gt, pred, strict=True)])


def random_hands(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth-like and noisy, rotated, scaled predicted keypoints [N,21,3] (m)."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(0.0, 0.04, (count, 21, 3)) + np.array([0.0, 0.0, 0.5])
    angles = rng.normal(0.0, 0.3, (count, 3))
    pred = np.empty_like(gt)
    for index, (a, b, c) in enumerate(angles):
        rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
        pred[index] = gt[index] @ (rz @ ry @ rx).T * rng.uniform(0.8, 1.2)
    pred += rng.normal(0.0, 0.005, pred.shape) + rng.normal(0.0, 0.02, (count, 1, 3))
    return gt, pred


@PERF_CASES.register("handpose")
def case(device: str | None = None, count: int = 4000, rounds: int = 3) -> list[dict]:
    """Seconds for PA-MPJPE of ``count`` samples: scipy loop vs batched torch (CPU with one
    thread and with all of torch's threads, and the run's device when it is a GPU);
    max |difference| of the errors."""
    gt, pred = random_hands(count)
    loop_best, reference = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        reference = reference_pa_errors(gt, pred)
        loop_best = min(loop_best, time.perf_counter() - start)
    rows = [{"implementation": "scipy orthogonal_procrustes loop", "device": "cpu",
             "seconds": f"{loop_best:.4f}", "speed-up": "1.0x", "PA-MPJPE mm":
             f"{reference.mean() * 1000:.6f}", "max |diff| m": "0"}]
    threads = torch.get_num_threads()
    runs = [(torch.device("cpu"), 1)]
    if threads > 1:
        runs.append((torch.device("cpu"), threads))
    if pick_device(device).type == "cuda":
        runs.append((pick_device(device), threads))
    for torch_device, run_threads in runs:
        gt_t = torch.from_numpy(gt).to(torch_device)
        pred_t = torch.from_numpy(pred).to(torch_device)
        best = float("inf")
        torch.set_num_threads(run_threads)
        try:
            for _ in range(rounds + 1):
                if torch_device.type == "cuda":
                    torch.cuda.synchronize(torch_device)
                start = time.perf_counter()
                errors = keypoint_errors(procrustes_align(pred_t, gt_t), gt_t)
                if torch_device.type == "cuda":
                    torch.cuda.synchronize(torch_device)
                best = min(best, time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
        diff = float(np.abs(errors.cpu().numpy() - reference).max())
        label = f"{torch_device} ({run_threads} thread{'s' if run_threads > 1 else ''})"
        rows.append({"implementation": "batched torch", "device": label,
                     "seconds": f"{best:.4f}", "speed-up": f"{loop_best / best:.1f}x",
                     "PA-MPJPE mm": f"{float(errors.mean()) * 1000:.6f}",
                     "max |diff| m": f"{diff:.1e}"})
    return rows
