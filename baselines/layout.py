"""Room layout baselines: the mean layout (the floor of the table) and a small
encoder-decoder CNN predicting the five surfaces and the layout depth, trained on the
embedded training split on the CPU. Weights: ``weights/NAME.TASK.pt``.

``layout-cnn`` turns its label map into an LSUN type and corners by fitting a box room
to it (``baselines.layout_vp.fit_box_to_labels``: the upright box, seen with the image's K,
whose ceiling / floor / wall map agrees best with the labels; its room edges give the type
and corners). When the best box shows no LSUN layout, the training split's layout
(type + corners, rasterised once at 60x80) agreeing with the labels on the most pixels is
returned instead.
Tasks without their own weights use ``synthetic-rooms``'s (zero-shot transfer).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines import WEIGHTS_DIR
from baselines.depth import _block
from baselines.layout_vp import fit_box_to_labels
from bench.errors import ModelError
from bench.families.layout import CORNER_COUNTS, best_label, rasterize_layout
from bench.models import register_baseline

TRAIN_TASK = "synthetic-rooms"
FIT_SIZE = (60, 80)


def weights_path(name: str, task: str) -> Path:
    """Weights of ``name`` for ``task``, else those trained on synthetic-rooms."""
    path = WEIGHTS_DIR / f"{name}.{task}.pt"
    return path if path.is_file() else WEIGHTS_DIR / f"{name}.{TRAIN_TASK}.pt"


def _load(name: str, task: str) -> dict[str, Any]:
    path = weights_path(name, task)
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline {name!r} ({path} is missing)",
                         f"train them with `arbench train {name}`")
    return torch.load(path, map_location="cpu", weights_only=True)


class LayoutNet(nn.Module):
    """A 4-level encoder-decoder (8-64 channels) on the image resized to 96x128: label
    scores [B,6,H,W] (labels 0..5) and layout depth [B,H,W] (m, ``exp(out) * scale``),
    upsampled bilinearly to the input size."""

    def __init__(self, depth_scale: float = 3.0, size: tuple[int, int] = (96, 128)) -> None:
        super().__init__()
        widths = (8, 16, 32, 64)
        self.size = size
        self.register_buffer("depth_scale", torch.tensor(float(depth_scale)))
        self.down = nn.ModuleList()
        cin = 3
        for width in widths:
            self.down.append(_block(cin, width))
            cin = width
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i])
                                for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 7, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = images.shape[-2:]
        x = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False,
                          antialias=True) - 0.5
        skips = []
        for index, block in enumerate(self.down):
            if index:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = F.interpolate(self.head(x), size=full, mode="bilinear", align_corners=False)
        return out[:, :6], torch.exp(out[:, 6]) * self.depth_scale


def label_and_depth(module: LayoutNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's surface labels [B,H,W] (uint8, 0..5, the LSUN maps' own type) and
    layout depth [B,H,W] (metres) for images [B,3,H,W]."""
    scores, depths = module(images)
    return best_label(scores, 1).to(torch.uint8), depths


def _hypotheses(layouts: list[tuple[int, np.ndarray]]) -> torch.Tensor:
    """Label maps [L,h,w] of normalised layouts rasterised at FIT_SIZE."""
    h, w = FIT_SIZE
    return torch.stack([torch.from_numpy(rasterize_layout(
        kind, corners * np.array([w - 1, h - 1]), h, w)).long() for kind, corners in layouts])


def fit_layout(labels: torch.Tensor, layouts: list[tuple[int, np.ndarray]],
               hypotheses: torch.Tensor) -> tuple[int, np.ndarray]:
    """The layout (type, corners in pixels of ``labels`` [H,W]) of the hypothesis agreeing
    with ``labels`` on the most pixels at FIT_SIZE."""
    height, width = labels.shape
    small = F.interpolate(labels[None, None].float(), size=FIT_SIZE, mode="nearest")[0, 0]
    agreement = (hypotheses == small.long().cpu()[None]).flatten(1).sum(1)
    kind, corners = layouts[int(agreement.argmax())]
    return kind, corners * np.array([width - 1, height - 1])


def fit_cnn_layout(labels: torch.Tensor, K: torch.Tensor, layouts: list[tuple[int, np.ndarray]],
                   hypotheses: torch.Tensor) -> tuple[int, np.ndarray]:
    """Type and corners (pixels) of a predicted label map [H,W]: the best-fitting box room's
    (``fit_box_to_labels``, with intrinsics K [3,3]), else the best training layout's."""
    box = fit_box_to_labels(labels.cpu().numpy(), K.cpu().numpy().astype(np.float64))
    return box if box is not None else fit_layout(labels, layouts, hypotheses)


def _training_layouts(spec: Any) -> tuple[Any, list[tuple[int, np.ndarray]]]:
    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    layouts = []
    for entry in dataset.entries:
        height, width = entry["resolution"][:2]
        layouts.append((entry["type"], entry["corners"] / np.array([width - 1, height - 1])))
    return dataset, layouts


