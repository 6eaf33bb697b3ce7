"""Keypoint-matching metrics on image pairs related by a homography (HPatches protocol).

Pure functions first (torch for matching and projection, a KD-tree for geometric nearest
neighbours, OpenCV RANSAC for homography estimation), then the ``matching`` metric shell
whose parameters are the spec's matcher and conventions. References:

- MMA and match counts: D2-Net's HPatches sequences evaluation (Dusmanu et al. 2019):
  mutual nearest neighbours, the error of a match is the distance between the keypoint of
  image 1 projected by H and its match in image k, correct when error <= threshold, MMA
  is the per-pair fraction of correct matches averaged over pairs.
- Repeatability (Mikolajczyk et al. 2005, point version): over keypoints in the region
  seen by both images, one-to-one correspondences within the threshold divided by the
  smaller keypoint count; SuperPoint's variant (DeTone et al. 2018) is a parameter.
- Matching score: correct matches divided by keypoints in the shared region, averaged
  over the two images (Mikolajczyk & Schmid 2005, as SuperPoint reports it).
- Homography accuracy: SuperPoint's corner error; H estimated with OpenCV RANSAC on the
  matches, the four image corners warped by it and by the ground truth, correct when the
  mean corner distance <= threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import ContractError
from bench.lazy import lazy_import
from bench.metrics.base import Metric, new_figure, save_figure
from bench.registry import METRICS

np = lazy_import("numpy")
torch = lazy_import("torch")

MATCHERS = ("mnn", "ratio", "mnn+ratio")
DISTANCES = ("auto", "l2", "hamming")
KINDS = ("i", "v")


def warp_points(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to points [N,2] (x, y); returns float64 [N,2]."""
    h = np.asarray(homography, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mapped = p @ h[:2, :2].T + h[:2, 2]
    w = p @ h[2, :2] + h[2, 2]
    return mapped / w[:, None]


def inside_image(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool [N]: points within the image, whose pixels span [-0.5, W-0.5] x [-0.5, H-0.5]."""
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def unpack_bits(descriptors: torch.Tensor) -> torch.Tensor:
    """uint8 [N,B] packed binary descriptors -> float32 [N,8B] of 0/1 bits."""
    shifts = torch.arange(8, device=descriptors.device, dtype=torch.uint8)
    bits = (descriptors[:, :, None] >> shifts) & 1
    return bits.flatten(1).float()


def descriptor_distance(d0: torch.Tensor, d1: torch.Tensor, distance: str) -> torch.Tensor:
    """Distances [N0,N1]: Euclidean for float descriptors, Hamming (bit count) for uint8."""
    if distance == "hamming":
        b0, b1 = unpack_bits(d0), unpack_bits(d1)
        return (b0.sum(1)[:, None] + b1.sum(1)[None, :] - 2.0 * (b0 @ b1.T)).clamp_(min=0)
    return torch.cdist(d0.float(), d1.float(), compute_mode="use_mm_for_euclid_dist")


def resolve_distance(descriptors: torch.Tensor, distance: str) -> str:
    """The distance for these descriptors; ContractError when the dtype does not fit it."""
    binary = descriptors.dtype == torch.uint8
    if distance == "auto":
        return "hamming" if binary else "l2"
    if distance == "hamming" and not binary:
        raise ContractError(f"Hamming distance needs uint8 (packed binary) descriptors, "
                            f"got {descriptors.dtype}")
    if distance == "l2" and not descriptors.is_floating_point():
        raise ContractError(f"L2 distance needs float descriptors, got {descriptors.dtype} "
                            "(set the matching metric's distance to hamming or auto)")
    return distance


def match_descriptors(d0: torch.Tensor, d1: torch.Tensor, *, matcher: str = "mnn",
                      ratio: float = 0.8, distance: str = "l2",
                      chunk: int = 2048) -> torch.Tensor:
    """Match descriptors [N0,D] to [N1,D]; returns int64 [M,2] index pairs (i0, i1).

    ``mnn``: mutual nearest neighbours; ``ratio``: nearest neighbour of each d0 whose
    distance is below ``ratio`` times the second nearest (Lowe); ``mnn+ratio``: both.
    Distances are computed in row chunks of ``chunk`` (batched torch, any device).
    """
    n0, n1 = len(d0), len(d1)
    if n0 == 0 or n1 == 0:
        return torch.zeros((0, 2), dtype=torch.long, device=d0.device)
    best = torch.empty(n0, device=d0.device)
    second = torch.full((n0,), float("inf"), device=d0.device)
    nearest = torch.empty(n0, dtype=torch.long, device=d0.device)
    col_best = torch.full((n1,), float("inf"), device=d0.device)
    col_nearest = torch.zeros(n1, dtype=torch.long, device=d0.device)
    for start in range(0, n0, chunk):
        dist = descriptor_distance(d0[start:start + chunk], d1, distance)
        values, index = dist.topk(min(2, n1), dim=1, largest=False)
        best[start:start + chunk] = values[:, 0]
        nearest[start:start + chunk] = index[:, 0]
        if n1 > 1:
            second[start:start + chunk] = values[:, 1]
        cmin, carg = dist.min(dim=0)
        better = cmin < col_best
        col_best = torch.where(better, cmin, col_best)
        col_nearest = torch.where(better, carg + start, col_nearest)
    keep = torch.ones(n0, dtype=torch.bool, device=d0.device)
    if matcher in ("mnn", "mnn+ratio"):
        keep &= col_nearest[nearest] == torch.arange(n0, device=d0.device)
    if matcher in ("ratio", "mnn+ratio"):
        keep &= best < ratio * second
    rows = torch.nonzero(keep).squeeze(1)
    return torch.stack([rows, nearest[rows]], dim=1)


def naive_mutual_nearest(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """Reference mutual nearest neighbours with a Python loop over rows (for `arbench perf`)."""
    forward = np.array([np.argmin(((d1 - row) ** 2).sum(1)) for row in d0], dtype=np.int64)
    backward = np.array([np.argmin(((d0 - row) ** 2).sum(1)) for row in d1], dtype=np.int64)
    rows = np.nonzero(backward[forward] == np.arange(len(d0)))[0]
    return np.stack([rows, forward[rows]], axis=1)


def match_errors(kp0: np.ndarray, kp1: np.ndarray, matches: np.ndarray,
                 homography: np.ndarray) -> np.ndarray:
    """Reprojection error [M] (pixels) of each match: ||H kp0[i0] - kp1[i1]||."""
    if len(matches) == 0:
        return np.zeros(0, dtype=np.float64)
    projected = warp_points(homography, kp0[matches[:, 0]])
    return np.linalg.norm(projected - kp1[matches[:, 1]], axis=1)


def correct_counts(errors: np.ndarray, thresholds: np.ndarray,
                   inclusive: bool = True) -> np.ndarray:
    """Number of matches with error <= t (or < t) for each threshold t; float64 [T]."""
    errors = np.asarray(errors, dtype=np.float64)[:, None]
    thresholds = np.asarray(thresholds, dtype=np.float64)[None, :]
    hits = errors <= thresholds if inclusive else errors < thresholds
    return hits.sum(0).astype(np.float64)


def shared_masks(kp0: np.ndarray, kp1: np.ndarray, homography: np.ndarray,
                 shape0: tuple[int, int], shape1: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Bool masks of keypoints seen by both images: kp0 mapping into image 1 under H and
    kp1 mapping into image 0 under H^-1."""
    mask0 = inside_image(warp_points(homography, kp0), *shape1)
    mask1 = inside_image(warp_points(np.linalg.inv(homography), kp1), *shape0)
    return mask0, mask1


def repeatability(kp0: np.ndarray, kp1: np.ndarray, homography: np.ndarray,
                  shape0: tuple[int, int], shape1: tuple[int, int], *, threshold: float = 3.0,
                  region: str = "shared", formula: str = "mikolajczyk",
                  inclusive: bool = True) -> float:
    """Keypoint repeatability of a pair (0 when a set is empty).

    ``mikolajczyk``: one-to-one (mutually nearest) point correspondences within
    ``threshold`` pixels divided by min(n0, n1); ``superpoint``: (kp0 with a kp1 within the
    threshold + kp1 with a kp0 within it) / (n0 + n1). ``region`` ``shared`` counts only
    keypoints seen by both images, ``all`` every keypoint. Keypoints repeated at one
    location (SIFT's extra orientations) count once. Nearest neighbours by KD-tree.
    """
    from scipy.spatial import cKDTree  # here, not at the top: `arbench validate` stays light

    kp0 = np.unique(np.round(np.asarray(kp0, dtype=np.float64), 3), axis=0)
    kp1 = np.unique(np.round(np.asarray(kp1, dtype=np.float64), 3), axis=0)
    if region == "shared":
        mask0, mask1 = shared_masks(kp0, kp1, homography, shape0, shape1)
        kp0, kp1 = kp0[mask0], kp1[mask1]
    n0, n1 = len(kp0), len(kp1)
    if n0 == 0 or n1 == 0:
        return 0.0
    warped = warp_points(homography, kp0)
    points1 = np.asarray(kp1, dtype=np.float64)
    dist01, near01 = cKDTree(points1).query(warped, k=1)
    dist10, near10 = cKDTree(warped).query(points1, k=1)

    def within(d: np.ndarray) -> np.ndarray:
        return d <= threshold if inclusive else d < threshold

    if formula == "superpoint":
        return float((within(dist01).sum() + within(dist10).sum()) / (n0 + n1))
    mutual = near10[near01] == np.arange(n0)
    return float((mutual & within(dist01)).sum() / min(n0, n1))


def estimate_homography(kp0: np.ndarray, kp1: np.ndarray, matches: np.ndarray,
                        ransac_threshold: float = 3.0, seed: int = 0) -> np.ndarray | None:
    """OpenCV RANSAC homography from matched keypoints (None with < 4 matches or failure)."""
    import cv2  # here, not at the top: `arbench validate` stays light

    if len(matches) < 4:
        return None
    src, dst = kp0[matches[:, 0]], kp1[matches[:, 1]]
    cv2.setRNGSeed(seed)
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, ransac_threshold,
                                       maxIters=2000, confidence=0.995)
    if homography is None or not np.isfinite(homography).all():
        return None
    return homography


def corner_error(estimated: np.ndarray | None, truth: np.ndarray, height: int,
                 width: int) -> float:
    """Mean distance (pixels) between the 4 corners of image 0 warped by the estimated and
    the true homography (SuperPoint); inf when there is no estimate."""
    if estimated is None:
        return float("inf")
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1],
                        [width - 1, height - 1, 1]], dtype=np.float64)

    def project(h: np.ndarray) -> np.ndarray:
        mapped = corners @ h.T
        return mapped[:, :2] / mapped[:, 2:]

    return float(np.linalg.norm(project(estimated) - project(truth), axis=1).mean())


