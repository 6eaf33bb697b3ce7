"""6D object pose metrics, following bop_toolkit (``bop_toolkit_lib/pose_error.py``) and
the YCB-Video toolbox.

Pure functions first (batched torch, float64; poses R [B,3,3], t [B,3] in metres, model
points [N,3] in metres in the model frame), then the metric shells the runner uses.

- ADD (Hinterstoisser et al. 2012): mean distance between corresponding model points.
- ADD-S / ADI: mean distance from each ground-truth-posed point to the closest
  estimated-posed point, found with a KD-tree built once per model in its own frame (CPU)
  or by a batched exact search with matrix products (GPU).
- rotation error (geodesic angle, degrees), translation error (metres), 2D projection
  error (mean pixel distance, Brachmann et al. 2016).
- MSSD / MSPD (BOP 2019): maximum surface / projection distance, minimised over the
  object's symmetry transformations.

A missing or invalid estimate has error ``inf``: it fails every threshold, and counts in
every denominator. Thresholds are strict (``error < threshold``) as in bop_toolkit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.lazy import lazy_import
from bench.metrics.base import Metric, new_figure, save_figure
from bench.registry import METRICS

np = lazy_import("numpy")
torch = lazy_import("torch")

AUC_CONVENTIONS = ("vocap", "step", "trapezoid")
QUERY_BLOCK = 200_000


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``R @ p + t`` for points [N,3] and poses R [B,3,3], t [B,3] -> [B,N,3]."""
    return torch.matmul(points, R.transpose(-1, -2)) + t[:, None, :]


