"""Monocular depth metrics (Eigen et al. 2014, the KITTI benchmark, Monodepth2, BTS, MiDaS).

Functional versions first, on batched tensors: prediction and ground truth depth [B,H,W]
in metres, a boolean evaluation mask [B,H,W]. Then the stateful ``depth`` metric the runner
uses, which applies the protocol (caps, crop, alignment, averaging) and keeps sums only.

Definitions (per image over its evaluated pixels, d = ground truth, p = prediction):
AbsRel = mean |d - p| / d; SqRel = mean (d - p)^2 / d; RMSE = sqrt mean (d - p)^2;
RMSE log = sqrt mean (ln d - ln p)^2; log10 = mean |log10 d - log10 p|;
SILog = 100 sqrt(max(0, mean e^2 - (mean e)^2)), e = ln p - ln d;
delta_k = fraction with max(d/p, p/d) < 1.25^k (strict).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from bench.errors import ContractError
from bench.geometry.threads import core_pool
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.registry import METRICS

np = lazy_import("numpy")
torch = lazy_import("torch")

# Crops as fractions of (height, width): rows [top, bottom), columns [left, right).
CROPS: dict[str, tuple[float, float, float, float]] = {
    # Garg et al. 2016 (monodepth2 `--eval_split eigen`, garg crop)
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    # Eigen et al. 2014 crop for KITTI
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
    # Eigen crop for NYU v2 at 480x640 (BTS / NeWCRFs: rows 45:471, columns 41:601)
    "eigen_nyu": (45 / 480, 471 / 480, 41 / 640, 601 / 640),
}
ALIGNMENTS = ("none", "median", "scale_shift")
KINDS = ("depth", "inverse_depth", "disparity")
ERROR_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3")
HIGHER_IS_BETTER = {"d1": True, "d2": True, "d3": True}
# Pixel sums kept per image: count, and the sums each error is built from.
SUM_KEYS = ("n", "abs_rel", "sq_rel", "sq", "sq_log", "log10", "e", "e2", "d1", "d2", "d3")


def count_per_item(masks: torch.Tensor) -> torch.Tensor:
    """True pixels per item [N] (float64) of boolean masks [N,H,W]. On the CPU numpy counts
    each item (about 6x torch's per-item count, 80x its per-dimension count)."""
    if masks.device.type == "cpu":
        return _numpy_counts(masks.numpy())
    return torch.count_nonzero(masks, dim=(1, 2)).double()


def count_below(values: torch.Tensor, bound: float) -> torch.Tensor:
    """Pixels per item [N] (float64) of ``values`` [N,H,W] strictly below ``bound``."""
    return count_per_item(below(values, bound))


def below(values: torch.Tensor, bound: float) -> torch.Tensor:
    """Boolean ``values < bound``, compared in the values' dtype; on the CPU by numpy (about
    3x torch's compare there)."""
    if _on_numpy(values):
        return torch.from_numpy(np.less(values.detach().numpy(), bound))
    return values < bound


def above(values: torch.Tensor, bound: float) -> torch.Tensor:
    """Boolean ``values > bound``, as ``below``."""
    if _on_numpy(values):
        return torch.from_numpy(np.greater(values.detach().numpy(), bound))
    return values > bound


def all_true(mask: torch.Tensor) -> bool:
    """Whether a boolean tensor holds only True (numpy's ``all`` on the CPU, about 15x)."""
    return bool(mask.numpy().all()) if _on_numpy(mask) else bool(mask.all())


def _on_numpy(values: torch.Tensor) -> bool:
    return values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64,
                                                            torch.bool)


def _numpy_counts(masks: np.ndarray) -> torch.Tensor:
    """True values per item [N] (float64) of a boolean array [N,...]."""
    return torch.tensor([np.count_nonzero(item) for item in masks], dtype=torch.float64)


