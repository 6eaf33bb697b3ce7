"""Depth baselines: a small U-Net trained on the rendered train split, and the
constant-median-depth floor. Weights: ``weights/NAME.TASK.pt``.

Tasks without their own weights but listed in ``TRANSFER`` use another task's weights
(``davis-depth`` and ``synthetic-davis-depth`` run the synthetic-depth models zero-shot,
frame by frame).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.models import register_baseline

TRANSFER = {"davis-depth": "synthetic-depth", "synthetic-davis-depth": "synthetic-depth"}


def weights_path(name: str, task: str) -> Path:
    """Weights of baseline ``name`` for ``task`` (the transfer task's when it has none)."""
    path = WEIGHTS_DIR / f"{name}.{task}.pt"
    if not path.is_file() and task in TRANSFER:
        return WEIGHTS_DIR / f"{name}.{TRANSFER[task]}.pt"
    return path


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class DepthUNet(nn.Module):
    """A 4-level U-Net (8-16-32-64 channels) mapping RGB [B,3,H,W] in [0,1] to metric depth
    [B,H,W] (m) as ``exp(output) * depth_scale``. It runs on the image downscaled by
    ``scale`` (padded to a multiple of 8) and upsamples its log depth bilinearly."""

    def __init__(self, depth_scale: float = 2.5, scale: float = 0.5) -> None:
        super().__init__()
        widths = (8, 16, 32, 64)
        self.scale = scale
        self.register_buffer("depth_scale", torch.tensor(float(depth_scale)))
        self.down = nn.ModuleList()
        cin = 3
        for width in widths:
            self.down.append(_block(cin, width))
            cin = width
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i])
                                for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        full = images.shape[-2:]
        x = F.interpolate(images, scale_factor=self.scale, mode="bilinear", align_corners=False,
                          antialias=True) if self.scale != 1 else images
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        x = F.pad(x - 0.5, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for index, block in enumerate(self.down):
            if index:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        log_depth = self.head(x)[:, :, :height, :width]
        log_depth = F.interpolate(log_depth, size=full, mode="bilinear", align_corners=False)
        return torch.exp(log_depth[:, 0]) * self.depth_scale


def depth_unet() -> nn.Module:
    """Factory for ``--arch baselines.depth:depth_unet``."""
    return DepthUNet()


def _missing(name: str, task: str, path: Path) -> ModelError:
    return ModelError(f"no trained weights for baseline {name!r} on task {task!r} "
                      f"({path} is missing)", f"train them with `arbench train {name} "
                      f"--task {task}`")


def build_unet(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """The trained U-Net, predicting metric depth per image."""
    path = weights_path("depth-unet", spec.task)
    if not path.is_file():
        raise _missing("depth-unet", spec.task, path)
    module = DepthUNet()
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    module = module.to(device).eval()

    def predict(batch: dict) -> dict[str, Any]:
        images = batch["image"]
        if isinstance(images, torch.Tensor):
            return {"depth": module(images)}
        return {"depth": [module(image[None])[0] for image in images]}

    return predict


def _train_arrays(spec: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    samples = [dataset[i] for i in range(len(dataset))]
    shapes = {tuple(s["image"].shape) for s in samples}
    if len(shapes) != 1:
        raise ModelError(f"training needs images of one size; the train split has {shapes}")
    return (torch.stack([s["image"] for s in samples]), torch.stack([s["depth"] for s in samples]),
            torch.stack([s["valid"] for s in samples]))


def train_unet(spec: Any, device: torch.device, out: Path | None = None,
               epochs: int | None = None, seed: int = 0) -> Path:
    """Train on the task's train split: random 128x160 crops and flips, L1 loss on log depth."""
    torch.manual_seed(seed)
    images, depths, valid = _train_arrays(spec)
    median = float(depths[valid].median())
    module = DepthUNet(depth_scale=median).to(device)
    epochs = epochs or 40
    optimizer = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=epochs * ((len(images) + 15) // 16))
    generator = torch.Generator().manual_seed(seed)
    crop_h, crop_w = min(128, images.shape[2]), min(160, images.shape[3])
    start = time.perf_counter()
    module.train()
    for epoch in range(epochs):
        total = 0.0
        for chunk in torch.randperm(len(images), generator=generator).split(16):
            top = int(torch.randint(0, images.shape[2] - crop_h + 1, (1,), generator=generator))
            left = int(torch.randint(0, images.shape[3] - crop_w + 1, (1,), generator=generator))
            window = (slice(top, top + crop_h), slice(left, left + crop_w))
            x = images[chunk][..., window[0], window[1]]
            y = depths[chunk][..., window[0], window[1]]
            m = valid[chunk][..., window[0], window[1]] & (y > 0)
            if bool(torch.rand(1, generator=generator) < 0.5):
                x, y, m = x.flip(-1), y.flip(-1), m.flip(-1)
            x, y, m = x.to(device), y.to(device), m.to(device)
            pred = module(x)
            loss = (torch.log(pred[m]) - torch.log(y[m])).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(chunk)
        print(f"depth-unet epoch {epoch + 1}/{epochs}: L1 log-depth {total / len(images):.4f}")
    print(f"trained depth-unet in {time.perf_counter() - start:.1f}s on {device}")
    path = out or WEIGHTS_DIR / f"depth-unet.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.cpu().state_dict(), path)
    return path


def build_constant(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Predicts the train split's median depth at every pixel of every image."""
    path = weights_path("constant-median", spec.task)
    if not path.is_file():
        raise _missing("constant-median", spec.task, path)
    value = float(torch.load(path, map_location="cpu", weights_only=True)["median_depth"])

    def predict(batch: dict) -> dict[str, Any]:
        images = batch["image"]
        if isinstance(images, torch.Tensor):
            return {"depth": torch.full_like(images[:, 0], value)}
        return {"depth": [torch.full_like(image[0], value) for image in images]}

    return predict


def train_constant(spec: Any, device: torch.device, out: Path | None = None,
                   epochs: int | None = None, seed: int = 0) -> Path:
    """The median of all valid ground-truth depths of the train split."""
    _, depths, valid = _train_arrays(spec)
    median = depths[valid & (depths > 0)].median()
    print(f"constant-median: train median depth {float(median):.4f} m")
    path = out or WEIGHTS_DIR / f"constant-median.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"median_depth": median.reshape(())}, path)
    return path


register_baseline("depth-unet", "depth", weights=lambda task: [weights_path("depth-unet", task)],
                  train=train_unet, default_task="synthetic-depth",
                  description="small U-Net (8-64 channels, half resolution), rendered rooms")(
    build_unet)
register_baseline("constant-median", "depth",
                  weights=lambda task: [weights_path("constant-median", task)],
                  train=train_constant, default_task="synthetic-depth",
                  description="the train split's median depth everywhere (the floor)")(
    build_constant)
