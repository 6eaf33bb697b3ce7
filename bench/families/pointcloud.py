"""Point-cloud classification: sample ``points`` [N,3] (+ ``normals``) and ``label``;
prediction logits [num_classes].

Test-time voting: every sample carries ``votes`` (K) and ``up_axis``; ``with_votes(fn)``
evaluates ``fn`` on the cloud rotated about the up axis by 2*pi*k/K for k = 0..K-1 (as
PointNet's evaluate.py does) and averages the logits. Plain networks (TorchScript,
torch.export, state_dict) are called as ``module(points [B,N,3]) -> logits [B,C]`` and get
voting automatically; baselines vote through the same helper.

Predictions file: the classification format, ``.npz`` with ``ids`` [S] (str) and
``logits`` [S,C] (float), or a CSV with a header ``id,logit_0,...,logit_{C-1}``; ids are
the samples' ``id`` (``<class>/<name>`` for the OFF layout, ``<h5 file>/<index>`` for HDF5).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.families.base import Batch, Family, Predictor, check_tensor
from bench.families.classification import ClassificationFamily, LogitsCsv
from bench.registry import FAMILIES


def rotation_about_axis(angle: float, axis: int, device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rotation matrix [3,3] by ``angle`` radians about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3
    rotation = torch.eye(3, device=device, dtype=dtype)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def rotate_batch(batch: Batch, rotation: torch.Tensor) -> Batch:
    """A shallow copy of ``batch`` with ``points`` (and ``normals``) rotated: p' = R p."""
    rotated = dict(batch)
    for key in ("points", "normals"):
        if key in batch and isinstance(batch[key], torch.Tensor):
            rotated[key] = batch[key] @ rotation.T.to(batch[key].dtype)
    return rotated


def with_votes(fn: Callable[[Batch], torch.Tensor]) -> Callable[[Batch], torch.Tensor]:
    """Wrap ``fn(batch) -> logits [B,C]`` to average logits over the batch's K votes."""

    def voted(batch: Batch) -> torch.Tensor:
        votes = int(batch["votes"][0]) if "votes" in batch else 1
        if votes <= 1:
            return fn(batch)
        axis = int(batch["up_axis"][0])
        device = batch["points"].device
        total = None
        for k in range(votes):
            rotation = rotation_about_axis(2.0 * math.pi * k / votes, axis, device)
            logits = fn(rotate_batch(batch, rotation)).float()
            total = logits if total is None else total + logits
        return total / votes

    return voted


@FAMILIES.register("pointcloud")
class PointCloudFamily(Family):
    """Point-cloud classification: points [N,3] (+ normals), label -> logits [num_classes]."""

    name = "pointcloud"
    sample_keys = ("id", "points", "label")

    def module_predictor(self, module: Any) -> Predictor:
        """A network called as ``module(points [B,N,3]) -> logits [B,C]``, with voting."""
        return with_votes(lambda batch: module(batch["points"]))

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> torch.Tensor:
        """Logits must be float [B, num_classes] and finite."""
        logits = check_tensor("logits", pred, (len(batch["id"]), info.meta.get("num_classes")))
        return logits.float()

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """Read ``.npz`` (ids, logits) or CSV (id, logit_0 ...) predictions."""
        return ClassificationFamily().load_predictions(path, dataset)

    def prediction_writer(self, folder: Path, dataset: Any) -> LogitsCsv:
        """``predictions.csv`` (``id,logit_0,...``), grown batch by batch."""
        return LogitsCsv(folder, dataset)