def crop_mask(height: int, width: int, crop: str, device: torch.device | None = None
              ) -> torch.Tensor:
    """Boolean [H,W] mask of an evaluation crop (``none``, ``garg``, ``eigen``, ``eigen_nyu``)."""
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    if crop == "none":
        mask[:] = True
        return mask
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; valid: none, {', '.join(CROPS)}")
    top, bottom, left, right = CROPS[crop]
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median [B] of ``values`` [B,H,W] over ``mask`` (numpy's: mean of the middle
    two for even counts, NaN if any value is NaN; numpy's selection on the CPU, torch's on a
    GPU); NaN for an empty mask."""
    if values.device.type == "cpu":
        def median(index: int) -> float:
            selected, covered = values[index].numpy(), mask[index].numpy()
            return float(_numpy_median(selected.reshape(-1) if covered.all()
                                       else selected[covered]))

        # numpy's selection holds no GIL: images are selected on every core at once.
        return torch.tensor(list(core_pool().map(median, range(values.shape[0]))),
                            dtype=values.dtype)
    out = torch.full((values.shape[0],), torch.nan, dtype=values.dtype, device=values.device)
    for index in range(values.shape[0]):
        selected = values[index][mask[index]]
        n = selected.numel()
        if n:
            low = selected.kthvalue((n + 1) // 2).values
            high = selected.kthvalue(n // 2 + 1).values
            out[index] = (low + high) / 2
    return out


def _numpy_median(values: np.ndarray) -> np.floating:
    """``np.median(values)`` (1-D) to the bit, by one single-index ``np.partition`` (numpy's
    SIMD selection) and a max: about 15x faster than ``np.median``'s two-index partition."""
    n = values.size
    if n == 0 or np.isnan(values).any():
        return values.dtype.type(np.nan)
    middle = n // 2
    ordered = np.partition(values, middle)
    if n % 2:
        return ordered[middle]
    return (ordered[:middle].max() + ordered[middle]) / 2


