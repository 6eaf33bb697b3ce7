"""Room layout metrics: LSUN pixel and corner error, layout depth errors, ScanNet-Layout IoU.

Functional versions first (one image each, small and checkable by hand), then the stateful
metrics the runner uses; every metric keeps per-image values (so ``compare`` can bootstrap
confidence intervals) and reports their mean.

References:
- pixel error, corner error: the LSUN room layout challenge's MATLAB toolkit
  (``evaluationFunc.m``, ``pixelwiseAccuracy.m``, ``cornerError.m``). Pixel accuracy is
  the largest number of pixels that agree under a one-to-one correspondence between the
  predicted and the ground-truth label values (Hungarian matching on their contingency
  table), divided by the image size; pixel error = 1 - accuracy. Corner error matches
  predicted to ground-truth corners one-to-one (Hungarian, Euclidean distance), sums the
  matched distances divided by the image diagonal, adds 1/3 per corner of the count
  difference (a wrong type with a different corner count) and divides by the larger count.
- layout depth RMSE (ScanNet-Layout's ``evaluate_3d_layouts.py``): over pixels with ground
  truth layout depth > 0, no scaling; AbsRel over the same pixels (Eigen et al.).
- per-plane IoU and pixel error as ScanNet-Layout computes them (same script): ground-truth
  planes sorted by area (largest first) each take the remaining predicted plane of highest
  IoU above 0.3; IoU is averaged over max(#predicted planes kept in order, #ground-truth
  planes); pixel error counts pixels whose matched plane differs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import ContractError
from bench.lazy import lazy_import
from bench.metrics.base import Metric, new_figure, save_figure
from bench.registry import METRICS

cv2 = lazy_import("cv2")
np = lazy_import("numpy")
torch = lazy_import("torch")
layout_family = lazy_import("bench.families.layout")

PLANE_IOU_THRESHOLD = 0.3


def contingency(pred: torch.Tensor, gt: torch.Tensor, size: int | None = None,
                scratch: np.ndarray | None = None) -> np.ndarray:
    """Counts [G,P] (int64) of pixels with ground-truth value g and predicted value p
    (non-negative integer maps of equal size). ``scratch``: an int64 buffer of the maps'
    pixel count to reuse for the pair codes (saves an allocation per image)."""
    gt_values = _int64_pixels(gt)
    pred_values = _int64_pixels(pred)
    rows = int(gt_values.max()) + 1 if size is None else size
    cols = int(pred_values.max()) + 1 if size is None else size
    codes = np.multiply(gt_values, cols, out=scratch)
    codes += pred_values
    return np.bincount(codes, minlength=rows * cols).reshape(rows, cols)


def _int64_pixels(labels: torch.Tensor) -> np.ndarray:
    values = labels.detach().reshape(-1).cpu().numpy()
    return values if values.dtype == np.int64 else values.astype(np.int64)


def label_tables(pred: Sequence[torch.Tensor], gt: Sequence[torch.Tensor],
                 ids: Sequence[Any]) -> np.ndarray:
    """Contingency tables [B,6,6] (int64, ground truth x prediction) of surface label maps
    [H,W] with values 0..5, one per image (``ids`` name the images in errors); ``pred`` and
    ``gt`` are lists of maps or [B,H,W] tensors (then formed in one pass).

    The pair code ``6 g + p`` of every pixel is formed in uint8 on the maps' device and
    counted by OpenCV's histogram (float32 counts, exact below 2^24 pixels; larger maps are
    counted by ``np.bincount``); a count short of the pixel count (ground-truth values 6..41;
    larger ones wrap in uint8) is a ContractError. The tables of the batch last asked for are
    kept: the layout metrics updated with the same prediction and batch objects share them,
    so each map is read once per batch (a caller changing label maps in place between two
    metric updates must pass new objects)."""
    key = (pred, gt)
    if _LAST_TABLES and _LAST_TABLES[0][0] is pred and _LAST_TABLES[0][1] is gt:
        return _LAST_TABLES[0][2]
    cells = layout_family.NUM_LABELS * layout_family.NUM_LABELS
    if (isinstance(pred, torch.Tensor) and isinstance(gt, torch.Tensor) and pred.ndim == 3
            and pred.shape == gt.shape):
        rows = _pair_codes(pred, gt).reshape(len(pred), -1).cpu().numpy()
    else:
        rows = [_pair_codes(labels, truth).reshape(-1).cpu().numpy()
                for labels, truth in zip(pred, gt, strict=True)]
    tables = np.empty((len(rows), cells), dtype=np.int64)
    for i, codes in enumerate(rows):
        if codes.size < 1 << 24:
            tables[i] = cv2.calcHist([codes[None]], [0], None, [cells], [0, cells]).ravel()
        else:
            tables[i] = np.bincount(codes, minlength=cells)[:cells]
        if int(tables[i].sum()) != codes.size:
            raise ContractError(f"{ids[i]}: ground-truth surface labels outside 0..5")
    tables = tables.reshape(len(rows), layout_family.NUM_LABELS, layout_family.NUM_LABELS)
    _LAST_TABLES[:] = [(*key, tables)]
    return tables


def _pair_codes(labels: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``6 g + p`` (uint8, any shape) of predicted labels p and ground-truth labels g."""
    codes = truth.to(torch.uint8, copy=True).mul_(layout_family.NUM_LABELS)
    return codes.add_(labels.to(torch.uint8))


