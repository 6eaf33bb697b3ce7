"""Hand-pose metrics as FreiHAND's evaluation defines them (``eval.py`` and
``utils/eval_util.py`` of lmb-freiburg/freihand), written for batched torch.

- A keypoint's error is the Euclidean distance to the ground truth (mm in the outputs).
- The mean error is the mean over keypoints of each keypoint's mean over the samples where
  it is visible (EvalUtil's ``get_measures``); keypoints never visible are skipped.
- PCK at a threshold counts a keypoint as correct when its error is <= the threshold
  (inclusive; ``inclusive=False`` gives the strict < of BOP-style counts); the PCK curve is
  the mean over keypoints of each keypoint's PCK; the AUC is the trapezoid area under it
  divided by the threshold range.
- PA alignment is FreiHAND's ``align_w_scale``: both point sets centred and divided by
  their Frobenius norm (+1e-8), the orthogonal Procrustes rotation (reflections allowed, as
  scipy's ``orthogonal_procrustes``) and scale, applied to the prediction.
- Non-finite predictions get an infinite error: they fail at every threshold and make the
  mean error infinite (never dropped).

Functional versions first, then the stateful shells the runner uses.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from bench.errors import DataError
from bench.geometry.hand import BONES, KEYPOINT_NAMES
from bench.lazy import lazy_import
from bench.metrics.base import Metric, new_figure, save_figure
from bench.registry import METRICS

np = lazy_import("numpy")
torch = lazy_import("torch")

EPS = 1e-8
ALIGNMENTS = {"none": "", "root": "rr_", "procrustes": "pa_"}


def keypoint_errors(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [B,J] between points [B,J,D]; non-finite predictions -> inf."""
    errors = (pred.double() - gt.double()).norm(dim=-1)
    return torch.where(torch.isfinite(errors), errors, torch.full_like(errors, float("inf")))