def limit_keypoints(keypoints: torch.Tensor, scores: torch.Tensor | None,
                    max_keypoints: int | None) -> torch.Tensor:
    """Indices of the kept keypoints: the ``max_keypoints`` highest scores (or the first
    ones when there are no scores), in their original order."""
    n = len(keypoints)
    if max_keypoints is None or n <= max_keypoints:
        return torch.arange(n, device=keypoints.device)
    if scores is None:
        return torch.arange(max_keypoints, device=keypoints.device)
    return scores.topk(max_keypoints).indices.sort().values


def pair_statistics(pred: dict[str, Any], homography: torch.Tensor, shape0: tuple[int, int],
                    shape1: tuple[int, int], *, matcher: str = "mnn", ratio: float = 0.8,
                    distance: str = "auto", max_keypoints: int | None = None,
                    thresholds: np.ndarray, inclusive: bool = True,
                    repeatability_threshold: float = 3.0, repeatability_region: str = "shared",
                    repeatability_formula: str = "mikolajczyk", score_threshold: float = 3.0,
                    ransac_threshold: float = 3.0) -> dict[str, Any]:
    """Every per-pair number of the matching metric for one pair's prediction.

    ``pred`` holds torch keypoints0/1 [N,2] with descriptors0/1 [N,D] (matched here, in
    torch on their device) or matches [M,2] (indices into the keypoints), and optional
    scores0/1 [N]; ``homography`` [3,3] maps image 0 to image 1. ``thresholds`` [T] are
    the pixel thresholds of the correct-match counts (error <= t when ``inclusive``).
    Returns counts, errors-derived counts per threshold, repeatability, matching score and
    the homography corner error.
    """
    kp0, kp1 = pred["keypoints0"], pred["keypoints1"]
    keep0 = limit_keypoints(kp0, pred.get("scores0"), max_keypoints)
    keep1 = limit_keypoints(kp1, pred.get("scores1"), max_keypoints)
    if pred.get("matches") is not None:
        matches = pred["matches"]
        new0 = torch.full((len(kp0),), -1, dtype=torch.long, device=kp0.device)
        new1 = torch.full((len(kp1),), -1, dtype=torch.long, device=kp1.device)
        new0[keep0] = torch.arange(len(keep0), device=kp0.device)
        new1[keep1] = torch.arange(len(keep1), device=kp1.device)
        matches = torch.stack([new0[matches[:, 0]], new1[matches[:, 1]]], dim=1)
        matches = matches[(matches >= 0).all(dim=1)]
    else:
        d0, d1 = pred["descriptors0"][keep0], pred["descriptors1"][keep1]
        kind = resolve_distance(d0, distance)
        if resolve_distance(d1, distance) != kind or d0.dtype != d1.dtype:
            raise ContractError(f"descriptors0 ({d0.dtype}) and descriptors1 ({d1.dtype}) "
                                "must have the same dtype")
        if d0.shape[1] != d1.shape[1]:
            raise ContractError(f"descriptors0 have {d0.shape[1]} dimensions, descriptors1 "
                                f"{d1.shape[1]}")
        matches = match_descriptors(d0, d1, matcher=matcher, ratio=ratio, distance=kind)
    kp0 = kp0[keep0].double().cpu().numpy()
    kp1 = kp1[keep1].double().cpu().numpy()
    matches = matches.cpu().numpy()
    homography = homography.double().cpu().numpy()
    errors = match_errors(kp0, kp1, matches, homography)
    correct = correct_counts(errors, thresholds, inclusive)
    mask0, mask1 = shared_masks(kp0, kp1, homography, shape0, shape1)
    score_hits = float(correct_counts(errors, np.array([score_threshold]), inclusive)[0])
    shares = [score_hits / int(m.sum()) for m in (mask0, mask1) if m.any()]
    estimate = estimate_homography(kp0, kp1, matches, ransac_threshold)
    return {
        "keypoints0": len(kp0),
        "keypoints1": len(kp1),
        "matches": len(matches),
        "correct": correct,
        "repeatability": repeatability(
            kp0, kp1, homography, shape0, shape1, threshold=repeatability_threshold,
            region=repeatability_region, formula=repeatability_formula, inclusive=inclusive),
        "matching_score": min(1.0, sum(shares) / 2.0) if len(shares) == 2 else 0.0,
        "corner_error": corner_error(estimate, homography, *shape0),
    }