_LAST_TABLES: list[tuple[Any, Any, np.ndarray]] = []


def pixel_error(pred: torch.Tensor, gt: torch.Tensor, correspondence: str = "hungarian",
                size: int | None = None, scratch: np.ndarray | None = None) -> float:
    """Share of pixels [0,1] whose label differs. ``hungarian`` (LSUN's official toolkit):
    labels are compared after the one-to-one label correspondence that agrees on the most
    pixels; ``none``: labels compared as they are. ``size``: label values are below it
    (found from the maps when None); ``scratch``: as for ``contingency``."""
    return table_pixel_error(contingency(pred, gt, size, scratch), correspondence)


def table_pixel_error(table: np.ndarray, correspondence: str = "hungarian") -> float:
    """``pixel_error`` from the contingency table [G,P] of the two label maps."""
    total = table.sum()
    if correspondence == "none":
        n = min(table.shape)
        return float(1.0 - np.trace(table[:n, :n]) / total)
    if correspondence != "hungarian":
        raise ValueError(f"correspondence must be 'hungarian' or 'none', got {correspondence!r}")
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(1.0 - table[rows, cols].sum() / total)


def tables_pixel_error(tables: np.ndarray, correspondence: str = "hungarian") -> np.ndarray:
    """``table_pixel_error`` [B] of square contingency tables [B,L,L] (L = 6 surface labels):
    every one of the L! label correspondences is tried at once, which finds the same optimum
    as the Hungarian matching (exact integer sums)."""
    if correspondence not in ("hungarian", "none"):
        raise ValueError(f"correspondence must be 'hungarian' or 'none', got {correspondence!r}")
    totals = tables.sum((1, 2))
    if correspondence == "none":
        agree = np.trace(tables, axis1=1, axis2=2)
    else:
        labels = tables.shape[-1]
        agree = tables[:, np.arange(labels), _permutations(labels)].sum(-1).max(1)
    return 1.0 - agree / totals


@functools.cache
def _permutations(size: int) -> np.ndarray:
    """All orderings [size!, size] of 0..size-1."""
    return np.array(list(itertools.permutations(range(size))), dtype=np.intp)


