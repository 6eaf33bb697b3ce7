"""Hand-pose baselines: ``mean-hand`` (the floor) and ``hand-cnn`` (a small ResNet that
predicts 2D heatmaps and root-relative depths, lifted to 3D with K and a predicted root
depth), with its training code. Weights: ``weights/hand-cnn.TASK.pt``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.models import register_baseline

INPUT_SIZE = 64
HEATMAP_SIZE = 16
NUM_KEYPOINTS = 21
DEPTH_SCALE = 10.0  # root-relative depths are regressed in decimetres
LOG_RATIO_OFFSET = -6.0  # log(root depth / focal length in pixels) is about -6.3


def _train_keypoints(spec: Any) -> np.ndarray:
    """The training split's keypoints [N,21,3] (metres), read without decoding images."""
    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    if not hasattr(dataset, "xyz"):
        raise ModelError(f"mean-hand needs a freihand-layout data set, got {type(dataset)}")
    return dataset.xyz


def mean_hand_predictor(relative: torch.Tensor, root_depth: float, device: torch.device):
    """Predict ``relative`` [21,3] (root-relative, m) with its root on the image centre's
    ray at ``root_depth`` (m), for every image."""
    relative = relative.to(device)

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        height, width = batch["image"].shape[-2:]
        centre = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0, 1.0], dtype=torch.float64,
                              device=device)
        rays = torch.linalg.solve(batch["K"].double(), centre.expand(len(batch["id"]), 3))
        root = rays / rays[:, 2:3] * root_depth
        return root[:, None, :] + relative[None]

    return predict


@register_baseline("mean-hand", "handpose", default_task="synthetic-hands",
                   description="training split's mean root-relative hand at the image centre "
                               "and mean training depth")
def build_mean_hand(spec: Any, info: Any, device: torch.device):
    """The floor: the mean root-relative training hand, root on the image centre's ray."""
    xyz = _train_keypoints(spec)
    relative = torch.from_numpy(xyz - xyz[:, :1]).mean(dim=0)
    return mean_hand_predictor(relative, float(xyz[:, 0, 2].mean()), device)


def _stage(cin: int, cout: int, stride: int) -> nn.Module:
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return BasicBlock(cin, cout, stride, down)


class HandCNN(nn.Module):
    """ResNet-18's layout shrunk (one BasicBlock per stage, 8-16-32-64 channels, random
    init) with a two-step upsampling head: 21 heatmaps at 1/4 resolution (soft-argmax ->
    2D keypoints), plus 21 root-relative depths and log(root depth / focal) from the pooled
    features. Input: images resized to 64x64."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True))
        self.layer1, self.layer2 = _stage(8, 8, 1), _stage(8, 16, 2)
        self.layer3, self.layer4 = _stage(16, 32, 2), _stage(32, 64, 2)
        self.up3 = nn.Sequential(nn.Conv2d(64 + 32, 32, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.Conv2d(32 + 16, 24, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(24), nn.ReLU(inplace=True))
        self.heatmaps = nn.Conv2d(24, NUM_KEYPOINTS, 1)
        self.depth = nn.Sequential(nn.Linear(64, 128), nn.ReLU(inplace=True),
                                   nn.Linear(128, NUM_KEYPOINTS + 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [B,3,64,64] -> (uv [B,21,2] in input pixels, relative z [B,21] in m,
        log(root z / fx) [B])."""
        x2 = self.layer2(self.layer1(self.stem(images)))
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        up = nn.functional.interpolate(x4, scale_factor=2.0, mode="nearest")
        y = self.up3(torch.cat([up, x3], dim=1))
        y = self.up2(torch.cat([nn.functional.interpolate(y, scale_factor=2.0), x2], dim=1))
        logits = self.heatmaps(y).flatten(2)
        weights = logits.softmax(dim=-1).view(-1, NUM_KEYPOINTS, HEATMAP_SIZE, HEATMAP_SIZE)
        cells = (torch.arange(HEATMAP_SIZE, device=images.device, dtype=weights.dtype) + 0.5)
        stride = INPUT_SIZE / HEATMAP_SIZE
        u = (weights.sum(dim=2) * cells).sum(dim=-1) * stride - 0.5
        v = (weights.sum(dim=3) * cells).sum(dim=-1) * stride - 0.5
        depth = self.depth(x4.mean(dim=(2, 3)))
        return (torch.stack([u, v], dim=-1), depth[:, :NUM_KEYPOINTS] / DEPTH_SCALE,
                depth[:, NUM_KEYPOINTS] + LOG_RATIO_OFFSET)