def scale_and_shift(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least squares (scale [B], shift [B]) minimising sum_mask (s p + t - target)^2.

    The closed form of MiDaS's ``compute_scale_and_shift``; 0, 0 where the system is singular.
    """
    m = mask.double()
    p, t = prediction.double(), target.double()
    a00 = (m * p * p).sum((1, 2))
    a01 = (m * p).sum((1, 2))
    a11 = m.sum((1, 2))
    b0 = (m * p * t).sum((1, 2))
    b1 = (m * t).sum((1, 2))
    det = a00 * a11 - a01 * a01
    ok = det.abs() > 1e-12
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (-a01 * b0 + a00 * b1) / safe, torch.zeros_like(det))
    return scale.to(prediction.dtype), shift.to(prediction.dtype)


def to_depth(prediction: torch.Tensor, kind: str) -> torch.Tensor:
    """Depth (metres) from a prediction of ``kind``: depth as given, inverse depth and
    disparity by the plain reciprocal (Monodepth2's ``1 / pred_disp``): 0 gives +inf and a
    negative value a negative depth, both clamped later."""
    return prediction if kind == "depth" else 1.0 / prediction


def to_inverse_depth(prediction: torch.Tensor, kind: str) -> torch.Tensor:
    """Inverse depth (1/m) from a prediction of ``kind``: inverse depth and disparity as given,
    depth d as 1/d where d > 0 and 0 where d <= 0 (the MiDaS evaluation's convention; +inf
    depth gives 0 too)."""
    if kind != "depth":
        return prediction
    return torch.where(prediction > 0, 1.0 / prediction, torch.zeros_like(prediction))


class Aligned(NamedTuple):
    """Aligned predicted depth [B,H,W] (metres) and the pixels the caps changed [B,H,W]."""

    depth: torch.Tensor
    raised_to_min: torch.Tensor
    lowered_to_max: torch.Tensor


def align(prediction: torch.Tensor, kind: str, gt: torch.Tensor, mask: torch.Tensor,
          alignment: str, min_depth: float, max_depth: float) -> Aligned:
    """Aligned predicted depth, capped as the governing reference caps it.

    ``none``: as predicted (metric depth), then clamped to [min_depth, max_depth], +inf to
    max_depth (BTS ``compute_errors`` callers). ``median``: depth times median(gt) /
    median(pred) over ``mask`` per image, then clamped (Monodepth2, in that order).
    ``scale_shift``: inverse depth fitted by least squares to 1/gt on ``mask``, the fitted
    inverse depth raised to at least 1/max_depth and inverted (MiDaS evaluation; no
    min_depth cap). A NaN that alignment itself creates (0 x inf) becomes max_depth.
    """
    if alignment == "scale_shift":
        inverse = to_inverse_depth(prediction, kind)
        target = torch.where(mask, 1.0 / gt.clamp(min=1e-12), torch.zeros_like(gt))
        scale, shift = scale_and_shift(inverse, target, mask)
        fitted = scale[:, None, None] * inverse + shift[:, None, None]
        cap = 1.0 / max_depth
        return Aligned(1.0 / fitted.clamp(min=cap), torch.zeros_like(mask), fitted < cap)
    depth = to_depth(prediction, kind)
    if alignment == "median":
        ratio = masked_median(gt, mask) / masked_median(depth, mask)
        depth = depth * ratio[:, None, None]
    elif alignment != "none":
        raise ValueError(f"unknown alignment {alignment!r}; valid: {', '.join(ALIGNMENTS)}")
    # From here on ``depth`` is a tensor of this function's own, changed in place.
    depth = (depth.nan_to_num_ if depth is not prediction else depth.nan_to_num)(nan=torch.inf)
    raised, lowered = below(depth, min_depth), above(depth, max_depth)
    return Aligned(depth.clamp_(min_depth, max_depth), raised, lowered)


def pixel_sums(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image [B] (float64): the pixel count and sums every depth error is built from.

    Work and (cascade) sums stay in the inputs' precision (float32 at least); results are
    returned as float64.
    Pixels outside ``mask`` are set to p = d = 1, where every error term is 0 (``pred`` and
    ``gt`` are read only).
    """
    dtype = torch.promote_types(pred.dtype, torch.float32)
    if all_true(mask):
        p, d = pred.to(dtype), gt.to(dtype)
    else:
        one = torch.ones((), dtype=dtype, device=pred.device)
        p = torch.where(mask, pred.to(dtype), one)
        d = torch.where(mask, gt.to(dtype), one)

    def total(x: torch.Tensor) -> torch.Tensor:
        return x.sum((1, 2)).double()

    # The same operations as the definitions, written in place into three work buffers
    # (fewer full-frame allocations; identical values).
    diff = d - p
    work = torch.abs(diff)
    sums = {"n": count_per_item(mask), "abs_rel": total(work.div_(d))}
    diff.mul_(diff)
    sums["sq_rel"] = total(torch.div(diff, d, out=work))
    sums["sq"] = total(diff)
    log_diff = torch.log(p).sub_(torch.log(d, out=diff))
    sums["sq_log"] = total(torch.mul(log_diff, log_diff, out=work))
    sums["e"] = total(log_diff)
    sums["log10"] = total(log_diff.abs_()) / math.log(10)
    ratio = torch.div(d, p, out=diff)
    ratio = torch.maximum(ratio, torch.reciprocal(ratio, out=work), out=log_diff)
    sums["e2"] = sums["sq_log"]
    # Outside the mask p = d = 1, a ratio of 1 that every threshold counts: subtract those.
    outside = math.prod(mask.shape[1:]) - sums["n"]
    for k in (1, 2, 3):
        sums[f"d{k}"] = count_below(ratio, 1.25 ** k) - outside
    return sums


def errors_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The nine errors from pixel sums (any shape); NaN where the count is 0."""
    n = sums["n"]
    safe = torch.where(n > 0, n, torch.ones_like(n))

    def mean(key: str) -> torch.Tensor:
        return torch.where(n > 0, sums[key] / safe, torch.full_like(n, torch.nan))

    silog_var = (mean("e2") - mean("e") ** 2).clamp(min=0)
    return {
        "abs_rel": mean("abs_rel"),
        "sq_rel": mean("sq_rel"),
        "rmse": mean("sq").sqrt(),
        "rmse_log": mean("sq_log").sqrt(),
        "log10": mean("log10"),
        "silog": 100.0 * silog_var.sqrt(),
        "d1": mean("d1"),
        "d2": mean("d2"),
        "d3": mean("d3"),
    }


def depth_errors(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    """Per-image errors [B] of depth ``pred`` against ``gt`` (metres) on ``mask`` [B,H,W]."""
    return errors_from_sums(pixel_sums(pred, gt, mask))


def prepare_prediction(pred: dict[str, Any], index: int, shape: tuple[int, int],
                       resize: bool) -> torch.Tensor:
    """Prediction ``index`` of a normalised batch as [H,W] at the ground truth's ``shape``."""
    value = pred["value"][index]
    if tuple(value.shape) != tuple(shape):
        if not resize:
            raise ContractError(
                f"predicted depth has shape {tuple(value.shape)}, ground truth {tuple(shape)}",
                "predict at the image's size, or set the metric param resize_prediction: true")
        if not bool(torch.isfinite(value).all()):
            raise ContractError(f"predicted depth of shape {tuple(value.shape)} holds infinite "
                                f"values and cannot be resized to {tuple(shape)}",
                                "predict at the ground truth's size")
        import torch.nn.functional as F

        value = F.interpolate(value[None, None].float(), size=shape, mode="bilinear",
                              align_corners=False)[0, 0]
    return value.float()


def evaluation_mask(gt: torch.Tensor, valid: torch.Tensor, crop: str, min_depth: float,
                    max_depth: float) -> torch.Tensor:
    """Pixels that count: valid, min_depth < gt < max_depth, inside the crop. [B,H,W]."""
    mask = above(gt, min_depth).logical_and_(below(gt, max_depth)).logical_and_(valid)
    if crop != "none":
        mask &= crop_mask(gt.shape[-2], gt.shape[-1], crop, gt.device)
    return mask


def _batched(items: torch.Tensor | list[torch.Tensor], group: list[int]) -> torch.Tensor:
    """``items`` [i] for i in ``group`` as one tensor [G,...]; a batch tensor taken whole is
    returned as it is (no copy)."""
    if torch.is_tensor(items) and group == list(range(len(items))):
        return items
    return torch.stack([items[i] for i in group])


def colorize(values: np.ndarray, mask: np.ndarray | None = None, cmap: str = "magma",
             lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """uint8 RGB [H,W,3] of ``values`` through a matplotlib colormap (2-98 percentile range
    unless given); pixels outside ``mask`` are black."""
    import matplotlib

    finite = np.isfinite(values) if mask is None else (mask & np.isfinite(values))
    sample = values[finite] if finite.any() else np.zeros(1)
    lo = float(np.percentile(sample, 2)) if lo is None else lo
    hi = float(np.percentile(sample, 98)) if hi is None else hi
    scaled = np.clip((values - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = (matplotlib.colormaps[cmap](np.nan_to_num(scaled))[..., :3] * 255).astype(np.uint8)
    rgb[~finite] = 0
    return rgb


@METRICS.register("depth")
class DepthMetrics(Metric):
    """AbsRel, SqRel, RMSE, RMSE log, log10, SILog, delta<1.25^k with the spec's protocol.

    Params: ``alignment`` none | median | scale_shift; ``min_depth``/``max_depth`` (m) caps
    on ground truth and prediction; ``crop`` none | garg | eigen | eigen_nyu; ``average``
    image (mean of per-image errors, Monodepth2/BTS) | pixel (pooled over all pixels);
    ``resize_prediction`` bilinear resize of predictions to the ground truth's size;
    ``figures`` how many samples get an error map and side-by-side figure.
    """

    version = "2"

    @classmethod
    def declare(cls, alignment: str = "none", min_depth: float = 1e-3, max_depth: float = 10.0,
                crop: str = "none", average: str = "image", resize_prediction: bool = False,
                figures: int = 4) -> dict[str, bool]:
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if average not in ("image", "pixel"):
            raise ValueError(f"average must be 'image' or 'pixel', got {average!r}")
        if crop != "none" and crop not in CROPS:
            raise ValueError(f"crop must be none or one of {sorted(CROPS)}, got {crop!r}")
        if not 0 < float(min_depth) < float(max_depth):
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        return {key: HIGHER_IS_BETTER.get(key, False) for key in ERROR_KEYS}

    def __init__(self, alignment: str = "none", min_depth: float = 1e-3, max_depth: float = 10.0,
                 crop: str = "none", average: str = "image", resize_prediction: bool = False,
                 figures: int = 4) -> None:
        super().__init__()
        self.higher_is_better = self.declare(alignment, min_depth, max_depth, crop, average,
                                             resize_prediction, figures)
        self.alignment, self.crop, self.average = alignment, crop, average
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.resize = bool(resize_prediction)
        self.n_figures = int(figures)
        for key in ERROR_KEYS:
            self.add_state(f"img_{key}", torch.zeros((), dtype=torch.float64), "sum")
        for key in SUM_KEYS:
            self.add_state(f"px_{key}", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("images", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("empty", torch.zeros((), dtype=torch.float64), "sum")
        for name in ("raised_to_min", "lowered_to_max", "evaluated_pixels"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), "sum")
        self.add_object_state("figure_samples", "extend", limit=self.n_figures)
        self.per_sample_key = {key: key for key in ERROR_KEYS} if average == "image" else {}

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if pred["kind"] == "disparity" and self.alignment == "none":
            raise ContractError("a disparity prediction has no metric scale; "
                                "evaluate it with alignment median or scale_shift")
        values = [prepare_prediction(pred, i, tuple(batch["depth"][i].shape[-2:]), self.resize)
                  for i in range(len(batch["id"]))]
        if torch.is_tensor(pred["value"]) and all(
                value.shape == pred["value"].shape[1:] for value in values):
            values = pred["value"].float()  # nothing was resized: the batch as it came
        # Images of one size are measured together; mixed sizes (KITTI) one by one.
        if len({tuple(v.shape) for v in values}) == 1:
            groups = [list(range(len(values)))]
        else:
            groups = [[i] for i in range(len(values))]
        out: dict[str, list[torch.Tensor]] = {
            key: [] for key in (*ERROR_KEYS, "valid_pixels", "clamped_pixels")}
        for group in groups:
            gt = _batched(batch["depth"], group).float()
            mask = evaluation_mask(gt, _batched(batch["valid"], group), self.crop,
                                   self.min_depth, self.max_depth)
            depth, raised, lowered = align(_batched(values, group), pred["kind"], gt, mask,
                                           self.alignment, self.min_depth, self.max_depth)
            if not all_true(mask):
                raised, lowered = raised & mask, lowered & mask
            raised_count, lowered_count = count_per_item(raised), count_per_item(lowered)
            self.accumulate("raised_to_min", raised_count.sum())
            self.accumulate("lowered_to_max", lowered_count.sum())
            out["clamped_pixels"].append((raised_count + lowered_count).float())
            sums = pixel_sums(depth, gt, mask)
            errors = errors_from_sums(sums)
            filled = sums["n"] > 0
            self.accumulate("images", torch.tensor(float(len(group))))
            self.accumulate("empty", (~filled).sum().double())
            for key in ERROR_KEYS:
                self.accumulate(f"img_{key}", errors[key][filled].sum())
                out[key].append(errors[key].float())
            for key in SUM_KEYS:
                self.accumulate(f"px_{key}", sums[key][filled].sum())
            out["valid_pixels"].append(sums["n"].float())
            self.accumulate("evaluated_pixels", sums["n"].sum())
            for row, index in enumerate(group):
                if self.has_room("figure_samples"):
                    self._keep_for_figure(batch, index, gt[row], mask[row:row + 1], depth[row])
        return {key: torch.cat(chunks) for key, chunks in out.items()}

    def _keep_for_figure(self, batch: dict[str, Any], index: int, gt: torch.Tensor,
                         mask: torch.Tensor, depth: torch.Tensor) -> None:
        image = batch["image"][index]
        self.accumulate("figure_samples", {
            "id": str(batch["id"][index]),
            "image": (image.permute(1, 2, 0).clamp(0, 1) * 255).byte().cpu().numpy(),
            "gt": gt.cpu().numpy().copy(), "mask": mask[0].cpu().numpy(),
            "pred": depth.cpu().numpy(),
        })

    def compute(self) -> dict[str, float]:
        evaluated = float(self.state("images") - self.state("empty"))
        if self.average == "image":
            if evaluated == 0:
                return {key: float("nan") for key in ERROR_KEYS}
            return {key: float(self.state(f"img_{key}")) / evaluated for key in ERROR_KEYS}
        sums = {key: self.state(f"px_{key}") for key in SUM_KEYS}
        return {key: float(value) for key, value in errors_from_sums(sums).items()}

    def details(self) -> dict[str, Any]:
        return {"depth_protocol": {
            "alignment": self.alignment, "crop": self.crop, "average": self.average,
            "min_depth": self.min_depth, "max_depth": self.max_depth,
            "images": int(self.state("images")),
            "images_without_valid_pixels": int(self.state("empty")),
            "evaluated_pixels": int(self.state("evaluated_pixels")),
            "clamped_pixels": {"to_min_depth": int(self.state("raised_to_min")),
                               "to_max_depth": int(self.state("lowered_to_max"))},
        }}

    def figures(self, out_dir: Path) -> list[Path]:
        return [error_figure(sample, out_dir, self.min_depth, self.max_depth)
                for sample in self.state("figure_samples")]


def error_figure(sample: dict[str, Any], out_dir: Path, min_depth: float,
                 max_depth: float) -> Path:
    """Save ``image | ground truth | prediction | AbsRel error`` side by side as a PNG."""
    import cv2

    gt, pred, mask = sample["gt"], sample["pred"], sample["mask"]
    lo = float(np.percentile(gt[mask], 2)) if mask.any() else min_depth
    hi = float(np.percentile(gt[mask], 98)) if mask.any() else max_depth
    error = np.where(mask, np.abs(gt - pred) / np.maximum(gt, 1e-6), np.nan)
    panels = [
        sample["image"],
        colorize(gt, gt > 0, "magma_r", lo, hi),
        colorize(pred, None, "magma_r", lo, hi),
        colorize(error, mask, "inferno", 0.0, 0.5),
    ]
    height = panels[0].shape[0]
    panels = [cv2.resize(p, (int(p.shape[1] * height / p.shape[0]), height),
                         interpolation=cv2.INTER_NEAREST) for p in panels]
    labels = ("image", "ground truth", "prediction", "abs rel error (0-0.5)")
    for panel, label in zip(panels, labels, strict=True):
        cv2.putText(panel, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = sample["id"].rsplit(".", 1)[0] if sample["id"].lower().endswith(
        (".jpg", ".jpeg", ".png")) else sample["id"]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    path = out_dir / f"depth_{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))
    return path


def normalise_inverse_depth(inverse: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift invariant normalisation per image (MiDaS): (x - median) / mean|x - median|
    over all pixels of [B,H,W]; a constant image becomes 0."""
    flat = inverse.flatten(1)
    median = flat.median(dim=1, keepdim=True).values
    spread = (flat - median).abs().mean(dim=1, keepdim=True)
    return ((flat - median) / spread.clamp(min=1e-12)).view_as(inverse)


@METRICS.register("temporal_stability")
class TemporalStability(Metric):
    """Frame-to-frame change of the predicted inverse depth after scale-and-shift alignment.

    Each frame's inverse depth (1/depth, or the predicted inverse depth / disparity) is
    resized to ``size`` [h,w] and normalised to median 0 and mean absolute deviation 1
    (MiDaS's scale-and-shift invariant form); ``temporal_change`` is the mean absolute
    difference between consecutive frames of a sequence, averaged over all pairs (lower is
    steadier; a model used frame by frame gets no temporal information). Where frames carry
    valid ground truth everywhere it is sampled, ``temporal_change_gt`` is the same quantity
    for the ground truth: the change the true motion causes. Also writes, per sequence, the
    colourised depth of every frame, a contact sheet (PNG) and an MP4 where OpenCV can.
    """

    version = "1"

    @classmethod
    def declare(cls, size: list[int] | tuple[int, int] = (120, 214), sheet_frames: int = 8,
                video: bool = True) -> dict[str, bool]:
        return {"temporal_change": False, "temporal_change_gt": False}

    def __init__(self, size: list[int] | tuple[int, int] = (120, 214), sheet_frames: int = 8,
                 video: bool = True) -> None:
        super().__init__()
        self.higher_is_better = self.declare(size, sheet_frames, video)
        self.size = (int(size[0]), int(size[1]))
        self.sheet_frames = int(sheet_frames)
        self.video = bool(video)
        self.add_state("keys", torch.zeros(0, 2, dtype=torch.int64), "cat")
        self.add_state("pred", torch.zeros(0, *self.size, dtype=torch.float16), "cat")
        self.add_state("gt", torch.zeros(0, *self.size, dtype=torch.float16), "cat")
        self.add_state("gt_ok", torch.zeros(0, dtype=torch.bool), "cat")
        self.add_object_state("names", "union")

    def _resize(self, value: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.interpolate(value[None, None].float(), size=self.size, mode="bilinear",
                             align_corners=False)[0, 0]

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        for key in ("sequence_index", "frame_index"):
            if key not in batch:
                raise ContractError(f"temporal_stability needs video frames: samples lack {key!r}"
                                    " (use the davis adapter with unit: frame)")
        inverse, gt_inverse, gt_ok = [], [], []
        for index in range(len(batch["id"])):
            value = pred["value"][index].float()
            if pred["kind"] == "depth":
                value = 1.0 / value.clamp(min=1e-6)
            inverse.append(self._resize(value))
            valid = batch["valid"][index]
            gt_ok.append(bool(valid.all()))
            gt_inverse.append(self._resize(torch.where(
                valid, 1.0 / batch["depth"][index].float().clamp(min=1e-6), 0.0)))
            self.accumulate("names", {int(batch["sequence_index"][index]):
                                      str(batch["sequence"][index])})
        keys = torch.stack([torch.as_tensor(batch["sequence_index"]).long().cpu(),
                            torch.as_tensor(batch["frame_index"]).long().cpu()], dim=1)
        self.accumulate("keys", keys.to(self._defaults["keys"].device))
        self.accumulate("pred", normalise_inverse_depth(torch.stack(inverse)).half())
        self.accumulate("gt", normalise_inverse_depth(torch.stack(gt_inverse)).half())
        self.accumulate("gt_ok", torch.tensor(gt_ok, device=self._defaults["gt_ok"].device))
        return {}

    def _ordered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        keys = self.state("keys")
        order = torch.argsort(keys[:, 0] * (1 << 32) + keys[:, 1])
        return (keys[order], self.state("pred")[order].float(), self.state("gt")[order].float(),
                self.state("gt_ok")[order])

    def compute(self) -> dict[str, float]:
        keys, pred, gt, gt_ok = self._ordered()
        if len(keys) < 2:
            return {"temporal_change": float("nan"), "temporal_change_gt": float("nan")}
        pairs = (keys[1:, 0] == keys[:-1, 0]) & (keys[1:, 1] == keys[:-1, 1] + 1)
        change = (pred[1:] - pred[:-1]).abs().flatten(1).mean(1)
        gt_change = (gt[1:] - gt[:-1]).abs().flatten(1).mean(1)
        gt_pairs = pairs & gt_ok[1:] & gt_ok[:-1]
        nan = float("nan")
        return {
            "temporal_change": float(change[pairs].mean()) if pairs.any() else nan,
            "temporal_change_gt": float(gt_change[gt_pairs].mean()) if gt_pairs.any() else nan,
        }

    def figures(self, out_dir: Path) -> list[Path]:
        """Per sequence: frames/<seq>/<frame>.png colourised inverse depth, a contact sheet
        ``depth_<seq>.png`` and ``depth_<seq>.mp4`` (when OpenCV has an MP4 encoder)."""
        import cv2

        keys, pred, _, _ = self._ordered()
        paths: list[Path] = []
        for seq_index in torch.unique(keys[:, 0]).tolist():
            name = self.state("names").get(seq_index, f"seq{seq_index}")
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            rows = (keys[:, 0] == seq_index).nonzero()[:, 0]
            frames = [colorize(pred[i].cpu().numpy(), cmap="magma", lo=-2.0, hi=2.0)
                      for i in rows.tolist()]
            frame_dir = out_dir / "frames" / safe
            frame_dir.mkdir(parents=True, exist_ok=True)
            for i, image in zip(rows.tolist(), frames, strict=True):
                cv2.imwrite(str(frame_dir / f"{int(keys[i, 1]):05d}.png"),
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            picks = np.unique(np.linspace(0, len(frames) - 1,
                                          min(self.sheet_frames, len(frames))).astype(int))
            tiles = [frames[p] for p in picks]
            while len(tiles) % 4:
                tiles.append(np.zeros_like(tiles[0]))
            sheet = np.concatenate([np.concatenate(tiles[i:i + 4], axis=1)
                                    for i in range(0, len(tiles), 4)], axis=0)
            sheet_path = out_dir / f"depth_{safe}.png"
            cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            paths.append(sheet_path)
            if self.video:
                video_path = out_dir / f"depth_{safe}.mp4"
                writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), 8.0,
                                         (self.size[1], self.size[0]))
                if writer.isOpened():
                    for image in frames:
                        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                    writer.release()
                    paths.append(video_path)
        return paths
