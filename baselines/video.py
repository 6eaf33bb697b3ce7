"""Semi-supervised VOS baselines: copy the first-frame mask (the floor), and propagate it
with dense optical flow (OpenCV's DIS, Kroeger et al. 2016), warping the previous label
map along the backward flow with nearest-neighbour sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from bench.models import register_baseline


def first_frame(batch: dict[str, Any]) -> list[torch.Tensor]:
    """Every frame gets the first frame's mask."""
    return [first[None].expand(frames.shape[0], -1, -1).clone()
            for frames, first in zip(batch["frames"], batch["first_mask"], strict=True)]


def propagate_flow(frames: np.ndarray, first: np.ndarray, preset: int) -> np.ndarray:
    """Labels [T,H,W] from uint8 frames [T,3,H,W] and the first mask [H,W] by DIS flow."""
    dis = cv2.DISOpticalFlow_create(preset)
    height, width = first.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))
    grey = [cv2.cvtColor(np.ascontiguousarray(f.transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
            for f in frames]
    labels = [first.astype(np.uint8)]
    for t in range(1, len(frames)):
        flow = dis.calc(grey[t], grey[t - 1], None)  # where each pixel of t was in t-1
        labels.append(cv2.remap(labels[-1], grid_x + flow[..., 0], grid_y + flow[..., 1],
                                cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0))
    return np.stack(labels)


@register_baseline("first-frame", "video",
                   description="copy the first-frame masks to every frame (the floor)")
def build_first_frame(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """The first-frame masks, unchanged, on every frame."""
    return first_frame


@register_baseline("flow-dis", "video",
                   description="first-frame masks propagated by OpenCV DIS optical flow")
def build_flow(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Masks warped frame to frame along DIS optical flow (preset MEDIUM)."""

    def predict(batch: dict[str, Any]) -> list[torch.Tensor]:
        out = []
        for frames, first in zip(batch["frames"], batch["first_mask"], strict=True):
            labels = propagate_flow(frames.cpu().numpy(), first.cpu().numpy(),
                                    cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            out.append(torch.from_numpy(labels.astype(np.int64)).to(first.device))
        return out

    return predict