def build_cnn(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """The trained encoder-decoder: labels, layout depth, fitted type and corners."""
    state = _load("layout-cnn", spec.task)
    module = LayoutNet()
    module.load_state_dict(state["model"])
    module = module.to(device).eval()
    layouts = [(int(k), c.numpy()) for k, c in zip(state["layout_types"].tolist(),
                                                   state["layout_corners"], strict=True)]
    layouts = [(k, c[:CORNER_COUNTS[k]]) for k, c in layouts]
    hypotheses = _hypotheses(layouts)

    def predict(batch: dict) -> dict[str, Any]:
        images = batch["image"]
        if isinstance(images, torch.Tensor):  # one pass; the family keeps [B,H,W] tensors
            labels, depths = label_and_depth(module, images)
        else:
            outputs = [label_and_depth(module, image[None]) for image in images]
            labels = [label[0] for label, _ in outputs]
            depths = [depth[0] for _, depth in outputs]
        fits = [fit_cnn_layout(label, K, layouts, hypotheses)
                for label, K in zip(labels, batch["K"], strict=True)]
        return {"labels": labels, "layout_depth": depths, "type": [k for k, _ in fits],
                "corners": [torch.from_numpy(c) for _, c in fits]}

    return predict


def train_cnn(spec: Any, device: torch.device, out: Path | None = None,
              epochs: int | None = None, seed: int = 0) -> Path:
    """Cross-entropy on the labels + L1 on log layout depth; flips swap left and right.
    Runs on one CPU thread (on a busy 2-core machine more threads thrash)."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _train_cnn(spec, device, out, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train_cnn(spec: Any, device: torch.device, out: Path | None, epochs: int | None,
               seed: int) -> Path:
    torch.manual_seed(seed)
    dataset, layouts = _training_layouts(spec)
    samples = [dataset[i] for i in range(len(dataset))]
    size = (96, 128)

    def small(x: torch.Tensor, mode: str) -> torch.Tensor:
        return F.interpolate(x, size=size, mode=mode,
                             **({"align_corners": False} if mode == "bilinear" else {}))

    images = small(torch.stack([s["image"] for s in samples]), "bilinear")
    labels = small(torch.stack([s["labels"] for s in samples])[:, None].float(),
                   "nearest")[:, 0].long()
    depths = small(torch.stack([s["layout_depth"] for s in samples])[:, None], "nearest")[:, 0]
    module = LayoutNet(depth_scale=float(depths[depths > 0].median())).to(device)
    epochs = epochs or 12
    steps = epochs * ((len(images) + 15) // 16)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    swap = torch.tensor([0, 1, 3, 2, 4, 5])  # a mirrored left wall is a right wall
    start = time.perf_counter()
    module.train()
    for epoch in range(epochs):
        total = 0.0
        for chunk in torch.randperm(len(images), generator=generator).split(16):
            x, y, d = images[chunk], labels[chunk], depths[chunk]
            if bool(torch.rand(1, generator=generator) < 0.5):
                x, y, d = x.flip(-1), swap[y.flip(-1)], d.flip(-1)
            x, y, d = x.to(device), y.to(device), d.to(device)
            scores, depth = module(x)
            valid = d > 0
            loss = F.cross_entropy(scores, y) + 0.5 * (
                torch.log(depth[valid]) - torch.log(d[valid])).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(chunk)
        print(f"layout-cnn epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    print(f"trained layout-cnn in {time.perf_counter() - start:.1f}s on {device}")
    corners = torch.zeros(len(layouts), max(CORNER_COUNTS), 2, dtype=torch.float64)
    for index, (_, points) in enumerate(layouts):
        corners[index, :len(points)] = torch.from_numpy(points)
    path = out or WEIGHTS_DIR / f"layout-cnn.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": module.cpu().state_dict(),
                "layout_types": torch.tensor([k for k, _ in layouts]),
                "layout_corners": corners}, path)
    return path


def build_mean(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """The training split's most frequent type with its mean corners, and its mean layout
    depth map, for every image."""
    state = _load("mean-layout", spec.task)
    kind, corners = int(state["type"]), state["corners"].numpy()
    mean_depth = state["depth"].float()

    def predict(batch: dict) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"type": [], "corners": [], "layout_depth": []}
        for image in batch["image"]:
            height, width = image.shape[-2:]
            out["type"].append(kind)
            out["corners"].append(torch.from_numpy(corners * np.array([width - 1, height - 1])))
            out["layout_depth"].append(F.interpolate(
                mean_depth[None, None], size=(height, width), mode="bilinear",
                align_corners=False)[0, 0].to(image.device))
        return out

    return predict


def train_mean(spec: Any, device: torch.device, out: Path | None = None,
               epochs: int | None = None, seed: int = 0) -> Path:
    """Most frequent training type, its mean normalised corners, the mean layout depth."""
    dataset, layouts = _training_layouts(spec)
    kind = Counter(k for k, _ in layouts).most_common(1)[0][0]
    corners = np.mean([c for k, c in layouts if k == kind], axis=0)
    depths = [dataset[i]["layout_depth"] for i in range(len(dataset))]
    shape = depths[0].shape
    depth = torch.stack([F.interpolate(d[None, None], size=shape, mode="nearest")[0, 0]
                         for d in depths]).mean(0)
    print(f"mean-layout: type {kind} ({sum(k == kind for k, _ in layouts)} of "
          f"{len(layouts)} training images)")
    path = out or WEIGHTS_DIR / f"mean-layout.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"type": torch.tensor(kind), "corners": torch.from_numpy(corners),
                "depth": depth.half()}, path)
    return path


register_baseline("layout-cnn", "layout",
                  weights=lambda task: [weights_path("layout-cnn", task)],
                  train=train_cnn, default_task=TRAIN_TASK,
                  description="small encoder-decoder (labels + layout depth), fitted layout")(
    build_cnn)
register_baseline("mean-layout", "layout",
                  weights=lambda task: [weights_path("mean-layout", task)],
                  train=train_mean, default_task=TRAIN_TASK,
                  description="most frequent training type with its mean corners (the floor)")(
    build_mean)