def procrustes_transform(
    pred: torch.Tensor, gt: torch.Tensor, scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The similarity (R [B,3,3], s [B], pred centre [B,3], gt centre [B,3]) that maps
    ``pred`` [B,J,3] onto ``gt`` as ``(x - pred centre) @ R.T * s + gt centre``.

    FreiHAND's ``align_w_scale``, batched: centre both, divide by the Frobenius norm + 1e-8,
    R = U V^T of gt_n^T pred_n = U S V^T (reflections allowed), scale = sum of the singular
    values times |gt| / |pred|; ``scale=False`` keeps s = 1. All-equal ground
    truth gives s = 0 (every aligned point at the ground truth's centre), as the reference.
    """
    pred, gt = pred.double(), gt.double()
    gt_centre, pred_centre = gt.mean(dim=1), pred.mean(dim=1)
    gt_c, pred_c = gt - gt_centre[:, None], pred - pred_centre[:, None]
    gt_norm = gt_c.flatten(1).norm(dim=1) + EPS
    pred_norm = pred_c.flatten(1).norm(dim=1) + EPS
    normaliser = (gt_norm * pred_norm)[:, None, None]
    rotation, sigma_sum = orthogonal_polar(gt_c.transpose(1, 2) @ pred_c / normaliser)
    factor = sigma_sum * gt_norm / pred_norm if scale else torch.ones_like(gt_norm)
    return rotation, factor, pred_centre, gt_centre


def orthogonal_polar(matrices: torch.Tensor, iterations: int = 30, tolerance: float = 1e-14
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """For M [B,3,3] (float64): the orthogonal R = U V^T of M = U S V^T (det -1 allowed, as
    scipy's ``orthogonal_procrustes``) and the sum of singular values trace(R^T M).

    Scaled Newton iteration for the polar factor, X <- (g X + X^-T / g) / 2 with 3x3 inverses
    by cofactors (all samples at once; it converges to machine precision in a few steps);
    samples that are singular or do not converge fall back to one batched SVD.
    """
    x = matrices
    change = torch.full(matrices.shape[:1], float("inf"), dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        cofactor = torch.stack([torch.linalg.cross(x[:, 1], x[:, 2]),
                                torch.linalg.cross(x[:, 2], x[:, 0]),
                                torch.linalg.cross(x[:, 0], x[:, 1])], dim=1)
        det = (x[:, 0] * cofactor[:, 0]).sum(dim=-1)
        inverse_t = cofactor / det[:, None, None]
        gamma = (inverse_t.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).sqrt()
        updated = 0.5 * (gamma[:, None, None] * x + inverse_t / gamma[:, None, None])
        change = (updated - x).flatten(1).norm(dim=1)
        x = updated
        if not bool((change > tolerance).any()):
            break
    bad = ~(change <= 1e-10)
    if bool(bad.any()):
        u, _, vt = torch.linalg.svd(matrices[bad])
        x = x.clone()
        x[bad] = u @ vt
    return x, (x * matrices).sum(dim=(1, 2))


def apply_transform(points: torch.Tensor, transform: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Apply a ``procrustes_transform`` result to points [B,N,3]."""
    rotation, factor, pred_centre, gt_centre = transform
    centred = points.double() - pred_centre[:, None]
    return centred @ rotation.transpose(1, 2) * factor[:, None, None] + gt_centre[:, None]


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """``pred`` [B,J,3] aligned onto ``gt`` by FreiHAND's ``align_w_scale`` (float64).

    Samples whose prediction is not finite come back as NaN (their SVD is skipped).
    """
    finite = torch.isfinite(pred).flatten(1).all(dim=1)
    safe = torch.where(finite[:, None, None], pred.double(), gt.double())
    aligned = apply_transform(safe, procrustes_transform(safe, gt, scale))
    return torch.where(finite[:, None, None], aligned, torch.full_like(aligned, float("nan")))


def align(pred: torch.Tensor, gt: torch.Tensor, alignment: str, root: int = 0,
          scale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, gt) after ``alignment``: none, root (both relative to keypoint ``root``) or
    procrustes (pred aligned onto gt)."""
    if alignment == "none":
        return pred.double(), gt.double()
    if alignment == "root":
        return ((pred - pred[:, root:root + 1]).double(), (gt - gt[:, root:root + 1]).double())
    if alignment == "procrustes":
        return procrustes_align(pred, gt, scale), gt.double()
    raise ValueError(f"alignment must be one of {list(ALIGNMENTS)}, got {alignment!r}")


def pck_hits(errors: torch.Tensor, valid: torch.Tensor, thresholds: torch.Tensor,
             inclusive: bool = True) -> torch.Tensor:
    """Per keypoint and threshold, the number of valid samples within it: [J,T] float64."""
    below = errors[..., None] <= thresholds if inclusive else errors[..., None] < thresholds
    return (below & valid[..., None]).double().sum(dim=0)


def auc(curve: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under ``curve`` [...,T] divided by the threshold range (in [0,1])."""
    return torch.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0])


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates [B,J,2] of camera-frame points [B,J,3]; points with z <= 0 -> NaN."""
    uvw = points.double() @ K.double().transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:3]
    return torch.where(uvw[..., 2:3] > 0, uv, torch.full_like(uv, float("nan")))


def nearest_distances(source: torch.Tensor, target: torch.Tensor, chunk: int = 8
                      ) -> torch.Tensor:
    """For each point of ``source`` [B,N,3], the distance to the closest of ``target`` [B,M,3]."""
    out = [torch.cdist(s.double(), t.double()).min(dim=2).values
           for s, t in zip(source.split(chunk), target.split(chunk), strict=True)]
    return torch.cat(out)


def f_score(pred: torch.Tensor, gt: torch.Tensor, threshold: float) -> torch.Tensor:
    """FreiHAND's F-score [B] of point sets at ``threshold`` (m): harmonic mean of the share
    of predicted points closer than it to the ground truth and the share of ground-truth
    points closer than it to the prediction (strict <); 0 when both shares are 0."""
    precision = (nearest_distances(pred, gt) < threshold).double().mean(dim=1)
    recall = (nearest_distances(gt, pred) < threshold).double().mean(dim=1)
    total = precision + recall
    return torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12),
                       torch.zeros_like(total))


def degenerate(points: torch.Tensor, tolerance: float = 1e-6) -> torch.Tensor:
    """[B] True where all points of a sample coincide (Procrustes alignment is undefined)."""
    return (points - points.mean(dim=1, keepdim=True)).flatten(1).norm(dim=1) <= tolerance


def _range_name(low: float, high: float) -> str:
    return f"{low:g}_{high:g}".replace(".", "p")


def check_curve(ranges: list[tuple[float, float]], steps: int) -> None:
    """Raise ValueError unless there are at least 2 steps and each threshold range has
    0 <= low < high."""
    if int(steps) < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    for low, high in ranges:
        if not 0 <= low < high:
            raise ValueError(f"threshold range must satisfy 0 <= low < high, got {low, high}")


class _KeypointCurve(Metric):
    """Per-keypoint error sums, visible counts and PCK hits over threshold ranges (checked
    by the subclasses' ``declare`` with ``check_curve``)."""

    unit_scale = 1.0

    def __init__(self, ranges: list[tuple[float, float]], steps: int, inclusive: bool,
                 visible_only: bool, num_keypoints: int = 21) -> None:
        super().__init__()
        self.ranges = [(float(low), float(high)) for low, high in ranges]
        self.steps, self.inclusive, self.visible_only = int(steps), bool(inclusive), visible_only
        self.num_keypoints = num_keypoints
        self.thresholds = torch.stack([torch.linspace(low, high, self.steps, dtype=torch.float64)
                                       for low, high in self.ranges])
        self.add_state("error_sum", torch.zeros(num_keypoints, dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros(num_keypoints, dtype=torch.float64), "sum")
        self.add_state("hits", torch.zeros(len(self.ranges), num_keypoints, self.steps,
                                           dtype=torch.float64), "sum")

    def to(self, device: torch.device | str) -> Metric:
        self.thresholds = self.thresholds.to(device)
        return super().to(device)

    def accumulate_errors(self, errors: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
        """Add errors [B,J] (in output units); return the per-sample mean over valid ones."""
        valid = visibility.bool() if self.visible_only else torch.ones_like(errors, dtype=bool)
        self.accumulate("error_sum", torch.where(valid, errors, 0.0).sum(dim=0))
        self.accumulate("count", valid.double().sum(dim=0))
        hits = torch.stack([pck_hits(errors, valid, self.thresholds[r].to(errors.device),
                                     self.inclusive) for r in range(len(self.ranges))])
        self.accumulate("hits", hits)
        per_sample = torch.where(valid, errors, 0.0).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
        return torch.where(valid.any(dim=1), per_sample, torch.full_like(per_sample, float("nan")))

    def summary(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean error, per-keypoint mean errors [J], mean PCK curves [R,T], AUCs [R])."""
        count = self.state("count").cpu()
        seen = count > 0
        if not seen.any():
            nan = torch.tensor(float("nan"), dtype=torch.float64)
            return (nan, torch.full_like(count, float("nan")),
                    torch.full((len(self.ranges), self.steps), float("nan")),
                    torch.full((len(self.ranges),), float("nan")))
        per_keypoint = self.state("error_sum").cpu() / count
        curves = (self.state("hits").cpu()[:, seen] / count[seen][:, None]).mean(dim=1)
        thresholds = self.thresholds.cpu()
        areas = torch.stack([auc(curves[r], thresholds[r]) for r in range(len(self.ranges))])
        return per_keypoint[seen].mean(), per_keypoint, curves, areas


@METRICS.register("keypoint_3d")
class Keypoint3D(_KeypointCurve):
    """3D keypoint error (MPJPE, mm) and PCK AUC, unaligned / root-relative / Procrustes."""

    @classmethod
    def declare(cls, alignment: str = "none", procrustes_scale: bool = True,
                max_mm: float = 50.0, min_mm: float = 0.0, steps: int = 100,
                extra_auc_mm: list[list[float]] | None = None, inclusive: bool = True,
                visible_only: bool = True, root: int = 0) -> dict[str, bool]:
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {list(ALIGNMENTS)}, got {alignment!r}")
        ranges = [(min_mm, max_mm)] + [tuple(r) for r in (extra_auc_mm or [])]
        check_curve(ranges, steps)
        prefix = ALIGNMENTS[alignment]
        return {f"{prefix}mpjpe_mm": False,
                **{f"{prefix}auc_{_range_name(float(lo), float(hi))}": True for lo, hi in ranges}}

    def __init__(self, alignment: str = "none", procrustes_scale: bool = True,
                 max_mm: float = 50.0, min_mm: float = 0.0, steps: int = 100,
                 extra_auc_mm: list[list[float]] | None = None, inclusive: bool = True,
                 visible_only: bool = True, root: int = 0) -> None:
        outputs = self.declare(alignment, procrustes_scale, max_mm, min_mm, steps, extra_auc_mm,
                               inclusive, visible_only, root)
        ranges = [(min_mm, max_mm)] + [tuple(r) for r in (extra_auc_mm or [])]
        super().__init__(ranges, steps, inclusive, visible_only)
        self.alignment, self.scale, self.root = alignment, bool(procrustes_scale), int(root)
        prefix = ALIGNMENTS[alignment]
        self.error_key = f"{prefix}mpjpe_mm"
        self.auc_keys = [f"{prefix}auc_{_range_name(lo, hi)}" for lo, hi in self.ranges]
        self.sample_key = f"{prefix}error_mm"
        self.higher_is_better = outputs
        self.per_sample_key = {self.error_key: self.sample_key}

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]
               ) -> dict[str, torch.Tensor]:
        gt = batch["keypoints"]
        if self.alignment == "procrustes" and degenerate(gt.double()).any():
            index = int(degenerate(gt.double()).nonzero()[0])
            raise DataError(f"sample {batch['id'][index]!r}: its ground-truth keypoints all "
                            "coincide, so Procrustes alignment is undefined")
        aligned, target = align(pred["keypoints"], gt, self.alignment, self.root, self.scale)
        errors = keypoint_errors(aligned, target) * 1000.0
        return {self.sample_key: self.accumulate_errors(errors, batch["visibility"])}

    def compute(self) -> dict[str, float]:
        mean, _, _, areas = self.summary()
        return {self.error_key: float(mean), **{k: float(a) for k, a in
                                                zip(self.auc_keys, areas, strict=True)}}

    def details(self) -> dict[str, Any]:
        _, per_keypoint, curves, _ = self.summary()
        return {f"{self.error_key}_per_keypoint": dict(zip(
            KEYPOINT_NAMES, per_keypoint.tolist(), strict=True)),
            f"{ALIGNMENTS[self.alignment]}pck_curve": {
                "thresholds_mm": self.thresholds[0].cpu().tolist(),
                "pck": curves[0].tolist()}}

    def figures(self, out_dir: Path) -> list[Path]:
        _, _, curves, areas = self.summary()
        label = {"none": "unaligned", "root": "root-relative", "procrustes": "Procrustes-aligned"}
        path = out_dir / f"pck3d_{self.alignment}.png"
        return [_plot_curve(path, self.thresholds[0].cpu().numpy(), curves[0].numpy(),
                            f"3D PCK, {label[self.alignment]} (AUC {float(areas[0]):.3f})",
                            "error threshold (mm)")]


@METRICS.register("keypoint_2d")
class Keypoint2D(_KeypointCurve):
    """2D keypoint error (pixels, projecting both with K) and 2D PCK and its AUC."""

    @classmethod
    def declare(cls, max_px: float = 30.0, steps: int = 100, threshold_px: float = 10.0,
                inclusive: bool = True, visible_only: bool = True) -> dict[str, bool]:
        check_curve([(0.0, float(max_px)), (0.0, float(threshold_px))], steps)
        return {"error2d_px": False, f"pck2d_auc_{_range_name(0.0, max_px)}": True,
                f"pck2d_{float(threshold_px):g}px": True}

    def __init__(self, max_px: float = 30.0, steps: int = 100, threshold_px: float = 10.0,
                 inclusive: bool = True, visible_only: bool = True) -> None:
        outputs = self.declare(max_px, steps, threshold_px, inclusive, visible_only)
        super().__init__([(0.0, float(max_px)), (0.0, float(threshold_px))], steps, inclusive,
                         visible_only)
        self.auc_key = f"pck2d_auc_{_range_name(0.0, max_px)}"
        self.pck_key = f"pck2d_{float(threshold_px):g}px"
        self.higher_is_better = outputs
        self.per_sample_key = {"error2d_px": "error2d_px"}

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]
               ) -> dict[str, torch.Tensor]:
        errors = keypoint_errors(project(pred["keypoints"], batch["K"]),
                                 project(batch["keypoints"], batch["K"]))
        return {"error2d_px": self.accumulate_errors(errors, batch["visibility"])}

    def compute(self) -> dict[str, float]:
        mean, _, curves, areas = self.summary()
        return {"error2d_px": float(mean), self.auc_key: float(areas[0]),
                self.pck_key: float(curves[1, -1])}

    def figures(self, out_dir: Path) -> list[Path]:
        _, _, curves, areas = self.summary()
        return [_plot_curve(out_dir / "pck2d.png", self.thresholds[0].cpu().numpy(),
                            curves[0].numpy(), f"2D PCK (AUC {float(areas[0]):.3f})",
                            "error threshold (pixels)")]


@METRICS.register("mesh")
class MeshError(Metric):
    """Mean vertex error (mm, unaligned and Procrustes-aligned) and F-scores at 5 and 15 mm,
    for samples whose prediction and ground truth both carry vertices."""

    @classmethod
    def declare(cls, fscore_mm: list[float] | None = None) -> dict[str, bool]:
        thresholds = [float(t) for t in (fscore_mm or [5.0, 15.0])]
        return {"mesh_error_mm": False, "pa_mesh_error_mm": False,
                **{f"{p}fscore_{t:g}mm": True for p in ("", "pa_") for t in thresholds}}

    def __init__(self, fscore_mm: list[float] | None = None) -> None:
        super().__init__()
        self.higher_is_better = self.declare(fscore_mm)
        self.fscore_mm = [float(t) for t in (fscore_mm or [5.0, 15.0])]
        for name in ("error_sum", "aligned_sum", "vertex_count", "samples"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("fscores", torch.zeros(2, len(self.fscore_mm), dtype=torch.float64),
                       "sum")
        self.keys = [f"{p}fscore_{t:g}mm" for p in ("", "pa_") for t in self.fscore_mm]

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]
               ) -> dict[str, torch.Tensor]:
        verts, gt = pred.get("vertices"), batch.get("vertices")
        if verts is None or not isinstance(gt, torch.Tensor):
            return {}
        if verts.shape[1] == gt.shape[1]:
            aligned = procrustes_align(verts, gt)
            errors = keypoint_errors(verts, gt) * 1000.0
            aligned_errors = keypoint_errors(aligned, gt) * 1000.0
            self.accumulate("error_sum", errors.sum())
            self.accumulate("aligned_sum", aligned_errors.sum())
            self.accumulate("vertex_count", torch.tensor(float(errors.numel())))
        else:
            finite = torch.isfinite(pred["keypoints"]).flatten(1).all(dim=1)
            keypoints = torch.where(finite[:, None, None], pred["keypoints"],
                                    batch["keypoints"])
            aligned = apply_transform(verts, procrustes_transform(keypoints, batch["keypoints"]))
        scores = torch.stack([torch.stack([f_score(v, gt, t / 1000.0) for t in self.fscore_mm])
                              for v in (verts, aligned)])
        self.accumulate("fscores", scores.sum(dim=-1))
        self.accumulate("samples", torch.tensor(float(len(gt))))
        return {"fscore": scores[1, 0]}

    def compute(self) -> dict[str, float]:
        count, samples = float(self.state("vertex_count")), float(self.state("samples"))
        out = {"mesh_error_mm": float(self.state("error_sum")) / count if count else float("nan"),
               "pa_mesh_error_mm": (float(self.state("aligned_sum")) / count if count
                                    else float("nan"))}
        scores = self.state("fscores").cpu().flatten() / samples if samples else None
        for index, key in enumerate(self.keys):
            out[key] = float(scores[index]) if scores is not None else float("nan")
        return out


@METRICS.register("hand_samples")
class HandSamples(Metric):
    """A figure of the first ``count`` samples: image, ground-truth (green) and predicted
    (red) skeletons projected with K. Produces no numbers."""

    @classmethod
    def declare(cls, count: int = 6, size: int = 160) -> dict[str, bool]:
        return {}

    def __init__(self, count: int = 6, size: int = 160) -> None:
        super().__init__()
        self.count, self.size = int(count), int(size)
        self.add_object_state("examples", "extend", limit=self.count)

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]
               ) -> dict[str, torch.Tensor]:
        for index in range(len(batch["id"])):
            if not self.has_room("examples"):
                break
            image = batch["image"][index:index + 1]
            factor = torch.tensor([self.size / image.shape[-1], self.size / image.shape[-2]],
                                  dtype=torch.float64, device=image.device)
            resized = torch.nn.functional.interpolate(image.float(), (self.size, self.size),
                                                      mode="bilinear", align_corners=False)
            K = batch["K"][index:index + 1]
            uv = torch.stack([project(batch["keypoints"][index:index + 1], K),
                              project(pred["keypoints"][index:index + 1], K)], dim=1)
            self.accumulate("examples", (
                (resized[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu(),
                ((uv[0] + 0.5) * factor - 0.5).cpu().numpy()))
        return {}

    def compute(self) -> dict[str, float]:
        return {}

    def figures(self, out_dir: Path) -> list[Path]:
        examples = self.state("examples")
        if not examples:
            return []
        fig, axes = new_figure(1, len(examples), figsize=(2.4 * len(examples), 2.6),
                               squeeze=False)
        for ax, (image, points) in zip(axes[0], examples, strict=True):
            ax.imshow(image.permute(1, 2, 0).numpy())
            for (child, parent) in BONES:
                for which, colour in ((0, "lime"), (1, "red")):
                    ax.plot(points[which, [parent, child], 0], points[which, [parent, child], 1],
                            color=colour, linewidth=1.2)
            ax.set_xlim(0, self.size - 1)
            ax.set_ylim(self.size - 1, 0)
            ax.axis("off")
        fig.suptitle("ground truth (green) and prediction (red)", fontsize=9)
        return [save_figure(fig, out_dir / "hand_samples.png", dpi=110)]


def _plot_curve(path: Path, thresholds: np.ndarray, curve: np.ndarray, title: str,
                xlabel: str) -> Path:
    fig, ax = new_figure(figsize=(4.5, 3.4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax.plot(thresholds, curve)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of correct keypoints")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=110)
