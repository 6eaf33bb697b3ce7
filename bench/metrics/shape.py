"""Single-view shape metrics, as Occupancy Networks' ``im2mesh/eval.py`` and Tatarchenko et
al. (CVPR 2019, "What Do Single-view 3D Reconstruction Networks Learn?") define them.

Pure functions first (numpy/torch, nearest neighbours by KD-tree on CPU and chunked
``torch.cdist`` on GPU, never an N x N matrix), then two stateful metrics:

- ``shape_surface``: Chamfer-L1/L2 with accuracy and completeness, F-score@d with precision
  and recall, normal consistency and volumetric IoU, per sample, per class, instance mean and
  class mean. All lengths are in the data set's normalised frame (the unit cube).
- ``voxel_iou``: 3D-R2N2 / Pix2Vox voxel IoU of thresholded occupancy grids at 32^3.

Conventions (defaults follow Occupancy Networks): Chamfer-L1 = (accuracy + completeness) / 2
over unsquared Euclidean distances, Chamfer-L2 = the mean of the two mean squared distances,
not multiplied by 1000; ``chamfer_reduction: sum`` adds the two directions instead. Normal
consistency uses absolute dot products. An empty prediction gets Occupancy Networks' worst
values for the [-0.5, 0.5]^3 cube: distances sqrt(3), squared distances 3, F-score 0,
normal consistency -1 (OccNet's placeholder, below the attainable 0), IoU 0.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError, ContractError
from bench.geometry.grids import cell_centres, uniform_cube_points
from bench.geometry.mesh import is_watertight, mesh_occupancy, sample_surface
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.registry import METRICS

if TYPE_CHECKING:
    from bench.families.shape import ShapePrediction

torch = lazy_import("torch")

EMPTY_DISTANCE = math.sqrt(3.0)
EMPTY_DISTANCE2 = 3.0


def pointcloud_metrics(
    pred: np.ndarray, gt: np.ndarray, pred_normals: np.ndarray | None = None,
    gt_normals: np.ndarray | None = None, thresholds: tuple[float, ...] = (0.01,),
    chamfer_reduction: str = "mean", device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Occupancy Networks' ``eval_pointcloud`` plus Tatarchenko et al.'s F-score.

    ``pred`` [N,3] and ``gt`` [M,3] are surface samples (same units as ``thresholds``).
    accuracy = mean distance pred -> gt, completeness = mean distance gt -> pred (and the
    squared versions ``accuracy2``/``completeness2``); ``chamfer_l1`` and ``chamfer_l2`` combine
    the two directions by ``chamfer_reduction`` (``mean``: OccNet, ``sum``: e.g. PSGN).
    ``precision@d`` = share of pred points closer than d to gt, ``recall@d`` likewise from
    gt, ``fscore@d`` their harmonic mean (0 when both are 0). ``normal_consistency`` is the
    mean of both directions' absolute normal dot products, NaN without normals.
    """
    factor = 0.5 if chamfer_reduction == "mean" else 1.0
    if len(pred) == 0:
        out = {"accuracy": EMPTY_DISTANCE, "completeness": EMPTY_DISTANCE,
               "accuracy2": EMPTY_DISTANCE2, "completeness2": EMPTY_DISTANCE2,
               "chamfer_l1": 2 * factor * EMPTY_DISTANCE,
               "chamfer_l2": 2 * factor * EMPTY_DISTANCE2,
               "normal_consistency": -1.0 if gt_normals is not None else math.nan}
        for d in thresholds:
            out.update({f"precision@{d:g}": 0.0, f"recall@{d:g}": 0.0, f"fscore@{d:g}": 0.0})
        return out
    from bench.geometry.distances import nearest_both_ways

    to_gt, idx_gt, to_pred, idx_pred = nearest_both_ways(pred, gt, device)
    out = {"accuracy": float(to_gt.mean()), "completeness": float(to_pred.mean()),
           "accuracy2": float((to_gt ** 2).mean()), "completeness2": float((to_pred ** 2).mean())}
    out["chamfer_l1"] = factor * (out["accuracy"] + out["completeness"])
    out["chamfer_l2"] = factor * (out["accuracy2"] + out["completeness2"])
    if pred_normals is not None and gt_normals is not None:
        acc_n = np.abs((pred_normals * gt_normals[idx_gt]).sum(1)).mean()
        comp_n = np.abs((gt_normals * pred_normals[idx_pred]).sum(1)).mean()
        out["normal_consistency"] = float(0.5 * (acc_n + comp_n))
    else:
        out["normal_consistency"] = math.nan
    for d in thresholds:
        precision = float((to_gt < d).mean())
        recall = float((to_pred < d).mean())
        total = precision + recall
        out[f"precision@{d:g}"] = precision
        out[f"recall@{d:g}"] = recall
        out[f"fscore@{d:g}"] = 2 * precision * recall / total if total > 0 else 0.0
    return out


