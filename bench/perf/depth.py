"""Depth and DAVIS speed: the depth metric against a hand-written Monodepth2-style numpy
loop, and J&F against the davis2017-style numpy/OpenCV per-frame loop (same inputs, same
numbers; each pair timed in interleaved rounds so that both see the same machine load).
The renderer's case is ``render`` (bench/perf/render.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch

from bench.metrics.depth import DepthMetrics
from bench.metrics.segmentation import f_measure, jaccard
from bench.perf import best_time
from bench.registry import PERF_CASES
from bench.runner import pick_device


def numpy_depth_loop(gts: np.ndarray, preds: np.ndarray) -> float:
    """Monodepth2's evaluation loop (mask, median scaling, clamp, errors) as a baseline."""
    totals = np.zeros(7)
    for gt, pred in zip(gts, preds, strict=True):
        mask = (gt > 1e-3) & (gt < 10)
        p, g = pred[mask], gt[mask]
        p = np.clip(p * np.median(g) / np.median(p), 1e-3, 10)
        thresh = np.maximum(g / p, p / g)
        totals += [np.mean(np.abs(g - p) / g), np.mean((g - p) ** 2 / g),
                   np.sqrt(np.mean((g - p) ** 2)), np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
                   (thresh < 1.25).mean(), (thresh < 1.25 ** 2).mean(), (thresh < 1.25 ** 3).mean()]
    return float(totals[0] / len(gts))


def numpy_jf(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """davis2017-evaluation's per-frame loop (numpy IoU, seg2bmap, cv2.dilate with a disk)."""
    radius = math.ceil(0.008 * math.hypot(*gt.shape[1:]))
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    kernel = (x * x + y * y <= radius * radius).astype(np.uint8)
    js, fs = [], []
    for g, p in zip(gt, pred, strict=True):
        union = (g | p).sum()
        js.append((g & p).sum() / union if union else 1.0)
        bounds = []
        for seg in (p, g):
            e, s, se = (np.zeros_like(seg) for _ in range(3))
            e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
            b = (seg ^ e) | (seg ^ s) | (seg ^ se)
            b[-1, :], b[:, -1] = seg[-1, :] ^ e[-1, :], seg[:, -1] ^ s[:, -1]
            b[-1, -1] = False
            bounds.append(b)
        pb, gb = bounds
        p_match = (pb & cv2.dilate(gb.astype(np.uint8), kernel).astype(bool)).sum()
        g_match = (gb & cv2.dilate(pb.astype(np.uint8), kernel).astype(bool)).sum()
        precision = p_match / pb.sum() if pb.sum() else 1.0
        recall = g_match / gb.sum() if gb.sum() else 1.0
        fs.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(js)), float(np.mean(fs))


def interleaved(ours: Callable[[], object], plain: Callable[[], object], rounds: int
                ) -> tuple[float, float]:
    """Best wall times (s) of ``ours`` and ``plain`` over ``rounds`` alternating calls."""
    times = [(best_time(ours, 1), best_time(plain, 1)) for _ in range(rounds)]
    return min(t[0] for t in times), min(t[1] for t in times)


@PERF_CASES.register("depth")
def case(device: str | None = None, rounds: int = 3) -> list[dict]:
    """Depth metric and J&F vs plain numpy loops (on the CPU torch runs single-threaded,
    like the numpy loops it is compared with; the metric's medians use one thread per core)."""
    torch_device = pick_device(device)
    threads = torch.get_num_threads()
    if torch_device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _rows(torch_device, rounds)
    finally:
        torch.set_num_threads(threads)


def _rows(torch_device: torch.device, rounds: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    gts = rng.uniform(0.5, 9.5, (16, 480, 640)).astype(np.float32)
    preds = (gts * rng.uniform(0.8, 1.25, gts.shape)).astype(np.float32)
    gt_t = torch.from_numpy(gts).to(torch_device)
    batch = {"id": [str(i) for i in range(16)], "depth": gt_t, "valid": gt_t > 0,
             "image": torch.zeros(16, 3, 480, 640, device=torch_device)}
    pred = {"kind": "depth", "value": torch.from_numpy(preds).to(torch_device)}
    metric_value: dict[str, float] = {}

    def run_metric() -> None:
        metric = DepthMetrics(alignment="median", figures=0).to(torch_device)
        metric.update(pred, batch)
        metric_value.update(metric.compute())

    ours, plain = interleaved(run_metric, lambda: numpy_depth_loop(gts, preds), rounds)
    agree = abs(metric_value["abs_rel"] - numpy_depth_loop(gts, preds)) < 1e-5
    rows.append({"case": "depth metrics 16x640x480", "arbench": f"{16 / ours:.1f} images/s",
                 "plain loop": f"{16 / plain:.1f} images/s", "ratio": f"{plain / ours:.2f}",
                 "agree": str(agree)})

    gt_masks = np.zeros((30, 480, 854), dtype=bool)
    for t in range(30):
        cv2.circle(gt_masks[t].view(np.uint8), (300 + 5 * t, 240), 120, 1, -1)
    pred_masks = np.roll(gt_masks, 6, axis=2)
    g, p = torch.from_numpy(gt_masks).to(torch_device), torch.from_numpy(pred_masks).to(
        torch_device)
    result: list[float] = []

    def run_jf() -> None:
        result[:] = [float(jaccard(g, p).mean()), float(f_measure(g, p).mean())]

    ours, plain = interleaved(run_jf, lambda: numpy_jf(gt_masks, pred_masks), rounds)
    ref = numpy_jf(gt_masks, pred_masks)
    agree = abs(result[0] - ref[0]) < 1e-9 and abs(result[1] - ref[1]) < 1e-9
    rows.append({"case": "J&F 30 frames 854x480", "arbench": f"{30 / ours:.1f} frames/s",
                 "plain loop": f"{30 / plain:.1f} frames/s", "ratio": f"{plain / ours:.2f}",
                 "agree": str(agree)})
    return rows