def corner_error(pred: np.ndarray, gt: np.ndarray, height: int, width: int) -> float:
    """LSUN corner error of predicted corners [N,2] against ground truth [M,2] (pixels)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    diagonal = float(np.hypot(height, width))
    count = max(len(pred), len(gt))
    if count == 0:
        return 0.0
    cost = 0.0
    if len(pred) and len(gt):
        distances = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=-1)
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(distances)
        cost = float(distances[rows, cols].sum()) / diagonal
    return (cost + abs(len(pred) - len(gt)) / 3.0) / count


def plane_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = PLANE_IOU_THRESHOLD,
              scratch: np.ndarray | None = None) -> tuple[float, float]:
    """(mean IoU, pixel error) of ScanNet-Layout for plane maps [H,W] (0 = no plane);
    ``scratch``: as for ``contingency``."""
    return table_plane_iou(contingency(pred, gt, scratch=scratch), threshold)


def table_plane_iou(table: np.ndarray, threshold: float = PLANE_IOU_THRESHOLD
                    ) -> tuple[float, float]:
    """``plane_iou`` from the contingency table [G,P] (ground truth x prediction) of the two
    plane maps (rows and columns of absent planes may be zero)."""
    table = table.astype(np.float64)
    total = float(table.sum())
    gt_area, pred_area = table.sum(1), table.sum(0)
    with np.errstate(invalid="ignore"):  # 0 / 0 for pairs of absent planes, never read
        ious = (table / (gt_area[:, None] + pred_area[None, :] - table)).tolist()
    counts, gt_area, pred_area = table.tolist(), gt_area.tolist(), pred_area.tolist()
    gt_planes = [g for g in range(1, len(gt_area)) if gt_area[g] > 0]
    gt_planes.sort(key=lambda g: -gt_area[g])
    candidates = [p for p in range(1, len(pred_area)) if pred_area[p] > 0]
    matches: list[int | None] = []
    for g in gt_planes:
        if not candidates:
            break
        best, best_iou = None, threshold
        for p in candidates:
            if ious[g][p] > best_iou:
                best, best_iou = p, ious[g][p]
        matches.append(best)
        if best is not None:
            candidates.remove(best)
    kept = len(matches) + len(candidates)
    classes = max(kept, len(gt_planes))
    matched = matches + [None] * (len(gt_planes) - len(matches))
    mean_iou = sum(ious[g][p] if p is not None else 0.0
                   for g, p in zip(gt_planes, matched, strict=True)) / classes \
        if classes else 1.0
    agree = counts[0][0] if counts and counts[0] else 0.0
    agree += sum(counts[g][p] for g, p in zip(gt_planes, matches, strict=False) if p is not None)
    return mean_iou, 1.0 - agree / total


def depth_errors(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (RMSE m, AbsRel) [B] of predicted layout depth [B,H,W] (or [H,W]) over
    pixels with ground truth > 0; NaN for an image without any. Where every pixel has
    ground truth (one ``min`` pass tells), the masking passes are skipped."""
    gt = gt.float()
    diff = torch.sub(pred.float(), gt)
    mask = None if gt.numel() and bool(gt.min() > 0) else gt > 0
    if mask is None:
        count = torch.full(gt.shape[:-2], gt.shape[-2] * gt.shape[-1], dtype=torch.float64,
                           device=gt.device)
    else:
        count = mask.flatten(-2).sum(-1).double()
        diff.masked_fill_(~mask, 0.0)
    scratch = torch.mul(diff, diff)
    rmse = (scratch.flatten(-2).sum(-1).double() / count).sqrt()
    denominator = gt if mask is None else torch.where(mask, gt, gt.new_ones(()), out=scratch)
    abs_rel = diff.abs_().div_(denominator).flatten(-2).sum(-1).double() / count
    return rmse, abs_rel