def _name(value: float) -> str:
    return f"{value:g}px"


@METRICS.register("matching")
class MatchingMetric(Metric):
    """Match counts, correct matches and MMA @px, repeatability, matching score and
    homography accuracy over image pairs, with the spec's matcher and conventions."""

    version = "1"

    @classmethod
    def declare(cls, matcher: str = "mnn", ratio: float = 0.8, distance: str = "auto",
                max_keypoints: int | None = 2000, thresholds: list[float] | None = None,
                mma_thresholds: list[float] | None = None, inclusive: bool = True,
                average: str = "pair", repeatability_threshold: float = 3.0,
                repeatability_region: str = "shared",
                repeatability_formula: str = "mikolajczyk",
                matching_score_threshold: float = 3.0,
                homography_thresholds: list[float] | None = None,
                ransac_threshold: float = 3.0) -> dict[str, bool]:
        if matcher not in MATCHERS:
            raise ValueError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if average not in ("pair", "pooled"):
            raise ValueError(f"average must be 'pair' or 'pooled', got {average!r}")
        if repeatability_region not in ("shared", "all"):
            raise ValueError(f"repeatability_region must be 'shared' or 'all', "
                             f"got {repeatability_region!r}")
        if repeatability_formula not in ("mikolajczyk", "superpoint"):
            raise ValueError(f"repeatability_formula must be 'mikolajczyk' or 'superpoint', "
                             f"got {repeatability_formula!r}")
        if not 0 < float(ratio) <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if max_keypoints is not None and int(max_keypoints) < 1:
            raise ValueError(f"max_keypoints must be >= 1 or null, got {max_keypoints}")
        report = [float(t) for t in (thresholds or [1, 3, 5])]
        mma = [float(t) for t in (mma_thresholds or range(1, 11))]
        homography = [float(t) for t in (homography_thresholds or [1, 3, 5])]
        if any(t <= 0 for t in report + mma + homography):
            raise ValueError("pixel thresholds must be positive")
        return {"keypoints": True, "putative_matches": True,
                **{f"correct_matches@{_name(t)}": True for t in report},
                **{f"mma@{_name(t)}": True for t in report},
                "repeatability": True, "matching_score": True,
                **{f"homography_accuracy@{_name(t)}": True for t in homography}}

    def __init__(self, matcher: str = "mnn", ratio: float = 0.8, distance: str = "auto",
                 max_keypoints: int | None = 2000, thresholds: list[float] | None = None,
                 mma_thresholds: list[float] | None = None, inclusive: bool = True,
                 average: str = "pair", repeatability_threshold: float = 3.0,
                 repeatability_region: str = "shared",
                 repeatability_formula: str = "mikolajczyk",
                 matching_score_threshold: float = 3.0,
                 homography_thresholds: list[float] | None = None,
                 ransac_threshold: float = 3.0) -> None:
        super().__init__()
        self.higher_is_better = self.declare(
            matcher, ratio, distance, max_keypoints, thresholds, mma_thresholds, inclusive,
            average, repeatability_threshold, repeatability_region, repeatability_formula,
            matching_score_threshold, homography_thresholds, ransac_threshold)
        self.options = {
            "matcher": matcher, "ratio": float(ratio), "distance": distance,
            "max_keypoints": None if max_keypoints is None else int(max_keypoints),
            "inclusive": bool(inclusive), "repeatability_threshold": float(
                repeatability_threshold), "repeatability_region": repeatability_region,
            "repeatability_formula": repeatability_formula,
            "score_threshold": float(matching_score_threshold),
            "ransac_threshold": float(ransac_threshold),
        }
        self.average = average
        self.report = [float(t) for t in (thresholds or [1, 3, 5])]
        self.mma_thresholds = [float(t) for t in (mma_thresholds or range(1, 11))]
        self.homography_thresholds = [float(t) for t in (homography_thresholds or [1, 3, 5])]
        self.all_thresholds = sorted(set(self.report) | set(self.mma_thresholds))
        n_t, n_h, n_k = len(self.all_thresholds), len(self.homography_thresholds), len(KINDS)
        f64 = torch.float64
        self.add_state("pairs", torch.zeros(n_k + 1, dtype=f64), "sum")
        self.add_state("keypoints", torch.zeros((), dtype=f64), "sum")
        self.add_state("matches", torch.zeros(n_k + 1, dtype=f64), "sum")
        self.add_state("correct", torch.zeros(n_k + 1, n_t, dtype=f64), "sum")
        self.add_state("accuracy", torch.zeros(n_k + 1, n_t, dtype=f64), "sum")
        self.add_state("repeatability", torch.zeros((), dtype=f64), "sum")
        self.add_state("matching_score", torch.zeros((), dtype=f64), "sum")
        self.add_state("homography", torch.zeros(n_h, dtype=f64), "sum")
        self.per_sample_key = {"keypoints": "keypoints", "putative_matches": "matches"}
        for t in self.report:
            self.per_sample_key[f"correct_matches@{_name(t)}"] = f"correct@{_name(t)}"
        for t in self.report:
            if average == "pair":
                self.per_sample_key[f"mma@{_name(t)}"] = f"accuracy@{_name(t)}"
        self.per_sample_key.update({"repeatability": "repeatability",
                                    "matching_score": "matching_score"})
        for t in self.homography_thresholds:
            self.per_sample_key[f"homography_accuracy@{_name(t)}"] = f"homography@{_name(t)}"

    def update(self, pred: list[dict[str, Any]], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        thresholds = np.array(self.all_thresholds, dtype=np.float64)
        records: dict[str, list[float]] = {}
        device = self.state("keypoints").device
        for index, item in enumerate(pred):
            shape0 = tuple(batch["image0"][index].shape[-2:])
            shape1 = tuple(batch["image1"][index].shape[-2:])
            stats = pair_statistics(item, batch["H"][index], shape0, shape1,
                                    thresholds=thresholds, **self.options)
            kind = KINDS.index(batch["kind"][index]) if batch["kind"][index] in KINDS else None
            rows = [len(KINDS)] + ([kind] if kind is not None else [])
            correct = torch.from_numpy(stats["correct"])
            accuracy = correct / stats["matches"] if stats["matches"] else torch.zeros_like(correct)
            one = torch.zeros(len(KINDS) + 1, dtype=torch.float64)
            one[rows] = 1.0
            self.accumulate("pairs", one.to(device))
            self.accumulate("keypoints", torch.tensor(
                (stats["keypoints0"] + stats["keypoints1"]) / 2.0, dtype=torch.float64))
            self.accumulate("matches", (one * stats["matches"]).to(device))
            self.accumulate("correct", (one[:, None] * correct[None]).to(device))
            self.accumulate("accuracy", (one[:, None] * accuracy[None]).to(device))
            self.accumulate("repeatability", torch.tensor(stats["repeatability"]))
            self.accumulate("matching_score", torch.tensor(stats["matching_score"]))
            hom = torch.tensor([float(stats["corner_error"] <= t if self.options["inclusive"]
                                      else stats["corner_error"] < t)
                                for t in self.homography_thresholds], dtype=torch.float64)
            self.accumulate("homography", hom.to(device))
            record = {"keypoints": (stats["keypoints0"] + stats["keypoints1"]) / 2.0,
                      "keypoints0": stats["keypoints0"], "keypoints1": stats["keypoints1"],
                      "matches": stats["matches"]}
            for i, t in enumerate(self.all_thresholds):
                if t in self.report:
                    record[f"correct@{_name(t)}"] = float(correct[i])
                record[f"accuracy@{_name(t)}"] = float(accuracy[i])
            record["repeatability"] = stats["repeatability"]
            record["matching_score"] = stats["matching_score"]
            record["corner_error"] = stats["corner_error"]
            for i, t in enumerate(self.homography_thresholds):
                record[f"homography@{_name(t)}"] = float(hom[i])
            for key, value in record.items():
                records.setdefault(key, []).append(value)
        return {key: torch.tensor(values, dtype=torch.float64) for key, values in records.items()}

    def _mma(self, row: int) -> list[float]:
        pairs = float(self.state("pairs")[row])
        if self.average == "pooled":
            matches = float(self.state("matches")[row])
            values = self.state("correct")[row] / matches if matches else None
        else:
            values = self.state("accuracy")[row] / pairs if pairs else None
        if values is None:
            return [float("nan")] * len(self.all_thresholds)
        return [float(v) for v in values]

    def compute(self) -> dict[str, float]:
        pairs = float(self.state("pairs")[len(KINDS)])

        def mean(value: torch.Tensor) -> float:
            return float(value) / pairs if pairs else float("nan")

        out = {"keypoints": mean(self.state("keypoints")),
               "putative_matches": mean(self.state("matches")[len(KINDS)])}
        correct = self.state("correct")[len(KINDS)]
        mma = self._mma(len(KINDS))
        for t in self.report:
            out[f"correct_matches@{_name(t)}"] = mean(correct[self.all_thresholds.index(t)])
        for t in self.report:
            out[f"mma@{_name(t)}"] = mma[self.all_thresholds.index(t)]
        out["repeatability"] = mean(self.state("repeatability"))
        out["matching_score"] = mean(self.state("matching_score"))
        for i, t in enumerate(self.homography_thresholds):
            out[f"homography_accuracy@{_name(t)}"] = mean(self.state("homography")[i])
        return out

    def details(self) -> dict[str, Any]:
        pairs = self.state("pairs")
        curves = {"thresholds_px": self.all_thresholds, "average": self.average}
        for row, label in enumerate((*KINDS, "all")):
            curves[f"mma_{label}"] = self._mma(row)
            curves[f"pairs_{label}"] = int(pairs[row])
        return {"mma_curve": curves}

    @classmethod
    def comparison_figures(cls, details: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """The HPatches/D2-Net plot: every model's MMA curve, overall / illumination /
        viewpoint."""
        curves = {model: d["mma_curve"] for model, d in details.items() if "mma_curve" in d}
        if not curves:
            return []
        fig, axes = new_figure(1, 3, figsize=(12, 3.6), sharey=True)
        for ax, (key, title) in zip(axes, (("all", "Overall"), ("i", "Illumination"),
                                           ("v", "Viewpoint")), strict=True):
            for model, curve in curves.items():
                ax.plot(curve["thresholds_px"], curve[f"mma_{key}"], marker="o", label=model)
            ax.set_title(title)
            ax.set_xlabel("threshold [px]")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("MMA")
        axes[0].legend()
        return [save_figure(fig, out_dir / "mma_comparison.png", dpi=110)]

    def figures(self, out_dir: Path) -> list[Path]:
        pairs = self.state("pairs")
        fig, axes = new_figure(1, 3, figsize=(11, 3.4), sharey=True)
        titles = (("all", len(KINDS), "Overall"), ("i", 0, "Illumination"),
                  ("v", 1, "Viewpoint"))
        for ax, (_, row, title) in zip(axes, titles, strict=True):
            ax.plot(self.all_thresholds, self._mma(row), marker="o", linewidth=2)
            ax.set_title(f"{title} ({int(pairs[row])} pairs)")
            ax.set_xlabel("threshold [px]")
            ax.set_xlim(min(self.all_thresholds), max(self.all_thresholds))
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("MMA")
        return [save_figure(fig, out_dir / "mma_curve.png", dpi=110)]
