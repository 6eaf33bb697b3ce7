"""Monocular depth: sample ``image`` [3,H,W] in [0,1], ``depth`` [H,W] (m, 0 = unknown),
``valid`` [H,W] bool, ``K`` [3,3]; prediction depth [H,W] per image.

A predictor returns depth [B,H,W] (or [B,1,H,W], or a list of [H,W] when images differ in
size), or declares another kind with a dict: ``{"inverse_depth": ...}`` (1/m) or
``{"disparity": ...}`` (inverse depth up to an unknown scale and shift, as MiDaS predicts).
A plain network is called as ``module(images [B,3,H,W])`` and read as depth unless it has
an attribute ``arbench_output`` naming another kind. The metric converts and aligns.

Predictions file: ``.npz`` with ``ids`` [N] (str) and one array ``depth``,
``inverse_depth`` or ``disparity`` [N,H,W] (float16 or float32, at the images' size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError
from bench.families.base import (
    Batch,
    Family,
    PredictionTable,
    Predictor,
    batch_device,
    check_tensor,
)
from bench.registry import FAMILIES

KINDS = ("depth", "inverse_depth", "disparity")


class DepthTable(PredictionTable):
    """Serves per-image maps of a predictions file by sample id."""

    def __init__(self, ids: list[str], maps: np.ndarray, kind: str, source: Path) -> None:
        super().__init__(ids, source)
        self.maps, self.kind = maps, kind

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        rows = np.stack([self.maps[row] for row in self.rows_for(batch)]).astype(np.float32)
        return {self.kind: torch.from_numpy(rows).to(batch_device(batch))}


@FAMILIES.register("depth")
class DepthFamily(Family):
    """Monocular depth: image, depth (m), valid mask, K -> depth [H,W] (or inverse depth)."""

    name = "depth"
    sample_keys = ("id", "image", "depth", "valid", "K")

    def module_predictor(self, module: Any) -> Predictor:
        """``module(images [B,3,H,W]) -> [B,H,W] or [B,1,H,W]``; per image for mixed sizes."""
        kind = getattr(module, "arbench_output", "depth")

        def predict(batch: Batch) -> dict[str, Any]:
            images = batch["image"]
            if isinstance(images, torch.Tensor):
                return {kind: module(images)}
            return {kind: [module(image[None])[0] for image in images]}

        return predict

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> dict[str, Any]:
        """Normalise to ``{"kind": str, "value": [B,H,W] tensor or list of [H,W]}``."""
        kind = "depth"
        if isinstance(pred, dict):
            keys = [k for k in pred if k in KINDS]
            if len(keys) != 1:
                raise ContractError(f"a depth prediction dict needs exactly one key of {KINDS}, "
                                    f"got {sorted(pred)}")
            kind = keys[0]
            pred = pred[kind]
        size = len(batch["id"])
        if isinstance(pred, list | tuple):
            if len(pred) != size:
                raise ContractError(f"{len(pred)} {kind} maps for a batch of {size} images")
            value: Any = [self._map(kind, p) for p in pred]
        else:
            if isinstance(pred, torch.Tensor) and pred.ndim == 4 and pred.shape[1] == 1:
                pred = pred[:, 0]
            value = check_tensor(kind, pred, (size, None, None)).float()
        return {"kind": kind, "value": value}

    @staticmethod
    def _map(kind: str, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor) and value.ndim == 3 and value.shape[0] == 1:
            value = value[0]
        return check_tensor(kind, value, (None, None)).float()

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """Read ``.npz`` with ``ids`` and one of ``depth`` / ``inverse_depth`` / ``disparity``."""
        if path.suffix != ".npz":
            raise ContractError(f"{path}: depth predictions must be an .npz file "
                                f"(ids [N], and depth | inverse_depth | disparity [N,H,W])")
        with np.load(path, allow_pickle=False) as data:
            kinds = [k for k in KINDS if k in data]
            if "ids" not in data or len(kinds) != 1:
                raise ContractError(f"{path} must hold 'ids' and exactly one of {KINDS}; "
                                    f"it holds {sorted(data.files)}")
            ids = [str(i) for i in data["ids"]]
            maps = np.asarray(data[kinds[0]])
        if maps.ndim != 3 or len(maps) != len(ids):
            raise ContractError(f"{path}: {kinds[0]} has shape {maps.shape}, expected "
                                f"[{len(ids)}, H, W] for {len(ids)} ids")
        return DepthTable(ids, maps, kinds[0], path)