class _PerImageMetric(Metric):
    """Keeps per-image values (``cat`` states) and reports their NaN-free means."""

    keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        for key in self.keys:
            self.add_state(key, torch.zeros(0, dtype=torch.float64), "cat")
        self.higher_is_better = {key: False for key in self.keys}
        self.per_sample_key = {key: key for key in self.keys}

    def _record(self, values: dict[str, list[float]]) -> dict[str, torch.Tensor]:
        out = {}
        for key in self.keys:
            tensor = torch.tensor(values[key], dtype=torch.float64)
            self.accumulate(key, tensor.to(self._defaults[key].device))
            out[key] = tensor.float()
        return out

    def compute(self) -> dict[str, float]:
        out = {}
        for key in self.keys:
            values = self.state(key)
            values = values[~torch.isnan(values)]
            out[key] = float(values.mean()) if values.numel() else float("nan")
        return out

    def details(self) -> dict[str, Any]:
        return {f"{type(self).__name__}_images": {
            key: int((~torch.isnan(self.state(key))).sum()) for key in self.keys}}


@METRICS.register("lsun_layout")
class LsunLayoutMetric(_PerImageMetric):
    """LSUN pixel error and corner error (official toolkit's definitions), per image.

    Params: ``correspondence`` hungarian (official: best one-to-one label correspondence) |
    none (labels compared as they are); ``figures`` how many images get a comparison figure.
    Corner error is NaN (and left out of the mean) for predictions without corners.
    """

    keys = ("pixel_error", "corner_error")

    @classmethod
    def declare(cls, correspondence: str = "hungarian", figures: int = 4) -> dict[str, bool]:
        if correspondence not in ("hungarian", "none"):
            raise ValueError(f"correspondence must be 'hungarian' or 'none', "
                             f"got {correspondence!r}")
        return dict.fromkeys(cls.keys, False)

    def __init__(self, correspondence: str = "hungarian", figures: int = 4) -> None:
        self.declare(correspondence, figures)
        super().__init__()
        self.correspondence = correspondence
        self.n_figures = int(figures)
        self._figure_samples: list[dict[str, Any]] = []

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        values: dict[str, list[float]] = {key: [] for key in self.keys}
        _require_labels(pred, batch, "lsun_layout", "a label map or a type with corners")
        tables = label_tables(pred["labels"], batch["labels"], batch["id"])
        values["pixel_error"] = tables_pixel_error(tables, self.correspondence).tolist()
        for i, name in enumerate(batch["id"]):
            gt = batch["labels"][i]
            labels = pred["labels"][i]
            corners = pred["corners"][i]
            height, width = gt.shape[-2:]
            values["corner_error"].append(float("nan") if corners is None else corner_error(
                corners.cpu().numpy(), batch["corners"][i].cpu().numpy(), height, width))
            if len(self._figure_samples) < self.n_figures:
                self._figure_samples.append({
                    "id": str(name), "image": batch["image"][i].permute(1, 2, 0).cpu().numpy(),
                    "gt": gt.cpu().numpy(), "pred": labels.cpu().numpy(),
                    "gt_corners": batch["corners"][i].cpu().numpy(),
                    "corners": None if corners is None else corners.cpu().numpy()})
        return self._record(values)

    def details(self) -> dict[str, Any]:
        return {"lsun_protocol": {"correspondence": self.correspondence,
                                  "images_with_corners": int(
                                      (~torch.isnan(self.state("corner_error"))).sum()),
                                  "images": int(self.state("pixel_error").numel())}}

    def figures(self, out_dir: Path) -> list[Path]:
        palette = np.array([[0, 0, 0], [0.85, 0.3, 0.3], [0.3, 0.75, 0.3], [0.3, 0.4, 0.9],
                            [0.9, 0.8, 0.3], [0.4, 0.85, 0.9]])
        paths = []
        for sample in self._figure_samples:
            fig, axes = new_figure(1, 3, figsize=(10, 2.8))
            axes[0].imshow(np.clip(sample["image"], 0, 1))
            axes[1].imshow(palette[sample["gt"]])
            axes[2].imshow(palette[np.clip(sample["pred"], 0, 5)])
            axes[1].plot(*sample["gt_corners"].T, "wo", ms=4)
            if sample["corners"] is not None:
                axes[2].plot(*sample["corners"].T, "wo", ms=4)
            for ax, title in zip(axes, ("image", "ground truth", "prediction"), strict=True):
                ax.set_title(title)
                ax.axis("off")
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample["id"])
            paths.append(save_figure(fig, out_dir / f"layout_{safe}.png"))
        return paths