def iou(occ_a: np.ndarray | torch.Tensor, occ_b: np.ndarray | torch.Tensor) -> float:
    """Intersection over union of two boolean occupancy arrays (0 when both are empty)."""
    a = torch.as_tensor(np.asarray(occ_a)).bool().reshape(-1)
    b = torch.as_tensor(np.asarray(occ_b)).bool().reshape(-1)
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 0.0


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _class_tables(values: torch.Tensor, classes: torch.Tensor, names: dict[int, str],
                  keys: list[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Instance means, class means (over classes present) and the per-class table."""
    overall: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}
    present = sorted(set(classes.tolist()))
    for column, key in enumerate(keys):
        column_values = values[:, column]
        finite = torch.isfinite(column_values)
        if not finite.any():
            continue
        overall[key] = float(column_values[finite].mean())
        class_means = []
        for cls in present:
            sel = (classes == cls) & finite
            if sel.any():
                mean = float(column_values[sel].mean())
                class_means.append(mean)
                name = names.get(cls, str(cls))
                per_class.setdefault(name, {"n": int((classes == cls).sum())})[key] = mean
        overall[f"{key}_class_mean"] = float(np.mean(class_means))
    return overall, per_class


SURFACE_LOWER_IS_BETTER = {"chamfer_l1", "chamfer_l2", "accuracy", "completeness",
                           "accuracy2", "completeness2"}


def surface_keys(fractions: list[float]) -> list[str]:
    """The per-sample values of ``shape_surface`` for F-score thresholds ``fractions`` (of
    the cube's side): distances, normal consistency, IoU, watertightness, then per threshold
    (named in percent) F-score, precision and recall."""
    keys = ["chamfer_l1", "chamfer_l2", "accuracy", "completeness", "accuracy2",
            "completeness2", "normal_consistency", "iou", "gt_watertight"]
    for name in (f"{100 * f:g}%" for f in fractions):
        keys += [f"fscore@{name}", f"precision@{name}", f"recall@{name}"]
    return keys


class _ShapeMetric(Metric):
    """Shared state: per-sample value rows [B,K] and class indices [B] (cat-reduced)."""

    keys: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.add_state("values", torch.zeros(0, 0, dtype=torch.float64), "cat")
        self.add_state("classes", torch.zeros(0, dtype=torch.long), "cat")
        self.add_object_state("class_names", "union")

    def _record(self, rows: list[dict[str, float]],
                batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        table = torch.tensor([[row[k] for k in self.keys] for row in rows], dtype=torch.float64)
        self.accumulate("values", table)
        self.accumulate("classes", torch.as_tensor(batch["class_index"]).long().reshape(-1).cpu())
        indices = torch.as_tensor(batch["class_index"]).reshape(-1).tolist()
        self.accumulate("class_names", {int(index): str(name) for index, name
                                        in zip(indices, batch["class_name"], strict=True)})
        return {key: table[:, column] for column, key in enumerate(self.keys)}

    def compute(self) -> dict[str, float]:
        values = self.state("values")
        if values.numel() == 0:
            return {}
        overall, self._per_class = _class_tables(values, self.state("classes"),
                                                 self.state("class_names"), self.keys)
        return overall

    def details(self) -> dict[str, Any]:
        return {f"{self.name}_per_class": getattr(self, "_per_class", {})}


@METRICS.register("shape_surface")
class ShapeSurface(_ShapeMetric):
    """Chamfer-L1/L2, accuracy, completeness, F-score@d, normal consistency, volumetric IoU.

    ``n_points`` surface samples per shape (``seed`` fixed, recorded in the spec);
    ``fscore_thresholds`` as fractions of the normalisation cube's side ``cube_side``
    (default 1%); IoU on ``iou_points`` points uniform in the cube padded by ``iou_padding``
    (OccNet: 0.1), inside tested with Open3D's ``compute_occupancy``; a ground truth that is
    not watertight gets IoU NaN (counted in ``non_watertight_gt``) while the point metrics
    are still computed; a point-cloud prediction is used as given (not resampled, as OccNet's
    ``eval_pointcloud``): it has no inside, so its IoU is NaN (left out of the means), and
    its normal consistency uses the normals given with the points (NaN without). Grids
    become meshes by marching cubes at ``grid_level``.
    """

    name = "shape_surface"

    @classmethod
    def declare(cls, n_points: int = 100_000, fscore_thresholds: list[float] | None = None,
                cube_side: float = 1.0, iou_points: int = 100_000, iou_padding: float = 0.1,
                chamfer_reduction: str = "mean", grid_level: float = 0.5, seed: int = 0,
                figure_samples: int = 4) -> dict[str, bool]:
        if chamfer_reduction not in ("mean", "sum"):
            raise BenchError(f"shape_surface: chamfer_reduction must be 'mean' or 'sum', "
                             f"got {chamfer_reduction!r}")
        fractions = [float(f) for f in (fscore_thresholds or [0.01])]
        return {out: key not in SURFACE_LOWER_IS_BETTER for key in surface_keys(fractions)
                if key != "gt_watertight" for out in (key, f"{key}_class_mean")}

    def __init__(self, n_points: int = 100_000, fscore_thresholds: list[float] | None = None,
                 cube_side: float = 1.0, iou_points: int = 100_000, iou_padding: float = 0.1,
                 chamfer_reduction: str = "mean", grid_level: float = 0.5, seed: int = 0,
                 figure_samples: int = 4) -> None:
        super().__init__()
        self.higher_is_better = self.declare(
            n_points, fscore_thresholds, cube_side, iou_points, iou_padding, chamfer_reduction,
            grid_level, seed, figure_samples)
        self.n_points = int(n_points)
        self.fractions = [float(f) for f in (fscore_thresholds or [0.01])]
        self.thresholds = tuple(f * cube_side for f in self.fractions)
        self.cube_side = cube_side
        self.iou_points = int(iou_points)
        self.iou_padding = iou_padding
        self.reduction = chamfer_reduction
        self.grid_level = grid_level
        self.seed = seed
        self.add_object_state("examples", "extend", limit=int(figure_samples))
        self.fscore_names = [f"{100 * f:g}%" for f in self.fractions]
        self.keys = surface_keys(self.fractions)
        self.per_sample_key = {key: key for key in self.keys if key != "gt_watertight"}

    def evaluate_one(self, pred: ShapePrediction, gt_vertices: np.ndarray,
                     gt_faces: np.ndarray, sample_id: str,
                     device: str | torch.device = "cpu") -> dict[str, float]:
        """All values for one sample; surface sampling seeded by ``seed`` and the sample id."""
        rng = np.random.default_rng([self.seed, zlib.crc32(sample_id.encode())])
        gt_points, gt_normals = sample_surface(gt_vertices, gt_faces, self.n_points, rng)
        if len(gt_points) == 0:
            raise ContractError("the ground-truth mesh has no surface area (empty or degenerate)")
        mesh = pred.mesh(self.grid_level)
        if mesh is not None:
            points, normals = sample_surface(mesh[0], mesh[1], self.n_points, rng)
        else:
            points, normals = pred.points, pred.normals
        row = pointcloud_metrics(points, gt_points, normals, gt_normals if normals is not None
                                 else None, self.thresholds, self.reduction, device)
        watertight = is_watertight(gt_faces)
        row["gt_watertight"] = float(watertight)
        if not watertight or mesh is None:
            row["iou"] = math.nan
        else:
            probe = uniform_cube_points(self.iou_points, self.cube_side, self.iou_padding,
                                        self.seed)
            row["iou"] = iou(pred.inside(probe, self.grid_level),
                             mesh_occupancy(gt_vertices, gt_faces, probe))
        for fraction, name in zip(self.thresholds, self.fscore_names, strict=True):
            for kind in ("fscore", "precision", "recall"):
                row[f"{kind}@{name}"] = row.pop(f"{kind}@{fraction:g}")
        return row

    def update(self, pred: list[ShapePrediction], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        rows = []
        device = batch["image"].device if isinstance(batch.get("image"), torch.Tensor) else "cpu"
        for i, sample_pred in enumerate(pred):
            gt_v = _numpy(batch["vertices"][i]).astype(np.float64)
            gt_f = _numpy(batch["faces"][i]).astype(np.int64)
            rows.append(self.evaluate_one(sample_pred, gt_v, gt_f, str(batch["id"][i]), device))
            if self.has_room("examples"):
                self.accumulate("examples", {
                    "id": batch["id"][i], "image": _numpy(batch["image"][i]),
                    "gt": (gt_v, gt_f), "pred": sample_pred, "K": _numpy(batch["K"][i]),
                    "R": _numpy(batch["R"][i]), "t": _numpy(batch["t"][i])})
        return self._record(rows, batch)

    def compute(self) -> dict[str, float]:
        overall = super().compute()
        values = self.state("values")
        if values.numel():
            column = values[:, self.keys.index("gt_watertight")]
            self._non_watertight = int((column == 0).sum())
        overall.pop("gt_watertight", None)
        overall.pop("gt_watertight_class_mean", None)
        return overall

    def details(self) -> dict[str, Any]:
        return {**super().details(),
                "shape_surface_conventions": {
                    "n_points": self.n_points, "seed": self.seed,
                    "fscore_thresholds": list(self.thresholds), "cube_side": self.cube_side,
                    "chamfer_reduction": self.reduction, "chamfer_scale": 1,
                    "normals": "absolute dot product", "iou_points": self.iou_points,
                    "iou_padding": self.iou_padding,
                    "non_watertight_gt": getattr(self, "_non_watertight", 0)}}

    def figures(self, out_dir: Path) -> list[Path]:
        """image | ground truth | prediction for the first few samples, one PNG."""
        examples = self.state("examples")
        if not examples:
            return []
        from bench.families.shape import render_panel

        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "shape_examples.png"
        render_panel(examples, path, self.grid_level)
        return [path]


@METRICS.register("voxel_iou")
class VoxelIoU(_ShapeMetric):
    """Voxel IoU of thresholded occupancy at the ground truth's voxel grid (3D-R2N2, Pix2Vox).

    A grid prediction with the ground truth's resolution and bounds is compared cell by
    cell after thresholding at ``threshold`` (3D-R2N2: 0.4); any other mesh or grid
    prediction is voxelised at the ground-truth cell centres by an inside test; point
    clouds get NaN (left out of the means).
    """

    name = "voxel_iou"

    @classmethod
    def declare(cls, threshold: float = 0.4) -> dict[str, bool]:
        return {"voxel_iou": True, "voxel_iou_class_mean": True}

    def __init__(self, threshold: float = 0.4) -> None:
        super().__init__()
        self.threshold = threshold
        self.keys = ["voxel_iou"]
        self.higher_is_better = self.declare(threshold)
        self.per_sample_key = {"voxel_iou": "voxel_iou"}

    def evaluate_one(self, pred: ShapePrediction, gt_voxels: np.ndarray,
                     gt_bounds: np.ndarray) -> float:
        """Voxel IoU of one prediction against a boolean grid [R,R,R] over ``gt_bounds``."""
        resolution = gt_voxels.shape[0]
        if (pred.kind == "grid" and pred.grid.shape == gt_voxels.shape
                and np.allclose(pred.bounds, gt_bounds, atol=1e-6)):
            return iou(pred.grid >= self.threshold, gt_voxels)
        occupied = pred.inside(cell_centres(gt_bounds, resolution), self.threshold)
        if occupied is None:
            return math.nan
        return iou(occupied.reshape(gt_voxels.shape), gt_voxels)

    def update(self, pred: list[ShapePrediction], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        rows = [{"voxel_iou": self.evaluate_one(p, _numpy(batch["voxels"][i]).astype(bool),
                                                _numpy(batch["voxel_bounds"][i]))}
                for i, p in enumerate(pred)]
        return self._record(rows, batch)
