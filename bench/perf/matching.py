"""`arbench perf matching`: the metric side against SIFT extraction, and batched mutual
nearest-neighbour matching against a naive numpy loop (``naive_mutual_nearest``'s body)."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from bench.metrics.matching import (
    correct_counts,
    estimate_homography,
    match_descriptors,
    match_errors,
    repeatability,
    shared_masks,
)
from bench.registry import PERF_CASES
from bench.synth.homography_pairs import photograph, random_homography

KEYPOINTS = 2000
MNN_SIZE = 8000
NAIVE_ROWS = 500


def _best_of(fn: Callable[[], object], repeat: int = 3, sync: Callable[[], None] = lambda: None
             ) -> float:
    """Fastest of ``repeat`` wall times (seconds) of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _geometry(kp0: np.ndarray, kp1: np.ndarray, matches: np.ndarray, homography: np.ndarray,
              shape: tuple[int, int]) -> None:
    """The metric side of one pair: projection, errors, MMA counts, shared region,
    repeatability (what the 5% budget covers)."""
    errors = match_errors(kp0, kp1, matches, homography)
    correct_counts(errors, np.arange(1.0, 11.0))
    shared_masks(kp0, kp1, homography, shape, shape)
    repeatability(kp0, kp1, homography, shape, shape)


def _naive_rows(rows: np.ndarray, other: np.ndarray) -> list[int]:
    """The loop body of ``naive_mutual_nearest`` over some rows (for extrapolation)."""
    return [int(np.argmin(((other - row) ** 2).sum(1))) for row in rows]


@PERF_CASES.register("matching")
def case(device: str | None = None) -> list[dict]:
    """SIFT extraction vs the metric side per pair at 2000 keypoints; MNN of 8000 x 8000."""
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if torch_device.type == "cuda" else (lambda: None)
    base = cv2.resize(cv2.cvtColor(photograph("astronaut"), cv2.COLOR_RGB2GRAY), (1280, 1280),
                      interpolation=cv2.INTER_CUBIC)
    height, width = base.shape
    homography = random_homography(np.random.default_rng(0), width, height, strength=0.4)
    warped = cv2.warpPerspective(base, homography, (width, height))
    # a lower contrast threshold than the default so that both images reach 2000 keypoints
    sift = cv2.SIFT_create(nfeatures=KEYPOINTS, contrastThreshold=0.02)

    def extract() -> tuple:
        return sift.detectAndCompute(base, None), sift.detectAndCompute(warped, None)

    t_sift = _best_of(extract)
    (k0, d0), (k1, d1) = extract()
    kp0 = np.array([k.pt for k in k0], dtype=np.float64)
    kp1 = np.array([k.pt for k in k1], dtype=np.float64)
    desc0 = torch.from_numpy(d0).to(torch_device)
    desc1 = torch.from_numpy(d1).to(torch_device)
    matches = match_descriptors(desc0, desc1).cpu().numpy()
    t_geometry = _best_of(lambda: _geometry(kp0, kp1, matches, homography, (height, width)),
                          repeat=5)
    t_match = _best_of(lambda: match_descriptors(desc0, desc1), repeat=5, sync=sync)
    t_ransac = _best_of(lambda: estimate_homography(kp0, kp1, matches), repeat=5)
    n = f"{len(kp0)}x{len(kp1)}"
    rows = [
        {"case": f"SIFT extraction, one pair ({n} keypoints)", "time": f"{t_sift * 1e3:.1f} ms",
         "ratio": "1.000"},
        {"case": "metric side: projection, errors, MMA, shared region, repeatability",
         "time": f"{t_geometry * 1e3:.2f} ms", "ratio": f"{t_geometry / t_sift:.3f} (<= 0.05)"},
        {"case": f"MNN matching {n} 128-D ({torch_device.type})",
         "time": f"{t_match * 1e3:.2f} ms", "ratio": f"{t_match / t_sift:.3f}"},
        {"case": f"RANSAC homography ({len(matches)} matches)",
         "time": f"{t_ransac * 1e3:.2f} ms", "ratio": f"{t_ransac / t_sift:.3f}"},
    ]
    rng = np.random.default_rng(1)
    big0 = rng.normal(size=(MNN_SIZE, 128)).astype(np.float32)
    big1 = (big0 + rng.normal(0, 0.3, size=big0.shape)).astype(np.float32)
    t0 = torch.from_numpy(big0).to(torch_device)
    t1 = torch.from_numpy(big1).to(torch_device)
    t_batched = _best_of(lambda: match_descriptors(t0, t1), repeat=3, sync=sync)
    # naive_mutual_nearest loops over all N0 + N1 rows, each against N rows; time
    # NAIVE_ROWS iterations of the same loop body and scale to 2 * N iterations.
    part = _best_of(lambda: _naive_rows(big0[:NAIVE_ROWS], big1), repeat=1)
    t_naive = part * 2 * MNN_SIZE / NAIVE_ROWS
    rows += [
        {"case": f"MNN {MNN_SIZE}x{MNN_SIZE} 128-D, naive numpy row loop "
                 f"(extrapolated from {NAIVE_ROWS} rows)", "time": f"{t_naive:.2f} s",
         "ratio": "1.000"},
        {"case": f"MNN {MNN_SIZE}x{MNN_SIZE} 128-D, chunked torch ({torch_device.type})",
         "time": f"{t_batched * 1e3:.1f} ms", "ratio": f"{t_batched / t_naive:.4f} "
                                                        f"({t_naive / t_batched:.0f}x faster)"},
    ]
    return rows
