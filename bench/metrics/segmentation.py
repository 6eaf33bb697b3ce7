"""Video object segmentation metrics as davis2017-evaluation computes them (semi-supervised).

Functional versions first, on boolean masks [N,H,W] (torch): region similarity J (IoU, 1
when both masks are empty), boundary F-measure (``seg2bmap`` boundaries, matched within a
disk of radius ceil(0.008 * image diagonal), no thinning), and the per-object statistics
mean / recall (fraction of frames > 0.5) / decay (mean of the first quarter of the frames
minus mean of the last quarter, with integer bin edges that work past 256 frames).
Then the stateful ``davis`` metric: J, F and J&F over all objects of all sequences.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from bench.formats.palette import davis_palette
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.metrics.depth import count_per_item
from bench.registry import METRICS

cv2 = lazy_import("cv2")
np = lazy_import("numpy")
torch = lazy_import("torch")

STAT_KEYS = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def jaccard(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Region similarity J per frame [N] of boolean masks [N,H,W]; 1 where the union is empty."""
    inter = count_per_item(gt & pred)
    union = count_per_item(gt | pred)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def seg2bmap(masks: torch.Tensor) -> torch.Tensor:
    """One-pixel boundaries [N,H,W] of boolean masks (Martin et al. 2003, as davis2017):
    a pixel is boundary where it differs from its east, south or south-east neighbour."""
    east = torch.zeros_like(masks)
    south = torch.zeros_like(masks)
    south_east = torch.zeros_like(masks)
    east[:, :, :-1] = masks[:, :, 1:]
    south[:, :-1, :] = masks[:, 1:, :]
    south_east[:, :-1, :-1] = masks[:, 1:, 1:]
    boundary = (masks ^ east) | (masks ^ south) | (masks ^ south_east)
    boundary[:, -1, :] = masks[:, -1, :] ^ east[:, -1, :]
    boundary[:, :, -1] = masks[:, :, -1] ^ south[:, :, -1]
    boundary[:, -1, -1] = False
    return boundary


