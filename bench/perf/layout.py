"""Room layout speed: the per-image cost of the layout metrics against layout-cnn's
inference on the same 320x240 images (the metrics should cost under 5% of it)."""

from __future__ import annotations

import torch

from bench.families.layout import LayoutFamily
from bench.metrics.layout import LayoutDepthMetric, LsunLayoutMetric, PlaneIouMetric
from bench.perf import best_time
from bench.registry import PERF_CASES
from bench.runner import pick_device


@PERF_CASES.register("layout")
def case(device: str | None = None, rounds: int = 10) -> list[dict]:
    """Layout metrics (pixel, corner, depth, plane IoU) vs layout-cnn inference, 16 images.

    The per-batch work of a run (prediction checks and every metric's ``update``; the
    metrics are built once and ``compute`` runs once per run, reported beside)."""
    from baselines.layout import LayoutNet

    torch_device = pick_device(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 240, 320, generator=generator).to(torch_device)
    labels = torch.randint(1, 6, (16, 240, 320), generator=generator).to(torch_device)
    batch = {"id": [str(i) for i in range(16)], "image": images, "labels": labels,
             "type": torch.full((16,), 5),
             "corners": [torch.rand(6, 2, generator=generator) * 200 for _ in range(16)],
             "layout_depth": torch.rand(16, 240, 320, generator=generator).to(torch_device) + 1}
    module = LayoutNet().to(torch_device).eval()
    with torch.no_grad():
        scores, depth = module(images)
    raw = {"labels": scores.argmax(1), "layout_depth": depth, "type": [5] * 16,
           "corners": [c + 3.0 for c in batch["corners"]]}

    def infer() -> None:
        with torch.no_grad():
            module(images)

    family = LayoutFamily()
    metrics = (LsunLayoutMetric(figures=0), LayoutDepthMetric(), PlaneIouMetric())

    def measure() -> None:  # what the runner does per batch: check, then every update
        pred = family.check_prediction(raw, batch, None)
        for metric in metrics:
            metric.update(pred, batch)

    model_s, metric_s = best_time(infer, rounds), best_time(measure, rounds)
    compute_s = best_time(lambda: [metric.compute() for metric in metrics], rounds)
    return [{"case": "layout metrics vs layout-cnn, 16x320x240",
             "arbench": f"{16 / metric_s:.1f} images/s (metrics)",
             "plain loop": f"{16 / model_s:.1f} images/s (layout-cnn)",
             "ratio": f"{metric_s / model_s:.3f} of inference",
             "agree": f"compute() once per run: {compute_s * 1e3:.1f} ms"}]