def project_points(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates [B,N,2] of camera-frame points [B,N,3] with K [B,3,3] (OpenCV)."""
    uvw = torch.matmul(points, K.transpose(-1, -2))
    return uvw[..., :2] / uvw[..., 2:3]


def add_error(R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor, t_gt: torch.Tensor,
              points: torch.Tensor) -> torch.Tensor:
    """ADD [B] (metres): mean ||(R_e p + t_e) - (R_g p + t_g)|| over model points p."""
    diff = transform_points(points, R_est - R_gt, t_est - t_gt)
    return diff.norm(dim=-1).mean(dim=-1)


class ModelTree:
    """A KD-tree over one model's points in the model frame, for ADD-S queries."""

    def __init__(self, points: torch.Tensor) -> None:
        from scipy.spatial import cKDTree

        self.points = points
        self.tree = cKDTree(points.detach().cpu().double().numpy())
        # The points in the tree's leaf order: their mapped copies are queried in that
        # order, so consecutive queries walk the same leaves (about 1.15x faster).
        self.leaf_order = torch.from_numpy(self.tree.indices)
        self.leaf_points = points.detach().cpu()[self.leaf_order]

    def adds(self, R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor,
             t_gt: torch.Tensor, workers: int = -1) -> torch.Tensor:
        """ADD-S [B] (metres) of B poses of this model: batched tree queries on the CPU,
        a batched exact search by matrix products on a GPU (``closest_distances``).

        The ground-truth-posed points are mapped into the estimate's model frame,
        ``q = R_e^T (R_g p + t_g - t_e)``; the distance to the closest model point there
        equals the distance to the closest estimated-posed point (rigid motions keep
        distances).
        """
        relative_R = R_est.transpose(1, 2) @ R_gt
        relative_t = torch.matmul((t_gt - t_est)[:, None], R_est)[:, 0]
        points = self.points.to(R_est.dtype).to(R_est.device)
        if R_est.device.type == "cuda":
            return closest_distances(points, relative_R, relative_t).mean(dim=1)
        # Poses go in groups of ~200k query points: cache-friendly (about 2x faster than one
        # huge call) and bounded memory. Distances go back to the points' own order before
        # the mean, so the sums are the same to the bit.
        leaf_points = self.leaf_points.to(R_est.dtype)
        group = max(1, QUERY_BLOCK // len(points))
        means = [torch.zeros(0, dtype=torch.float64)]
        for first in range(0, len(relative_R), group):
            queries = transform_points(leaf_points, relative_R[first:first + group].cpu(),
                                       relative_t[first:first + group].cpu())
            flat = queries.detach().double().numpy().reshape(-1, 3)
            distances, _ = self.tree.query(flat, k=1, workers=workers)
            in_model_order = torch.empty(queries.shape[:2], dtype=torch.float64)
            in_model_order[:, self.leaf_order] = torch.from_numpy(distances).view(
                queries.shape[:2])
            means.append(in_model_order.mean(dim=1))
        return torch.cat(means).to(R_est.device)


def closest_distances(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                      block: int = 64_000_000) -> torch.Tensor:
    """Distance [B, N] from each point ``R_b p + t_b`` to the closest of ``points`` [N, 3].

    Exact search on the points' device: squared distances by a matrix product
    (|q|^2 - 2 q.p + |p|^2) pick the closest point, whose distance is then computed by
    differences (so an exact match gives 0, not the rounding of the expansion); the
    products go in pieces of about ``block`` entries. Equal to a KD-tree's distances up to
    rounding when two points are equally close (1e-12 m).
    """
    queries = transform_points(points, R, t).reshape(-1, 3)
    point_norms = (points * points).sum(dim=1)
    rows = max(1, block // len(points))
    closest = torch.empty(len(queries), dtype=torch.long, device=points.device)
    for first in range(0, len(queries), rows):
        part = queries[first:first + rows]
        squared = torch.addmm(point_norms[None], part, points.T, alpha=-2.0)
        closest[first:first + rows] = squared.argmin(dim=1)
    return (queries - points[closest]).norm(dim=1).view(len(R), len(points))


def adds_error(R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor, t_gt: torch.Tensor,
               points: torch.Tensor, tree: ModelTree | None = None) -> torch.Tensor:
    """ADD-S / ADI [B] (metres): mean over GT-posed points of the closest estimated point."""
    return (tree or ModelTree(points)).adds(R_est, t_est, R_gt, t_gt)


def rotation_error_deg(R_est: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Geodesic angle [B] (degrees) of R_est R_gt^T, bop_toolkit's ``re``.

    Computed as 2 asin(||R_e - R_g||_F / (2 sqrt 2)), equal to arccos((tr(R_e R_g^T) - 1) / 2)
    for rotations but accurate near 0 (arccos loses about 1e-6 degrees there).
    """
    chord = (R_est - R_gt).flatten(1).norm(dim=1) / (2.0 * math.sqrt(2.0))
    return torch.rad2deg(2.0 * torch.asin(chord.clamp(max=1.0)))


def translation_error(t_est: torch.Tensor, t_gt: torch.Tensor) -> torch.Tensor:
    """||t_est - t_gt|| [B] (metres), as bop_toolkit's ``te``."""
    return (t_est - t_gt).norm(dim=-1)


def projection_error(R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor,
                     t_gt: torch.Tensor, K: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Mean 2D distance [B] (pixels) between projected model points (bop_toolkit ``proj``)."""
    est = project_points(transform_points(points, R_est, t_est), K)
    gt = project_points(transform_points(points, R_gt, t_gt), K)
    return (est - gt).norm(dim=-1).mean(dim=-1)


def _symmetric_gt(R_gt: torch.Tensor, t_gt: torch.Tensor,
                  symmetries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GT poses composed with each symmetry S: (R_g R_S [B,S,3,3], R_g t_S + t_g [B,S,3])."""
    rotations = torch.matmul(R_gt[:, None], symmetries[None, :, :3, :3])
    translations = torch.matmul(symmetries[None, :, :3, 3], R_gt.transpose(1, 2)) + t_gt[:, None]
    return rotations, translations


def mssd_error(R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor, t_gt: torch.Tensor,
               points: torch.Tensor, symmetries: torch.Tensor) -> torch.Tensor:
    """MSSD [B] (metres): min over symmetries S of max_p ||est(p) - gt_S(p)||."""
    est = transform_points(points, R_est, t_est)
    rotations, translations = _symmetric_gt(R_gt, t_gt, symmetries)
    gt = torch.matmul(points, rotations.transpose(-1, -2)) + translations[:, :, None]
    return (est[:, None] - gt).norm(dim=-1).amax(dim=-1).amin(dim=-1)


def mspd_error(R_est: torch.Tensor, t_est: torch.Tensor, R_gt: torch.Tensor, t_gt: torch.Tensor,
               K: torch.Tensor, points: torch.Tensor, symmetries: torch.Tensor) -> torch.Tensor:
    """MSPD [B] (pixels): min over symmetries S of max_p ||proj est(p) - proj gt_S(p)||."""
    est = project_points(transform_points(points, R_est, t_est), K)
    rotations, translations = _symmetric_gt(R_gt, t_gt, symmetries)
    # Project in one product: K (R p + t) = (K R) p + K t for every symmetry at once.
    KR = torch.matmul(K[:, None], rotations)
    Kt = torch.matmul(translations, K.transpose(1, 2))
    uvw = torch.matmul(points, KR.transpose(-1, -2)) + Kt[:, :, None]
    gt_px = uvw[..., :2] / uvw[..., 2:3]
    return (est[:, None] - gt_px).norm(dim=-1).amax(dim=-1).amin(dim=-1)


def auc(distances: torch.Tensor, max_distance: float = 0.1,
        convention: str = "vocap") -> float:
    """Area under the accuracy-vs-threshold curve on [0, max_distance], normalised to [0,1].

    ``distances`` [N] (metres, ``inf`` for failures; every entry is in the denominator).
    ``vocap``: the YCB-Video toolbox / PoseCNN ``VOCap`` (the curve's value at each sorted
    distance is held to its left); ``step``: the exact area under the empirical CDF;
    ``trapezoid``: linear interpolation between the CDF points.
    """
    if convention not in AUC_CONVENTIONS:
        raise ValueError(f"AUC convention must be one of {AUC_CONVENTIONS}, got {convention!r}")
    values = np.sort(distances.detach().cpu().double().numpy())
    count = len(values)
    if count == 0:
        return float("nan")
    inside = values[values <= max_distance]
    if len(inside) == 0:
        return 0.0
    accuracy = np.arange(1, len(inside) + 1) / count
    if convention == "vocap":
        recall = np.concatenate([[0.0], inside, [max_distance]])
        precision = np.concatenate([[0.0], accuracy, [accuracy[-1]]])
        precision = np.maximum.accumulate(precision)
        change = np.nonzero(recall[1:] != recall[:-1])[0] + 1
        area = np.sum((recall[change] - recall[change - 1]) * precision[change])
    elif convention == "step":
        edges = np.concatenate([inside, [max_distance]])
        area = np.sum(np.diff(edges) * accuracy)
    else:
        xs = np.concatenate([[0.0], inside, [max_distance]])
        ys = np.concatenate([[0.0], accuracy, [accuracy[-1]]])
        area = np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0)
    return float(area / max_distance)


def _invalid(pred: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B] True where the estimate is missing (``valid`` False) or not finite."""
    finite = torch.isfinite(pred["R"]).flatten(1).all(1) & torch.isfinite(pred["t"]).all(1)
    return ~(pred["valid"].bool() & finite)


def _safe_pose(pred: dict[str, torch.Tensor], invalid: torch.Tensor,
               batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimated pose with invalid rows replaced by GT (their errors are set to inf after)."""
    R = torch.where(invalid[:, None, None], batch["R"].double(), pred["R"].double())
    t = torch.where(invalid[:, None], batch["t"].double(), pred["t"].double())
    return R, t


def _groups(obj_ids: list[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for index, obj_id in enumerate(obj_ids):
        groups.setdefault(int(obj_id), []).append(index)
    return groups


def _as_list(values: Any) -> list:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


class _PerObject(Metric):
    """Shared state: per-sample values (``cat``) with the object id, for per-object tables."""

    def _per_object(self, name: str, hits: torch.Tensor, obj_ids: torch.Tensor) -> dict:
        table = {}
        for obj_id in torch.unique(obj_ids).tolist():
            sel = obj_ids == obj_id
            table[str(int(obj_id))] = float(hits[sel].double().mean())
        return {name: table}


class _AddErrors:
    """ADD and ADD-S of a batch, with one KD-tree per object model (cached)."""

    def __init__(self) -> None:
        self._trees: dict[tuple, ModelTree] = {}

    def tree(self, obj_id: int, points: torch.Tensor) -> ModelTree:
        """The cached tree of a model (keyed by id, size and a checksum of its points)."""
        key = (obj_id, points.shape[0], float(points.double().sum()))
        if key not in self._trees:
            self._trees[key] = ModelTree(points)
        return self._trees[key]

    def __call__(self, pred: dict[str, torch.Tensor],
                 batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ADD, ADD-S, ADD(-S)) [B] in metres; inf where the estimate is missing."""
        invalid = _invalid(pred)
        R_est, t_est = _safe_pose(pred, invalid, batch)
        R_gt, t_gt = batch["R"].double(), batch["t"].double()
        add = torch.empty(len(invalid), dtype=torch.float64, device=R_gt.device)
        adds = torch.empty_like(add)
        for obj_id, rows in _groups(_as_list(batch["obj_id"])).items():
            points = batch["model_points"][rows[0]].double()
            index = torch.tensor(rows, device=R_gt.device)
            add[index] = add_error(R_est[index], t_est[index], R_gt[index], t_gt[index], points)
            adds[index] = self.tree(obj_id, points).adds(
                R_est[index], t_est[index], R_gt[index], t_gt[index])
        add[invalid] = math.inf
        adds[invalid] = math.inf
        symmetric = batch["symmetric"].bool().to(add.device)
        return add, adds, torch.where(symmetric, adds, add)


@METRICS.register("add")
class AddAccuracy(_PerObject):
    """ADD, ADD-S and ADD(-S) accuracy at a fraction of the diameter, with the curve (PNG).

    ADD(-S) uses ADD-S for the objects whose sample says ``symmetric`` (models_info by
    default; the adapter's ``symmetric`` parameter overrides it) and ADD for the others.
    """

    @classmethod
    def declare(cls, threshold: float = 0.1, curve_max: float = 0.5, curve_steps: int = 50,
                strict: bool = True) -> dict[str, bool]:
        if not 0 < float(threshold) <= float(curve_max):
            raise ValueError(f"threshold must be in (0, curve_max], got {threshold}")
        return {"add_accuracy": True, "adds_accuracy": True, "add_s_accuracy": True}

    def __init__(self, threshold: float = 0.1, curve_max: float = 0.5, curve_steps: int = 50,
                 strict: bool = True) -> None:
        super().__init__()
        self.higher_is_better = self.declare(threshold, curve_max, curve_steps, strict)
        self.threshold = float(threshold)
        self.strict = bool(strict)
        self.curve = torch.linspace(0.0, float(curve_max), int(curve_steps) + 1,
                                    dtype=torch.float64)[1:]
        for name in ("add", "adds", "add_s", "diameter", "obj_id"):
            self.add_state(name, torch.zeros(0, dtype=torch.float64), "cat")
        self.errors = _AddErrors()
        self.per_sample_key = {"add_accuracy": "add_correct", "adds_accuracy": "adds_correct",
                               "add_s_accuracy": "add_s_correct"}

    def _correct(self, error: torch.Tensor, diameter: torch.Tensor) -> torch.Tensor:
        limit = self.threshold * diameter
        return (error < limit if self.strict else error <= limit).double()

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict:
        add, adds, add_s = self.errors(pred, batch)
        diameter = batch["diameter"].double().to(add.device)
        obj_ids = torch.as_tensor(_as_list(batch["obj_id"]), dtype=torch.float64)
        for name, value in (("add", add), ("adds", adds), ("add_s", add_s),
                            ("diameter", diameter), ("obj_id", obj_ids.to(add.device))):
            self.accumulate(name, value)
        return {"add": add, "adds": adds, "add_correct": self._correct(add, diameter),
                "adds_correct": self._correct(adds, diameter),
                "add_s_correct": self._correct(add_s, diameter)}

    def compute(self) -> dict[str, float]:
        diameter = self.state("diameter")
        if diameter.numel() == 0:
            return {key: float("nan") for key in self.higher_is_better}
        return {f"{name}_accuracy": float(self._correct(self.state(name), diameter).mean())
                for name in ("add", "adds", "add_s")}

    def curves(self) -> dict[str, list[float]]:
        """Accuracy at each fraction of the diameter in ``self.curve``, per error kind."""
        diameter = self.state("diameter")
        out = {"fraction_of_diameter": self.curve.tolist()}
        for name in ("add", "adds", "add_s"):
            ratio = (self.state(name) / diameter).cpu()
            hits = ratio[:, None] < self.curve[None] if self.strict else (
                ratio[:, None] <= self.curve[None])
            out[name] = hits.double().mean(dim=0).tolist()
        return out

    def details(self) -> dict[str, Any]:
        if self.state("diameter").numel() == 0:
            return {}
        obj_ids = self.state("obj_id")
        diameter = self.state("diameter")
        details: dict[str, Any] = {"add_curve": self.curves()}
        for name in ("add", "adds", "add_s"):
            hits = self._correct(self.state(name), diameter)
            details.update(self._per_object(f"{name}_accuracy_per_object", hits, obj_ids))
        return details

    def figures(self, out_dir: Path) -> list[Path]:
        if self.state("diameter").numel() == 0:
            return []
        curves = self.curves()
        fig, ax = new_figure(figsize=(5.0, 3.6))
        for name, label in (("add", "ADD"), ("adds", "ADD-S"), ("add_s", "ADD(-S)")):
            ax.plot(curves["fraction_of_diameter"], curves[name], label=label)
        ax.axvline(self.threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("threshold (fraction of object diameter)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.01)
        ax.set_xlim(0, float(self.curve[-1]))
        ax.grid(alpha=0.3)
        ax.legend()
        return [save_figure(fig, out_dir / "add_accuracy_curve.png", dpi=120)]


@METRICS.register("pose_auc")
class PoseAuc(Metric):
    """AUC of ADD-S and of ADD(-S) for thresholds up to ``max_distance`` metres (PoseCNN).

    ``convention``: ``vocap`` (YCB-Video toolbox, default), ``step`` or ``trapezoid``.
    """

    @classmethod
    def declare(cls, max_distance: float = 0.1, convention: str = "vocap") -> dict[str, bool]:
        if convention not in AUC_CONVENTIONS:
            raise ValueError(f"convention must be one of {AUC_CONVENTIONS}, got {convention!r}")
        if float(max_distance) <= 0:
            raise ValueError(f"max_distance must be positive, got {max_distance}")
        return {"auc_adds": True, "auc_add_s": True}

    def __init__(self, max_distance: float = 0.1, convention: str = "vocap") -> None:
        super().__init__()
        self.higher_is_better = self.declare(max_distance, convention)
        self.max_distance = float(max_distance)
        self.convention = convention
        self.errors = _AddErrors()
        self.add_state("adds", torch.zeros(0, dtype=torch.float64), "cat")
        self.add_state("add_s", torch.zeros(0, dtype=torch.float64), "cat")

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict:
        _, adds, add_s = self.errors(pred, batch)
        self.accumulate("adds", adds)
        self.accumulate("add_s", add_s)
        return {}

    def compute(self) -> dict[str, float]:
        return {"auc_adds": auc(self.state("adds"), self.max_distance, self.convention),
                "auc_add_s": auc(self.state("add_s"), self.max_distance, self.convention)}


@METRICS.register("pose_error")
class PoseError(_PerObject):
    """Rotation error (degrees), translation error (m) and the 5 cm 5 degree accuracy.

    Means and medians are over estimated poses; ``detection_rate`` is the fraction of
    targets with an estimate; the accuracy counts missing estimates as failures.
    """

    @classmethod
    def declare(cls, max_rotation_deg: float = 5.0, max_translation: float = 0.05
                ) -> dict[str, bool]:
        return {"cm5deg5_accuracy": True, "rotation_error_mean": False,
                "rotation_error_median": False, "translation_error_mean": False,
                "translation_error_median": False, "detection_rate": True}

    def __init__(self, max_rotation_deg: float = 5.0, max_translation: float = 0.05) -> None:
        super().__init__()
        self.higher_is_better = self.declare(max_rotation_deg, max_translation)
        self.max_rotation = float(max_rotation_deg)
        self.max_translation = float(max_translation)
        self.add_state("re", torch.zeros(0, dtype=torch.float64), "cat")
        self.add_state("te", torch.zeros(0, dtype=torch.float64), "cat")
        self.per_sample_key = {"cm5deg5_accuracy": "cm5deg5_correct"}

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict:
        invalid = _invalid(pred)
        R_est, t_est = _safe_pose(pred, invalid, batch)
        re = rotation_error_deg(R_est, batch["R"].double())
        te = translation_error(t_est, batch["t"].double())
        re[invalid] = math.inf
        te[invalid] = math.inf
        self.accumulate("re", re)
        self.accumulate("te", te)
        correct = ((re < self.max_rotation) & (te < self.max_translation)).double()
        return {"rotation_error": re, "translation_error": te, "cm5deg5_correct": correct}

    def compute(self) -> dict[str, float]:
        re, te = self.state("re"), self.state("te")
        if re.numel() == 0:
            return {key: float("nan") for key in self.higher_is_better}
        found = torch.isfinite(re)
        out = {"cm5deg5_accuracy": float(((re < self.max_rotation)
                                          & (te < self.max_translation)).double().mean()),
               "detection_rate": float(found.double().mean())}
        for name, values in (("rotation_error", re[found]), ("translation_error", te[found])):
            out[f"{name}_mean"] = float(values.mean()) if values.numel() else float("nan")
            out[f"{name}_median"] = float(values.median()) if values.numel() else float("nan")
        return out


@METRICS.register("proj2d")
class Projection2D(Metric):
    """2D projection error (mean pixel distance of projected model points) and accuracy."""

    @classmethod
    def declare(cls, threshold_px: float = 5.0) -> dict[str, bool]:
        if float(threshold_px) <= 0:
            raise ValueError(f"threshold_px must be positive, got {threshold_px}")
        return {"proj2d_accuracy": True}

    def __init__(self, threshold_px: float = 5.0) -> None:
        super().__init__()
        self.higher_is_better = self.declare(threshold_px)
        self.threshold = float(threshold_px)
        self.add_state("hits", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), "sum")
        self.per_sample_key = {"proj2d_accuracy": "proj2d_correct"}

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict:
        invalid = _invalid(pred)
        R_est, t_est = _safe_pose(pred, invalid, batch)
        error = torch.empty(len(invalid), dtype=torch.float64, device=R_est.device)
        for _, rows in _groups(_as_list(batch["obj_id"])).items():
            index = torch.tensor(rows, device=R_est.device)
            points = batch["model_points"][rows[0]].double()
            error[index] = projection_error(R_est[index], t_est[index], batch["R"][index].double(),
                                            batch["t"][index].double(),
                                            batch["K"][index].double(), points)
        error[invalid] = math.inf
        correct = (error < self.threshold).double()
        self.accumulate("hits", correct.sum())
        self.accumulate("count", torch.tensor(float(len(correct)), dtype=torch.float64))
        return {"proj2d_error": error, "proj2d_correct": correct}

    def compute(self) -> dict[str, float]:
        count = float(self.state("count"))
        return {"proj2d_accuracy": float(self.state("hits")) / count if count else float("nan")}


@METRICS.register("bop")
class BopRecall(Metric):
    """BOP 2019 MSSD and MSPD average recalls and their mean (VSD is not computed).

    MSSD thresholds: ``mssd_thresholds`` x diameter; MSPD thresholds: ``mspd_thresholds``
    pixels x r with r = image width / 640 when ``mspd_scale_by_width`` (the BOP 2019 rule).
    """

    @classmethod
    def declare(cls, mssd_thresholds: list[float] | None = None,
                mspd_thresholds: list[float] | None = None,
                mspd_scale_by_width: bool = True) -> dict[str, bool]:
        if any(float(t) <= 0 for t in [*(mssd_thresholds or []), *(mspd_thresholds or [])]):
            raise ValueError("BOP thresholds must be positive")
        return {"ar_mssd": True, "ar_mspd": True, "ar_mssd_mspd": True}

    def __init__(self, mssd_thresholds: list[float] | None = None,
                 mspd_thresholds: list[float] | None = None,
                 mspd_scale_by_width: bool = True) -> None:
        super().__init__()
        self.higher_is_better = self.declare(mssd_thresholds, mspd_thresholds,
                                             mspd_scale_by_width)
        self.mssd_th = torch.tensor(mssd_thresholds or np.arange(0.05, 0.51, 0.05).tolist(),
                                    dtype=torch.float64)
        self.mspd_th = torch.tensor(mspd_thresholds or np.arange(5, 51, 5).tolist(),
                                    dtype=torch.float64)
        self.scale_by_width = bool(mspd_scale_by_width)
        for name in ("mssd_hits", "mspd_hits"):
            size = len(self.mssd_th) if name == "mssd_hits" else len(self.mspd_th)
            self.add_state(name, torch.zeros(size, dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), "sum")
        self._hulls: dict[tuple, torch.Tensor] = {}
        self.per_sample_key = {"ar_mssd": "mssd_recall", "ar_mspd": "mspd_recall"}

    def update(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict:
        invalid = _invalid(pred)
        R_est, t_est = _safe_pose(pred, invalid, batch)
        mssd = torch.empty(len(invalid), dtype=torch.float64, device=R_est.device)
        mspd = torch.empty_like(mssd)
        for obj_id, rows in _groups(_as_list(batch["obj_id"])).items():
            index = torch.tensor(rows, device=R_est.device)
            points = batch["model_points"][rows[0]].double()
            symmetries = batch["symmetries"][rows[0]].double()
            hull = self._hull(obj_id, points)
            for chunk in index.split(8):
                R_gt, t_gt = batch["R"][chunk].double(), batch["t"][chunk].double()
                mssd[chunk] = mssd_error(R_est[chunk], t_est[chunk], R_gt, t_gt, hull,
                                         symmetries)
                mspd[chunk] = mspd_error(R_est[chunk], t_est[chunk], R_gt, t_gt,
                                         batch["K"][chunk].double(), points, symmetries)
        mssd[invalid] = math.inf
        mspd[invalid] = math.inf
        diameter = batch["diameter"].double().to(mssd.device)
        scale = batch["image"].shape[-1] / 640.0 if self.scale_by_width else 1.0
        mssd_hits = (mssd[:, None] < self.mssd_th.to(mssd.device)[None] * diameter[:, None])
        mspd_hits = (mspd[:, None] < self.mspd_th.to(mspd.device)[None] * scale)
        self.accumulate("mssd_hits", mssd_hits.double().sum(0))
        self.accumulate("mspd_hits", mspd_hits.double().sum(0))
        self.accumulate("count", torch.tensor(float(len(mssd)), dtype=torch.float64))
        return {"mssd": mssd, "mspd": mspd, "mssd_recall": mssd_hits.double().mean(1),
                "mspd_recall": mspd_hits.double().mean(1)}

    def _hull(self, obj_id: int, points: torch.Tensor) -> torch.Tensor:
        """The model points on its convex hull: the MSSD maximum of ||A p + b|| (convex in
        p) is attained there, so the result is exact and much cheaper."""
        from scipy.spatial import ConvexHull, QhullError

        key = (obj_id, points.shape[0], float(points.sum()))
        if key not in self._hulls:
            try:
                vertices = ConvexHull(points.cpu().numpy()).vertices
                self._hulls[key] = points[torch.as_tensor(vertices, device=points.device)]
            except QhullError:
                self._hulls[key] = points
        return self._hulls[key]

    def compute(self) -> dict[str, float]:
        count = float(self.state("count"))
        if not count:
            return {key: float("nan") for key in self.higher_is_better}
        ar_mssd = float(self.state("mssd_hits").mean()) / count
        ar_mspd = float(self.state("mspd_hits").mean()) / count
        return {"ar_mssd": ar_mssd, "ar_mspd": ar_mspd, "ar_mssd_mspd": (ar_mssd + ar_mspd) / 2}

    def details(self) -> dict[str, Any]:
        count = float(self.state("count"))
        if not count:
            return {}
        return {"mssd_recall_per_threshold": (self.state("mssd_hits") / count).tolist(),
                "mspd_recall_per_threshold": (self.state("mspd_hits") / count).tolist()}