def disk(radius: int, device: torch.device | None = None) -> torch.Tensor:
    """Disk structuring element [2r+1, 2r+1] (x^2 + y^2 <= r^2), as skimage.morphology.disk."""
    coords = torch.arange(-radius, radius + 1, device=device)
    return (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius ** 2


def dilate(masks: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary dilation [N,H,W] by a symmetric ``kernel`` (outside the image counts as 0):
    OpenCV's ``dilate`` per frame on the CPU, one convolution on a GPU."""
    if masks.device.type == "cpu":
        element = kernel.to(torch.uint8).numpy()
        frames = masks.to(torch.uint8).numpy()
        return torch.from_numpy(np.stack([cv2.dilate(f, element) for f in frames]) > 0)
    import torch.nn.functional as F

    radius = kernel.shape[0] // 2
    weight = kernel.to(torch.float32)[None, None]
    hits = F.conv2d(masks[:, None].to(torch.float32), weight, padding=radius)
    return hits[:, 0] > 0.5


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Matching tolerance in pixels: ``bound_th`` if >= 1, else ceil(bound_th * diagonal)."""
    return int(bound_th) if bound_th >= 1 else math.ceil(bound_th * math.hypot(height, width))


def f_measure(gt: torch.Tensor, pred: torch.Tensor, bound_th: float = 0.008) -> torch.Tensor:
    """Boundary F-measure per frame [N] of boolean masks [N,H,W] (davis2017's ``f_measure``).

    Precision 1 / recall 0 when only the ground truth has a boundary, precision 0 / recall 1
    when only the prediction has one, both 1 when neither has; F = 0 when P + R = 0.
    """
    kernel = disk(boundary_radius(gt.shape[-2], gt.shape[-1], bound_th), gt.device)
    if gt.device.type == "cpu":
        pred_match, gt_match, n_pred, n_gt = boundary_counts_in_windows(gt, pred, kernel)
    else:
        pred_b, gt_b = seg2bmap(pred), seg2bmap(gt)
        pred_match = count_per_item(pred_b & dilate(gt_b, kernel))
        gt_match = count_per_item(gt_b & dilate(pred_b, kernel))
        n_pred = count_per_item(pred_b)
        n_gt = count_per_item(gt_b)
    # With no predicted boundary, matches are 0 too: the reference's special cases follow.
    precision = torch.where(n_pred > 0, pred_match / n_pred.clamp(min=1), torch.ones_like(n_pred))
    recall = torch.where(n_gt > 0, gt_match / n_gt.clamp(min=1), torch.ones_like(n_gt))
    total = precision + recall
    return torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12),
                       torch.zeros_like(total))


def boundary_counts_in_windows(gt: torch.Tensor, pred: torch.Tensor, kernel: torch.Tensor
                               ) -> tuple[torch.Tensor, ...]:
    """``f_measure``'s four counts per frame [N] (float64) on the CPU: matched predicted
    and ground-truth boundary pixels, predicted and ground-truth boundary pixels.

    Frame by frame, only inside the window around both masks (their bounding box grown by
    the disk's radius + 1): outside it both masks and both boundaries are empty, and inside
    it ``seg2bmap`` and the dilation see exactly what they see on the whole frame (the
    window's extra rows and columns are zero, where the image-edge rules give the same
    boundary as the general rule), so the counts are the whole frame's.
    """
    margin = kernel.shape[0] // 2 + 1
    element = kernel.to(torch.uint8).numpy()
    height, width = gt.shape[-2:]
    counts = torch.zeros(4, len(gt), dtype=torch.float64)
    for index, (g, p) in enumerate(zip(gt, pred, strict=True)):
        x, y, w, h = cv2.boundingRect((g | p).numpy().view(np.uint8))
        if w == 0:
            continue
        rows = slice(max(y - margin, 0), min(y + h + margin, height))
        cols = slice(max(x - margin, 0), min(x + w + margin, width))
        gt_b, pred_b = seg2bmap(torch.stack([g[rows, cols], p[rows, cols]])).numpy()
        near_gt = cv2.dilate(gt_b.view(np.uint8), element).view(bool)
        near_pred = cv2.dilate(pred_b.view(np.uint8), element).view(bool)
        counts[:, index] = torch.tensor([
            np.count_nonzero(pred_b & near_gt), np.count_nonzero(gt_b & near_pred),
            np.count_nonzero(pred_b), np.count_nonzero(gt_b)], dtype=torch.float64)
    return tuple(counts)


def statistics(values: torch.Tensor, bins: int = 4) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame values [T] (davis2017's ``db_statistics``).

    Recall is the fraction of frames above 0.5; decay is the mean over the first of ``bins``
    equal bins minus the mean over the last (bin edges round(linspace(1, T, bins + 1)) - 1,
    kept as int64 so sequences longer than 256 frames are binned correctly).
    """
    values = values.double().cpu().numpy()
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > 0.5))
    edges = (np.round(np.linspace(1, len(values), bins + 1) + 1e-10) - 1).astype(np.int64)
    first = values[edges[0]:edges[1] + 1]
    last = values[edges[bins - 1]:edges[bins] + 1]
    decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay


def object_masks(labels: torch.Tensor, num_objects: int) -> torch.Tensor:
    """Label maps [T,H,W] -> boolean masks [num_objects, T, H, W] for ids 1..num_objects."""
    ids = torch.arange(1, num_objects + 1, device=labels.device)
    return labels[None] == ids[:, None, None, None]


@METRICS.register("davis")
class DavisJF(Metric):
    """DAVIS 2017 semi-supervised J, F and J&F: mean, recall and decay over all objects.

    Params: ``bound_th`` boundary tolerance (fraction of the diagonal, or pixels if >= 1);
    ``exclude_first_last`` drop the first (given) and last frames, as davis2017-evaluation
    does in semi-supervised mode; ``figures`` how many sequences get an overlay sheet.
    """

    version = "1"

    @classmethod
    def declare(cls, bound_th: float = 0.008, exclude_first_last: bool = True,
                figures: int = 3) -> dict[str, bool]:
        return {"J&F-Mean": True, "J-Mean": True, "J-Recall": True, "J-Decay": False,
                "F-Mean": True, "F-Recall": True, "F-Decay": False}

    def __init__(self, bound_th: float = 0.008, exclude_first_last: bool = True,
                 figures: int = 3) -> None:
        super().__init__()
        self.higher_is_better = self.declare(bound_th, exclude_first_last, figures)
        self.bound_th = float(bound_th)
        self.exclude = bool(exclude_first_last)
        self.n_figures = int(figures)
        self.add_state("objects", torch.zeros(0, 8, dtype=torch.float64), "cat")
        self.add_object_state("names", "union")
        self.add_object_state("sheets", "extend", limit=self.n_figures)
        self.per_sample_key = {"J&F-Mean": "J&F", "J-Mean": "J", "F-Mean": "F"}

    def sequence_scores(self, gt: torch.Tensor, pred: torch.Tensor, num_objects: int
                        ) -> torch.Tensor:
        """Per object [num_objects, 6]: J mean/recall/decay, F mean/recall/decay."""
        if self.exclude and gt.shape[0] > 2:
            gt, pred = gt[1:-1], pred[1:-1]
        gt_masks = object_masks(gt, num_objects)
        pred_masks = object_masks(pred, num_objects)
        rows = []
        for obj in range(num_objects):
            j = jaccard(gt_masks[obj], pred_masks[obj])
            f = f_measure(gt_masks[obj], pred_masks[obj], self.bound_th)
            rows.append([*statistics(j), *statistics(f)])
        return torch.tensor(rows, dtype=torch.float64).reshape(num_objects, 6)

    def update(self, pred: list[torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out: dict[str, list[float]] = {"J": [], "F": [], "J&F": [], "objects": []}
        for index, sequence in enumerate(batch["id"]):
            gt = batch["annotations"][index]
            num_objects = int(batch["num_objects"][index])
            scores = self.sequence_scores(gt, pred[index], num_objects)
            seq_index = int(batch["sequence_index"][index])
            self.accumulate("names", {seq_index: str(sequence)})
            ids = torch.tensor([[seq_index, obj + 1] for obj in range(num_objects)],
                               dtype=torch.float64).reshape(num_objects, 2)
            self.accumulate("objects", torch.cat([ids, scores], dim=1))
            j, f = float(scores[:, 0].mean()), float(scores[:, 3].mean())
            out["J"].append(j)
            out["F"].append(f)
            out["J&F"].append((j + f) / 2)
            out["objects"].append(float(num_objects))
            if self.has_room("sheets"):
                self.accumulate("sheets", (str(sequence), batch["frames"][index].cpu().numpy(),
                                           pred[index].cpu().numpy()))
        return {key: torch.tensor(values) for key, values in out.items()}

    def compute(self) -> dict[str, float]:
        rows = self.state("objects")
        if rows.shape[0] == 0:
            return {key: float("nan") for key in self.higher_is_better}
        means = rows[:, 2:].mean(0).tolist()
        result = dict(zip(STAT_KEYS, means, strict=True))
        return {"J&F-Mean": (result["J-Mean"] + result["F-Mean"]) / 2, **result}

    def per_object(self) -> list[dict[str, Any]]:
        """One row per object: ``Sequence`` (``<seq>_<id>``), J-Mean, F-Mean and the rest."""
        rows = sorted(self.state("objects").tolist(), key=lambda r: (r[0], r[1]))
        names = self.state("names")
        return [{"Sequence": f"{names.get(int(r[0]), f'seq{int(r[0])}')}_{int(r[1])}",
                 **dict(zip(STAT_KEYS, r[2:], strict=True))} for r in rows]

    def details(self) -> dict[str, Any]:
        return {"davis_per_object": self.per_object(),
                "davis_protocol": {"bound_th": self.bound_th,
                                   "exclude_first_last": self.exclude}}

    def figures(self, out_dir: Path) -> list[Path]:
        """The DAVIS challenge CSVs and one overlay contact sheet per kept sequence."""
        out_dir.mkdir(parents=True, exist_ok=True)
        values = self.compute()
        global_csv = out_dir / "global_results.csv"
        with open(global_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            keys = ["J&F-Mean", *STAT_KEYS]
            writer.writerow(keys)
            writer.writerow([f"{values[k]:.6f}" for k in keys])
        per_csv = out_dir / "per-sequence_results.csv"
        with open(per_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Sequence", "J-Mean", "F-Mean"])
            for row in self.per_object():
                writer.writerow([row["Sequence"], f"{row['J-Mean']:.6f}", f"{row['F-Mean']:.6f}"])
        paths = [global_csv, per_csv]
        for name, frames, labels in self.state("sheets"):
            paths.append(overlay_sheet(name, frames, labels, out_dir))
        return paths


def overlay_sheet(name: str, frames: np.ndarray, labels: np.ndarray, out_dir: Path,
                  columns: int = 4, max_frames: int = 8) -> Path:
    """PNG contact sheet of up to ``max_frames`` evenly spaced frames (uint8 [T,3,H,W]) with
    the predicted label map (int [T,H,W]) blended in DAVIS palette colours."""
    import cv2

    palette = np.array(davis_palette(), dtype=np.float32).reshape(256, 3)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int))
    tiles = []
    for t in picks:
        image = frames[t].transpose(1, 2, 0).astype(np.float32)
        colour = palette[np.clip(labels[t], 0, 255)]
        fg = (labels[t] > 0)[..., None]
        blended = np.ascontiguousarray(np.where(fg, 0.5 * image + 0.5 * colour, image),
                                       dtype=np.uint8)
        cv2.putText(blended, f"{t:05d}", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(blended)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = out_dir / f"vos_{safe}.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path