def resize_inputs(images: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images resized to 64x64 and K rescaled to match (OpenCV pixel centres)."""
    height, width = images.shape[-2:]
    sx, sy = INPUT_SIZE / width, INPUT_SIZE / height
    resized = nn.functional.interpolate(images, (INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                                        align_corners=False, antialias=True)
    scale = torch.tensor([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]],
                         dtype=K.dtype, device=K.device)
    return resized, scale @ K


def lift(uv: torch.Tensor, relative_z: torch.Tensor, log_ratio: torch.Tensor,
         K: torch.Tensor) -> torch.Tensor:
    """Camera-frame keypoints [B,21,3]: root depth = fx * exp(log_ratio), z = root + relative,
    x, y back-projected from uv through K."""
    root = K[:, 0, 0] * log_ratio.exp()
    z = root[:, None] + relative_z - relative_z[:, :1]
    x = (uv[..., 0] - K[:, None, 0, 2]) / K[:, None, 0, 0] * z
    y = (uv[..., 1] - K[:, None, 1, 2]) / K[:, None, 1, 1] * z
    return torch.stack([x, y, z], dim=-1)


def cnn_predictor(module: HandCNN):
    """Predictor: resize, run, lift to 3D with the resized K."""

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        images, K = resize_inputs(batch["image"], batch["K"].float())
        uv, relative_z, log_ratio = module(images)
        return lift(uv, relative_z, log_ratio, K)

    return predict


def weights_path(task: str) -> Path:
    """Where hand-cnn's weights for ``task`` live."""
    return WEIGHTS_DIR / f"hand-cnn.{task}.pt"


def _targets(sample: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    images, K = resize_inputs(sample["image"][None], sample["K"][None].float())
    xyz = sample["keypoints"][None].float()
    uvw = xyz @ K.transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:3]
    return (images[0], uv[0], xyz[0, :, 2] - xyz[0, :1, 2],
            torch.log(xyz[0, 0, 2] / K[0, 0, 0]), K[0, :2, 2])


def augment(images: torch.Tensor, uv: torch.Tensor, log_ratio: torch.Tensor,
            centre: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotate each image about its principal point by a random angle and zoom it by
    0.85-1.15: for fx = fy this is exactly the view of the hand rotated about the optical
    axis with a focal length times the zoom, so 2D targets move with the image, relative
    depths stay and log(root depth / fx) drops by log(zoom)."""
    count, size = len(images), images.shape[-1]
    angle = (torch.rand(count, generator=generator) * 2 - 1) * torch.pi
    zoom = 0.85 + 0.3 * torch.rand(count, generator=generator)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    new_uv = (uv - centre[:, None]) @ rotation.transpose(1, 2) * zoom[:, None, None] \
        + centre[:, None]
    # affine_grid maps output to input coordinates (normalised, align_corners=False).
    inverse = rotation.transpose(1, 2) / zoom[:, None, None]
    centre_n = (2 * centre + 1) / size - 1
    offset = centre_n - (inverse @ centre_n[..., None])[..., 0]
    grid = nn.functional.affine_grid(torch.cat([inverse, offset[..., None]], dim=2),
                                     list(images.shape), align_corners=False)
    warped = nn.functional.grid_sample(images, grid, padding_mode="reflection",
                                       align_corners=False)
    return warped, new_uv, log_ratio - zoom.log()


def train_hand_cnn(spec: Any, device: torch.device, out: Path | None = None,
                   epochs: int | None = None, seed: int = 0) -> Path:
    """Train on the spec's train split (AdamW, one-cycle schedule, random rotation about the
    principal point, zoom and colour jitter); save the weights in float16."""
    from bench.runner import build_dataset

    torch.manual_seed(seed)
    dataset = build_dataset(spec, split="train")
    columns = list(zip(*[_targets(dataset[i]) for i in range(len(dataset))], strict=True))
    images, uv, rel_z, log_ratio, centre = (torch.stack(c) for c in columns)
    module = HandCNN().to(device)
    epochs = epochs or 60
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(images) + 31) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    module.train()
    for epoch in range(epochs):
        total = 0.0
        for chunk in torch.randperm(len(images), generator=generator).split(32):
            x, target_uv, target_ratio = augment(images[chunk], uv[chunk], log_ratio[chunk],
                                                 centre[chunk], generator)
            gain = 1.0 + 0.25 * (torch.rand(len(chunk), 3, 1, 1, generator=generator) - 0.5)
            x = (x * gain).clamp(0, 1).to(device)
            pred_uv, pred_z, pred_ratio = module(x)
            loss = ((pred_uv - target_uv.to(device)).abs().mean() / 4.0
                    + (pred_z - rel_z[chunk].to(device)).abs().mean() * DEPTH_SCALE
                    + (pred_ratio - target_ratio.to(device)).abs().mean() * 5.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss) * len(chunk)
        print(f"hand-cnn epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    print(f"trained hand-cnn in {time.perf_counter() - start:.1f}s on {device}")
    path = out or weights_path(spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in module.state_dict().items()}
    torch.save(state, path)
    return path


@register_baseline("hand-cnn", "handpose", weights=lambda task: [weights_path(task)],
                   train=train_hand_cnn, default_task="synthetic-hands",
                   description="small ResNet (random init): heatmaps + root-relative depth, "
                               "lifted with K")
def build_hand_cnn(spec: Any, info: Any, device: torch.device):
    """Load the trained HandCNN for ``spec.task``."""
    path = weights_path(spec.task)
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline 'hand-cnn' on task {spec.task!r} "
                         f"({path} is missing)",
                         f"train them with `arbench train hand-cnn --task {spec.task}`")
    module = HandCNN()
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v
                            for k, v in state.items()})
    return cnn_predictor(module.to(device).eval())
