"""Room layout speed: the per-image cost of the layout metrics against layout-cnn's
inference on the same 320x240 images (the metrics should cost under 5% of it), measured two
ways: against the network's pass with its uint8 label map alone (``label_and_depth``), the
strict measure, and against layout-cnn's whole prediction as a run makes it (the network,
then the box fit that turns its labels into a type and corners)."""

from __future__ import annotations

import torch

from bench.families.layout import LayoutFamily
from bench.metrics.layout import LayoutDepthMetric, LsunLayoutMetric, PlaneIouMetric
from bench.perf import best_time
from bench.registry import PERF_CASES
from bench.runner import pick_device
from bench.spec import load_spec


@PERF_CASES.register("layout")
def case(device: str | None = None, rounds: int = 10) -> list[dict]:
    """Layout metrics (pixel, corner, depth, plane IoU) vs layout-cnn's network, 16 images.

    The per-batch work of a run (prediction checks and every metric's ``update``; the
    metrics are built once and ``compute`` runs once per run, reported beside)."""
    from baselines.layout import LayoutNet, build_cnn, label_and_depth
    from bench.adapters.lsun_layout import default_intrinsics

    torch_device = pick_device(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 240, 320, generator=generator).to(torch_device)
    labels = torch.randint(1, 6, (16, 240, 320), generator=generator,
                           dtype=torch.uint8).to(torch_device)  # as the adapters give them
    batch = {"id": [str(i) for i in range(16)], "image": images, "labels": labels,
             "type": torch.full((16,), 5),
             "K": torch.from_numpy(default_intrinsics(320, 240)).float().expand(16, 3, 3),
             "corners": [torch.rand(6, 2, generator=generator) * 200 for _ in range(16)],
             "layout_depth": torch.rand(16, 240, 320, generator=generator).to(torch_device) + 1}
    module = LayoutNet().to(torch_device).eval()
    with torch.no_grad():
        predicted_labels, depth = label_and_depth(module, images)
    raw = {"labels": predicted_labels, "layout_depth": depth, "type": [5] * 16,
           "corners": [c + 3.0 for c in batch["corners"]]}

    def infer() -> None:
        with torch.no_grad():
            label_and_depth(module, images)

    family = LayoutFamily()
    metrics = (LsunLayoutMetric(figures=0), LayoutDepthMetric(), PlaneIouMetric())

    def measure() -> None:  # what the runner does per batch: check, then every update
        fresh = dict(batch, labels=batch["labels"].view_as(batch["labels"]))  # a new batch
        pred = family.check_prediction(raw, fresh, None)  # object, as a run's next batch:
        for metric in metrics:  # the label tables its metrics share are counted afresh
            metric.update(pred, fresh)

    predictor = build_cnn(load_spec("synthetic-rooms"), None, torch_device)

    def predict() -> None:
        with torch.no_grad():
            predictor(batch)

    model_s, metric_s = best_time(infer, rounds), best_time(measure, rounds)
    predict_s = best_time(predict, 1)
    compute_s = best_time(lambda: [metric.compute() for metric in metrics], rounds)
    return [{"case": "layout metrics vs layout-cnn's network, 16x320x240",
             "arbench": f"{16 / metric_s:.1f} images/s (metrics)",
             "plain loop": f"{16 / model_s:.1f} images/s (network)",
             "ratio": f"{metric_s / model_s:.3f} of inference",
             "agree": f"compute() once per run: {compute_s * 1e3:.1f} ms"},
            {"case": "layout metrics vs layout-cnn's whole prediction (network + box fit)",
             "arbench": f"{16 / metric_s:.1f} images/s (metrics)",
             "plain loop": f"{16 / predict_s:.1f} images/s (prediction)",
             "ratio": f"{metric_s / predict_s:.4f} of inference", "agree": ""}]
