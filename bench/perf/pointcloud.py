"""Point clouds: PointNet throughput through evaluate() vs a plain PyTorch loop on the same
tensors, and the cost of preparing one cloud (read OFF, sample, normalise)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from baselines.pointcloud import load_pointnet
from bench.registry import PERF_CASES
from bench.runner import build_dataset, evaluate, pick_device
from bench.spec import load_spec


def plain_loop(points: torch.Tensor, labels: torch.Tensor, model: torch.nn.Module,
               batch_size: int, device: torch.device) -> tuple[float, float]:
    """(accuracy, seconds) of the simplest correct loop over in-memory clouds [S,N,3]."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(points, labels),
                                         batch_size=batch_size)
    hits = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for x, y in loader:
            hits += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return hits / len(labels), time.perf_counter() - start


def _per_cloud_ms(dataset: torch.utils.data.Dataset, count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        dataset[index]
    return 1000.0 * (time.perf_counter() - start) / count


@PERF_CASES.register("pointcloud")
def case(device: str | None = None, rounds: int = 3) -> list[dict]:
    """Clouds/s of PointNet on synthetic-shapes through evaluate() (data served from an
    HDF5 file in PointNet's layout, so both loops see the same in-memory tensors) vs a plain
    loop, best of ``rounds``; and ms per cloud to prepare OFF meshes (uniform and Poisson-disk
    sampling) and HDF5 clouds."""
    spec = load_spec("synthetic-shapes")
    torch_device = pick_device(device)
    off_set = build_dataset(spec)
    samples = [off_set[i] for i in range(len(off_set))]
    points = torch.stack([s["points"] for s in samples])
    labels = torch.tensor([s["label"] for s in samples])
    model = load_pointnet(spec.task, off_set.info.meta["num_classes"], torch_device)
    batch_size = int(spec.protocol["batch_size"])
    count = min(48, len(off_set))
    uniform_ms = _per_cloud_ms(off_set, count)
    poisson_spec = load_spec("synthetic-shapes", ["dataset.params.sampling=poisson"])
    poisson_ms = _per_cloud_ms(build_dataset(poisson_spec), count)
    plain_best = bench_best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        with h5py.File(Path(tmp) / "ply_data_test0.h5", "w") as handle:
            handle["data"] = points.numpy()
            handle["label"] = labels.numpy().astype(np.uint8)[:, None]
        (Path(tmp) / "shape_names.txt").write_text("\n".join(off_set.info.meta["class_names"]))
        h5_spec = load_spec("synthetic-shapes", [f"dataset.root={tmp}", "dataset.embedded=null"])
        h5_ms = _per_cloud_ms(build_dataset(h5_spec), count)
        for _ in range(rounds):
            plain_accuracy, seconds = plain_loop(points, labels, model, batch_size, torch_device)
            plain_best = min(plain_best, seconds)
            result = evaluate(h5_spec, "pointnet", device=device, out_dir=Path(tmp) / "runs",
                              leaderboard=False, progress=False)
            bench_best = min(bench_best, result.metadata["wall_s"])
    n = len(labels)
    same = abs(result.metrics["overall_accuracy"] - plain_accuracy) < 1e-9
    return [
        {"measure": "PointNet, plain PyTorch loop", "value": f"{n / plain_best:.0f} clouds/s",
         "ratio": "1.00", "note": f"accuracy {plain_accuracy:.4f}"},
        {"measure": "PointNet, arbench evaluate()", "value": f"{n / bench_best:.0f} clouds/s",
         "ratio": f"{plain_best / bench_best:.2f}",
         "note": f"accuracy {result.metrics['overall_accuracy']:.4f}"
                 f"{' (same)' if same else ' (DIFFERS)'}"},
        {"measure": "prepare one cloud: OFF + uniform sampling", "value": f"{uniform_ms:.2f} ms",
         "ratio": "", "note": f"{spec.dataset.params['num_points']} points, unit sphere"},
        {"measure": "prepare one cloud: OFF + Poisson-disk sampling",
         "value": f"{poisson_ms:.2f} ms", "ratio": "", "note": "5x oversampling"},
        {"measure": "prepare one cloud: HDF5 first-N", "value": f"{h5_ms:.3f} ms", "ratio": "",
         "note": "in-memory slice"},
    ]