@METRICS.register("layout_depth")
class LayoutDepthMetric(_PerImageMetric):
    """Layout depth RMSE (m) and AbsRel over pixels with ground-truth layout depth, per image
    (NaN and left out for predictions without layout depth)."""

    keys = ("layout_rmse", "layout_abs_rel")

    @classmethod
    def declare(cls) -> dict[str, bool]:
        return dict.fromkeys(cls.keys, False)

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "layout_depth" not in batch:
            raise ContractError("the layout_depth metric needs samples with 'layout_depth' "
                                "(this data set has none)")
        values: dict[str, list[float]] = {key: [] for key in self.keys}
        depths, gt = pred["layout_depth"], batch["layout_depth"]
        if isinstance(gt, torch.Tensor) and not isinstance(depths, torch.Tensor) \
                and all(d is not None for d in depths) \
                and len({tuple(d.shape) for d in depths}) == 1:
            depths = torch.stack(depths)
        if isinstance(depths, torch.Tensor) and isinstance(gt, torch.Tensor) \
                and depths.shape == gt.shape:
            rmse, abs_rel = depth_errors(depths.to(gt.device), gt)
            values["layout_rmse"], values["layout_abs_rel"] = rmse.tolist(), abs_rel.tolist()
            return self._record(values)
        for i, depth in enumerate(depths):
            if depth is None:
                rmse, abs_rel = torch.tensor(float("nan")), torch.tensor(float("nan"))
            else:
                rmse, abs_rel = depth_errors(depth, batch["layout_depth"][i].to(depth.device))
            values["layout_rmse"].append(float(rmse))
            values["layout_abs_rel"].append(float(abs_rel))
        return self._record(values)


@METRICS.register("plane_iou")
class PlaneIouMetric(_PerImageMetric):
    """ScanNet-Layout's per-plane 2D IoU (higher is better) and its pixel error, per image.

    Planes are the sample's ``plane_map`` where it has one, else its surface labels; on
    the prediction side ``plane_map`` where given, else the label map.
    """

    keys = ("plane_iou", "plane_pixel_error")

    @classmethod
    def declare(cls, threshold: float = PLANE_IOU_THRESHOLD) -> dict[str, bool]:
        return {"plane_iou": True, "plane_pixel_error": False}

    def __init__(self, threshold: float = PLANE_IOU_THRESHOLD) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.higher_is_better = self.declare(threshold)

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        values: dict[str, list[float]] = {key: [] for key in self.keys}
        if "plane_map" not in batch and all(p is None for p in pred["plane_map"]):
            _require_labels(pred, batch, "plane_iou", "a label or plane map")
            tables = label_tables(pred["labels"], batch["labels"], batch["id"])
        else:
            tables = [self._plane_table(pred, batch, i) for i in range(len(batch["id"]))]
        for table in tables:
            iou, error = table_plane_iou(table, self.threshold)
            values["plane_iou"].append(iou)
            values["plane_pixel_error"].append(error)
        return self._record(values)

    @staticmethod
    def _plane_table(pred: dict[str, Any], batch: dict[str, Any], i: int) -> np.ndarray:
        gt = batch["plane_map"][i] if "plane_map" in batch else batch["labels"][i]
        planes = pred["plane_map"][i] if pred["plane_map"][i] is not None else pred["labels"][i]
        if planes is None:
            raise ContractError(f"{batch['id'][i]}: the plane_iou metric needs a label or "
                                "plane map")
        return contingency(planes, gt)


def _require_labels(pred: dict[str, Any], batch: dict[str, Any], metric: str, needs: str
                    ) -> None:
    """ContractError naming the first image of the batch without a predicted label map."""
    for name, labels in zip(batch["id"], pred["labels"], strict=True):
        if labels is None:
            raise ContractError(f"{name}: the {metric} metric needs {needs}")
