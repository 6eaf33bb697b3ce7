"""Hand pose from a single image.

Sample: ``image`` [3,H,W] in [0,1], ``K`` [3,3], ``keypoints`` [21,3] (metres, camera frame,
FreiHAND order), ``visibility`` [21] (bool), optionally ``vertices`` [V,3] (metres); K,
keypoints and vertices are float64, as read from FreiHAND's JSON (metrics run in float64).
Prediction: keypoints [B,21,3] in metres in the camera frame, or a dict with
``keypoints`` and optionally ``vertices`` [B,V,3].

Predictions file: FreiHAND's ``pred.json``, ``[xyz_list, verts_list]`` with one entry per
sample in data-set order; each xyz entry is 21 x 3 (metres); each verts entry is V x 3 or
``[]`` (no vertices).

A plain network (``--model file.pt``) is called as ``module(images [B,3,H,W], K [B,3,3])``
and returns keypoints [B,21,3].
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError
from bench.families.base import Batch, Family, PredictionTable, Predictor, check_tensor
from bench.formats.jsonfile import read_json
from bench.registry import FAMILIES

NUM_KEYPOINTS = 21
# A prediction whose typical distance to the camera is this many times the ground truth's
# is almost surely in millimetres (factor 1000) rather than metres.
SCALE_WARNING_RATIO = 100.0


class PredictionFile(PredictionTable):
    """Serves the rows of a ``pred.json`` by sample id (row i = data-set sample i)."""

    def __init__(self, ids: list[str], keypoints: torch.Tensor, vertices: torch.Tensor | None,
                 source: Path) -> None:
        super().__init__(ids, source)
        self.keypoints, self.vertices = keypoints, vertices

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        rows = self.rows_for(batch)
        device = batch["keypoints"].device
        out = {"keypoints": self.keypoints[rows].to(device)}
        if self.vertices is not None:
            out["vertices"] = self.vertices[rows].to(device)
        return out


def read_pred_json(path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and read FreiHAND's ``pred.json`` for a data set of ``size`` samples.

    Returns keypoints [N,21,3] (float64, NaN kept) and vertices [N,V,3] or None.
    """
    payload = read_json(path, ContractError)
    if not isinstance(payload, list) or len(payload) != 2:
        raise ContractError(f"{path} must be a JSON list [xyz_list, verts_list], got "
                            f"{type(payload).__name__} of length "
                            f"{len(payload) if isinstance(payload, list) else 'n/a'}")
    xyz_list, verts_list = payload
    for name, entries in (("xyz_list", xyz_list), ("verts_list", verts_list)):
        if not isinstance(entries, list) or len(entries) != size:
            raise ContractError(
                f"{path}: {name} has {len(entries) if isinstance(entries, list) else 'no'} "
                f"entries, the data set has {size} samples (one entry per sample, in order)")
    keypoints = _stack(path, "xyz_list", xyz_list, NUM_KEYPOINTS)
    if all(isinstance(v, list) and len(v) == 0 for v in verts_list):
        return keypoints, None
    return keypoints, _stack(path, "verts_list", verts_list, None)


def _stack(path: Path, name: str, entries: list, rows: int | None) -> torch.Tensor:
    expected = rows if rows is not None else len(entries[0]) if entries else 0
    for index, entry in enumerate(entries):
        try:
            array = np.asarray(entry, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{path}: {name}[{index}] is not a list of numbers: {exc}") from exc
        if array.shape != (expected, 3):
            raise ContractError(f"{path}: {name}[{index}] has shape {list(array.shape)}, "
                                f"expected [{expected}, 3]")
    return torch.tensor(np.asarray(entries, dtype=np.float64))


@FAMILIES.register("handpose")
class HandPoseFamily(Family):
    """3D hand pose: image, K, 21 keypoints (m, camera frame) -> 21 keypoints (+ vertices)."""

    name = "handpose"
    sample_keys = ("id", "image", "K", "keypoints", "visibility")

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def module_predictor(self, module: Any) -> Predictor:
        """A network called as ``module(images [B,3,H,W], K [B,3,3]) -> keypoints [B,21,3]``."""
        return lambda batch: module(batch["image"], batch["K"])

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> dict[str, torch.Tensor]:
        """Keypoints float [B,21,3] (NaN allowed: counted as failures, with a warning);
        optional vertices [B,V,3]; warns when the scale looks like millimetres."""
        if isinstance(pred, dict):
            if "keypoints" not in pred:
                raise ContractError(f"hand-pose prediction dict needs 'keypoints', got keys "
                                    f"{sorted(pred)}")
            out = {"keypoints": pred["keypoints"]}
            if pred.get("vertices") is not None:
                out["vertices"] = check_tensor("vertices", pred["vertices"],
                                               (len(batch["id"]), None, 3), finite=False)
        else:
            out = {"keypoints": pred}
        keypoints = check_tensor("keypoints", out["keypoints"],
                                 (len(batch["id"]), NUM_KEYPOINTS, 3), finite=False)
        bad = int((~torch.isfinite(keypoints)).any(dim=-1).sum())
        if bad and "nan" not in self.warned:
            self.warned.add("nan")
            warnings.warn(f"{bad} predicted keypoints are NaN or infinite: they count as "
                          "failures at every threshold and make the mean errors infinite",
                          stacklevel=2)
        finite = torch.isfinite(keypoints).all(dim=-1)
        if finite.any() and "scale" not in self.warned:
            pred_depth = keypoints.norm(dim=-1)[finite].median()
            gt_depth = batch["keypoints"].norm(dim=-1)[finite].median()
            if pred_depth > SCALE_WARNING_RATIO * gt_depth:
                self.warned.add("scale")
                warnings.warn(f"predicted keypoints lie {float(pred_depth / gt_depth):.0f} times "
                              "farther from the camera than the ground truth: they look like "
                              "millimetres, but hand-pose predictions are in metres", stacklevel=2)
        out["keypoints"] = keypoints.double()
        if "vertices" in out:
            out["vertices"] = out["vertices"].double()
        return out

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """FreiHAND's ``pred.json``: ``[xyz_list, verts_list]``, one entry per sample."""
        keypoints, vertices = read_pred_json(path, len(dataset))
        if hasattr(dataset, "sample_id"):
            ids = [dataset.sample_id(i) for i in range(len(dataset))]
        else:
            ids = [dataset[i]["id"] for i in range(len(dataset))]
        return PredictionFile(ids, keypoints, vertices, path)
