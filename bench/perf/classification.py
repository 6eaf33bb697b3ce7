"""Runner overhead: arbench's evaluate() against a plain hand-written PyTorch loop."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

from bench.registry import MODELS, PERF_CASES
from bench.runner import build_dataset, evaluate, pick_device
from bench.spec import load_spec


def plain_loop(dataset: torch.utils.data.Dataset, model, batch_size: int,
               device: torch.device) -> tuple[float, float]:
    """(accuracy, seconds) of the simplest correct loop: DataLoader, forward, argmax."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    hits = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            logits = model({"image": batch["image"].to(device)})
            hits += int((logits.argmax(1).cpu() == batch["label"]).sum())
    return hits / len(dataset), time.perf_counter() - start


@PERF_CASES.register("classification")
def case(device: str | None = None, rounds: int = 7) -> list[dict]:
    """Samples/s of `arbench run digits` (its evaluation loop, and end to end with data and
    model loading) vs a plain loop over the same data and model, best of ``rounds``; and
    peak Python memory for 1/4 and all of the samples (it must not grow with them)."""
    spec = load_spec("digits")
    torch_device = pick_device(device)
    dataset = build_dataset(spec)
    model = MODELS.get("resnet-small").build(spec, dataset.info, torch_device)
    batch_size = int(spec.protocol["batch_size"])
    n = len(dataset)
    plain_best = bench_best = total_best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            _, seconds = plain_loop(dataset, model, batch_size, torch_device)
            plain_best = min(plain_best, seconds)
            start = time.perf_counter()
            result = evaluate(spec, "resnet-small", device=device, out_dir=Path(tmp),
                              leaderboard=False, progress=False)
            total_best = min(total_best, time.perf_counter() - start)
            bench_best = min(bench_best, result.metadata["wall_s"])
        peaks = []
        for limit in (len(dataset) // 4, len(dataset)):
            tracemalloc.start()
            evaluate(spec, "logreg", device=device, out_dir=Path(tmp), leaderboard=False,
                     progress=False, limit=limit)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
    return [
        {"loop": "plain PyTorch", "samples/s": f"{n / plain_best:.0f}", "ratio": "1.00",
         "peak MiB": ""},
        {"loop": "arbench evaluate() loop", "samples/s": f"{n / bench_best:.0f}",
         "ratio": f"{plain_best / bench_best:.2f}", "peak MiB": ""},
        {"loop": "arbench evaluate() end to end", "samples/s": f"{n / total_best:.0f}",
         "ratio": f"{plain_best / total_best:.2f}",
         "peak MiB": f"{peaks[0]:.1f} ({len(dataset) // 4} samples) / "
                     f"{peaks[1]:.1f} ({len(dataset)} samples)"},
    ]
