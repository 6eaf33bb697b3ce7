"""Networks and callables the tests reference as ``nets:NAME`` (module:function refs)."""

from __future__ import annotations

import torch
from torch import nn


def tiny_cnn() -> nn.Module:
    """A small digits classifier: 28x28 -> 10 logits."""
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(32, 10))


def other_cnn() -> nn.Module:
    """Another architecture, whose parameters do not fit tiny_cnn's."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def predict_label_from_pixels(batch: dict) -> torch.Tensor:
    """A Python-callable predictor: one-hot logits of (sum of pixels) mod 10."""
    index = (batch["image"].sum(dim=(1, 2, 3)).long()) % 10
    return nn.functional.one_hot(index, 10).float()


def wrong_shape(batch: dict) -> torch.Tensor:
    """Breaks the contract: 3 logits instead of 10."""
    return torch.zeros(len(batch["id"]), 3)


def nan_logits(batch: dict) -> torch.Tensor:
    """Breaks the contract: NaN logits."""
    return torch.full((len(batch["id"]), 10), float("nan"))


class FailsLater:
    """Raises on its second batch, to check a failed run leaves nothing behind."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: dict) -> torch.Tensor:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("model crashed on batch 2")
        return torch.zeros(len(batch["id"]), 10)


fails_later = FailsLater()
