"""6D pose baselines: oracles, a classical SIFT + PnP-RANSAC pipeline, depth registration
(FPFH + RANSAC, then ICP, Open3D) and a small BB8-style CNN followed by PnP.

All predictors take a batch of the pose family and return ``{"R", "t", "valid"}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import open3d as o3d
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from torch import nn

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.geometry.cameras import back_project
from bench.geometry.rotations import rotation_matrix
from bench.models import register_baseline

CROP = 64
MIN_INLIERS = 6
PNP_MIN_INLIERS = 12
UPSAMPLE = 2.0


def _ints(values: Any) -> list[int]:
    return [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]


def _output(R: np.ndarray, t: np.ndarray, valid: np.ndarray, device: Any) -> dict:
    return {"R": torch.from_numpy(R).to(device), "t": torch.from_numpy(t).to(device),
            "valid": torch.from_numpy(valid).to(device)}


def _empty(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.tile(np.eye(3), (size, 1, 1)), np.zeros((size, 3)), np.zeros(size, dtype=bool)


def _gray(image: torch.Tensor) -> np.ndarray:
    rgb = (image.detach().cpu().permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _box_mask(shape: tuple[int, int], box: np.ndarray, margin: int = 8) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    x, y, w, h = (int(np.rint(v)) for v in box)
    if w <= 0 or h <= 0:
        return mask
    mask[max(0, y - margin):y + h + margin, max(0, x - margin):x + w + margin] = 255
    return mask


# ---------------------------------------------------------------- oracles

def _oracle(spec: Any, info: Any, device: torch.device) -> Callable[[dict], dict]:
    """Ground truth as the prediction (every metric must be perfect)."""
    return lambda batch: {"R": batch["R"].clone(), "t": batch["t"].clone()}


def _oracle_rot3(spec: Any, info: Any, device: torch.device) -> Callable[[dict], dict]:
    """Ground truth rotated by 3 degrees about the model's z axis (known errors)."""
    rz = torch.from_numpy(rotation_matrix((0, 0, 1), 3.0))

    def predict(batch: dict) -> dict:
        return {"R": batch["R"] @ rz.to(batch["R"]), "t": batch["t"].clone()}

    return predict


register_baseline("oracle", "pose", description="ground truth as prediction (sanity check)")(
    _oracle)
register_baseline("oracle-rot3", "pose",
                  description="ground truth rotated 3 degrees about the model z axis")(
    _oracle_rot3)


# ---------------------------------------------------------------- SIFT + PnP-RANSAC

class PnpRansac:
    """SIFT features of the object's training views, lifted to 3D with their depth and
    ground-truth pose, matched (ratio test, view by view) to the test image inside the 2D
    box, then solvePnPRansac and Levenberg-Marquardt refinement on the inliers."""

    def __init__(self, root: Path, ratio: float = 0.8, max_views: int = 48) -> None:
        from bench.adapters.bop import BopDataset

        self.sift = cv2.SIFT_create(nfeatures=800)
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)
        self.ratio = ratio
        train = BopDataset(root, "train", targets=None, min_visib=0.0)
        self.views: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        counts: dict[int, int] = {}
        for index in range(len(train)):
            sample = train[index]
            obj_id = int(sample["obj_id"])
            if counts.get(obj_id, 0) >= max_views:
                continue
            counts[obj_id] = counts.get(obj_id, 0) + 1
            depth = sample["depth"].numpy()
            mask = ((depth > 0) & (_box_mask(depth.shape, sample["bbox"].numpy(), 0) > 0))
            keypoints, desc = self._features(_gray(sample["image"]), mask.astype(np.uint8) * 255)
            if desc is None:
                continue
            uv = keypoints
            cols, rows = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
            z = depth[rows, cols]
            keep = z > 0
            K = sample["K"].numpy()
            cam = np.stack([(uv[keep, 0] - K[0, 2]) * z[keep] / K[0, 0],
                            (uv[keep, 1] - K[1, 2]) * z[keep] / K[1, 1], z[keep]], axis=1)
            R, t = sample["R"].numpy(), sample["t"].numpy()
            self.views.setdefault(obj_id, []).append((desc[keep], (cam - t) @ R))

    def _features(self, gray: np.ndarray,
                  mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """SIFT on the mask's bounding region upsampled 2x (the objects are small);
        keypoints [N,2] in pixels of the full image."""
        rows, cols = np.nonzero(mask)
        if len(rows) == 0:
            return np.zeros((0, 2)), None
        top, left = max(0, rows.min() - 16), max(0, cols.min() - 16)
        region = (slice(top, rows.max() + 17), slice(left, cols.max() + 17))
        big = cv2.resize(gray[region], None, fx=UPSAMPLE, fy=UPSAMPLE,
                         interpolation=cv2.INTER_CUBIC)
        big_mask = cv2.resize(mask[region], None, fx=UPSAMPLE, fy=UPSAMPLE,
                              interpolation=cv2.INTER_NEAREST)
        keypoints, desc = self.sift.detectAndCompute(big, big_mask)
        uv = np.array([k.pt for k in keypoints], dtype=np.float64).reshape(-1, 2)
        return (uv + 0.5) / UPSAMPLE - 0.5 + np.array([left, top]), desc

    def estimate(self, image: torch.Tensor, K: np.ndarray, box: np.ndarray,
                 obj_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(R, t) of one object, or None when too few consistent matches."""
        if obj_id not in self.views:
            return None
        gray = _gray(image)
        keypoints, desc = self._features(gray, _box_mask(gray.shape, box))
        if desc is None or len(keypoints) < MIN_INLIERS:
            return None
        best: dict[int, tuple[float, np.ndarray]] = {}
        for view_desc, view_points in self.views[obj_id]:
            if len(view_desc) < 2:
                continue
            for pair in self.matcher.knnMatch(desc, view_desc, k=2):
                if len(pair) < 2 or pair[0].distance >= self.ratio * pair[1].distance:
                    continue
                match = pair[0]
                if match.queryIdx not in best or match.distance < best[match.queryIdx][0]:
                    best[match.queryIdx] = (match.distance, view_points[match.trainIdx])
        # One correspondence per image keypoint (its best match over all views), so that a
        # keypoint matched in many views cannot form a degenerate consensus on its own.
        image_list = [keypoints[query] for query in best]
        object_list = [point for _, point in best.values()]
        if len(image_list) < PNP_MIN_INLIERS:
            return None
        image_points = np.array(image_list, dtype=np.float64)
        object_points = np.array(object_list, dtype=np.float64)
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            object_points, image_points, K, None, iterationsCount=1000, reprojectionError=3.0,
            confidence=0.999, flags=cv2.SOLVEPNP_EPNP)
        if not ok or inliers is None or len(inliers) < PNP_MIN_INLIERS:
            return None
        inliers = inliers[:, 0]
        rvec, tvec = cv2.solvePnPRefineLM(object_points[inliers], image_points[inliers], K, None,
                                          rvec, tvec)
        return cv2.Rodrigues(rvec)[0], tvec.reshape(3)

    def __call__(self, batch: dict) -> dict:
        size = len(batch["id"])
        R, t, valid = _empty(size)
        for row, obj_id in enumerate(_ints(batch["obj_id"])):
            found = self.estimate(batch["image"][row], batch["K"][row].cpu().numpy(),
                                  batch["bbox"][row].cpu().numpy(), obj_id)
            if found is not None and found[1][2] > 0:
                R[row], t[row], valid[row] = found[0], found[1], True
        return _output(R, t, valid, batch["K"].device)


@register_baseline("pnp-ransac", "pose",
                   description="SIFT matches to rendered training views + cv2.solvePnPRansac")
def _build_pnp(spec: Any, info: Any, device: torch.device) -> Callable[[dict], dict]:
    return PnpRansac(info.root)


# ---------------------------------------------------------------- depth + ICP

def rigid_transforms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotations and translations (Kabsch, no scaling) of point sets
    ``source`` [K,P,3] onto ``target`` [K,P,3]: 4x4 transforms [K,4,4]."""
    source_mean, target_mean = source.mean(axis=1), target.mean(axis=1)
    covariance = np.einsum("kpi,kpj->kij", source - source_mean[:, None],
                           target - target_mean[:, None])
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(np.einsum("kji,kjl->kil", vt, u.transpose(0, 2, 1))))
    vt[:, 2] *= np.where(sign == 0, 1.0, sign)[:, None]
    rotation = np.einsum("kji,klj->kil", vt, u)
    transforms = np.tile(np.eye(4), (len(source), 1, 1))
    transforms[:, :3, :3] = rotation
    transforms[:, :3, 3] = target_mean - np.einsum("kij,kj->ki", rotation, source_mean)
    return transforms


def feature_ransac(source: np.ndarray, target: np.ndarray, source_features: np.ndarray,
                   target_features: np.ndarray, max_distance: float, rng: np.random.Generator,
                   iterations: int = 20000, edge_ratio: float = 0.9, chunk: int = 2000,
                   finalists: int = 64) -> np.ndarray:
    """Global registration as Open3D's ``registration_ransac_based_on_feature_matching``
    (mutual nearest neighbours in feature space, or all nearest neighbours when fewer than
    9 are mutual; 3-point hypotheses kept by the edge-length and distance checkers; the
    winner has the highest fitness, the share of source points within ``max_distance`` m of
    the target, then the lowest RMSE) but single-threaded with a numpy generator, so a seed
    gives the same transform every time. Each chunk's ``finalists`` hypotheses with the most
    correspondence inliers are scored on the whole cloud. Points [N,3] / [M,3], features
    [N,F] / [M,F]; returns a 4x4 transform of ``source`` onto ``target`` (identity when no
    hypothesis passes)."""
    forward = cKDTree(target_features).query(source_features)[1]
    backward = cKDTree(source_features).query(target_features)[1]
    pairs = np.flatnonzero(backward[forward] == np.arange(len(source)))
    if len(pairs) < 9:
        pairs = np.arange(len(source))
    src, dst = source[pairs], target[forward[pairs]]
    tree = cKDTree(target)
    best, best_score = np.eye(4), (0.0, -np.inf)
    if len(src) < 3:
        return best
    for start in range(0, iterations, chunk):
        picks = rng.integers(0, len(src), size=(min(chunk, iterations - start), 3))
        a, b = src[picks], dst[picks]
        edges_a = np.linalg.norm(a - np.roll(a, 1, axis=1), axis=2)
        edges_b = np.linalg.norm(b - np.roll(b, 1, axis=1), axis=2)
        keep = ((edges_a >= edge_ratio * edges_b) & (edges_b >= edge_ratio * edges_a)).all(1)
        if not keep.any():
            continue
        transforms = rigid_transforms(a[keep], b[keep])
        moved = np.einsum("kij,kpj->kpi", transforms[:, :3, :3], a[keep])
        moved += transforms[:, None, :3, 3]
        transforms = transforms[(np.linalg.norm(moved - b[keep], axis=2) <= max_distance).all(1)]
        if not len(transforms):
            continue
        inliers = (np.sqrt(_squared_residuals(transforms, src, dst)) <= max_distance).sum(axis=1)
        chosen = transforms[np.argsort(-inliers, kind="stable")[:finalists]]
        moved = np.concatenate([source @ transform[:3, :3].T + transform[:3, 3]
                                for transform in chosen])
        # one query for all finalists, on every core (each point's distance is its own)
        distances = tree.query(moved, distance_upper_bound=max_distance, workers=-1)[0]
        for transform, distance in zip(chosen, np.split(distances, len(chosen)), strict=True):
            close = distance[np.isfinite(distance)]
            if not len(close):
                continue
            score = (len(close) / len(source), -float(np.sqrt(np.mean(close ** 2))))
            if score > best_score:
                best, best_score = transform, score
    return best


def _squared_residuals(transforms: np.ndarray, source: np.ndarray, target: np.ndarray
                       ) -> np.ndarray:
    """Squared distances [K,P] from ``source`` [P,3] moved by each of ``transforms`` [K,4,4]
    to ``target`` [P,3], as [K,P] outer products (4x faster than ``einsum``'s [K,P,3]). The
    bits of ``np.linalg.norm(np.einsum("kij,pj->kpi", R, source) + t - target, axis=2)``
    before its root, which the published depth-icp poses were made with:
    that einsum sums each coordinate's three products as (x + z) + y, the norm the squares
    as (x + y) + z."""
    squared = np.zeros((len(transforms), len(source)))
    for axis in range(3):
        moved = np.multiply.outer(transforms[:, axis, 0], source[:, 0])
        moved += np.multiply.outer(transforms[:, axis, 2], source[:, 2])
        moved += np.multiply.outer(transforms[:, axis, 1], source[:, 1])
        moved += transforms[:, axis, 3, None]
        moved -= target[:, axis]
        moved *= moved
        squared += moved
    return squared


def point_to_plane_icp(source: np.ndarray, target: np.ndarray, normals: np.ndarray,
                       max_distance: float, init: np.ndarray, iterations: int = 30,
                       tolerance: float = 1e-9) -> np.ndarray:
    """Point-to-plane ICP (Chen and Medioni; Open3D's ``registration_icp`` with
    ``TransformationEstimationPointToPlane``): the 4x4 transform moving ``source`` [N,3]
    onto ``target`` [M,3] with unit ``normals`` [M,3], from ``init``; pairs are nearest
    neighbours within ``max_distance`` (m). Single-threaded numpy, so the same input gives
    the same bits (Open3D's parallel reductions do not)."""
    tree = cKDTree(target)
    transform = np.array(init, dtype=np.float64)
    for _ in range(iterations):
        moved = source @ transform[:3, :3].T + transform[:3, 3]
        distance, index = tree.query(moved, distance_upper_bound=max_distance)
        found = np.isfinite(distance)
        if found.sum() < 6:
            break
        p, q, n = moved[found], target[index[found]], normals[index[found]]
        jacobian = np.hstack([np.cross(p, n), n])
        residual = ((q - p) * n).sum(axis=1)
        step = np.linalg.lstsq(jacobian.T @ jacobian, jacobian.T @ residual, rcond=None)[0]
        update = np.eye(4)
        update[:3, :3] = Rotation.from_rotvec(step[:3]).as_matrix()
        update[:3, 3] = step[3:]
        transform = update @ transform
        if np.abs(step).max() < tolerance:
            break
    return transform


class DepthIcp:
    """Segment the depth inside the 2D box around its median, back-project, and register
    the model: FPFH features (Open3D), then RANSAC and point-to-plane ICP in numpy
    (single-threaded and seeded, so a rerun gives the same poses)."""

    def __init__(self, voxel: float = 0.004, seed: int = 0) -> None:
        self.voxel = voxel
        self.seed = seed
        self._features: dict[int, tuple] = {}

    def _prepare(self, points: np.ndarray) -> tuple:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        cloud = cloud.voxel_down_sample(self.voxel)
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=4 * self.voxel,
                                                                    max_nn=30))
        features = o3d.pipelines.registration.compute_fpfh_feature(
            cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=10 * self.voxel, max_nn=100))
        return cloud, features

    def estimate(self, depth: np.ndarray, K: np.ndarray, box: np.ndarray, obj_id: int,
                 model: np.ndarray, diameter: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(R, t) of one object, or None when the box holds too little depth."""
        mask = (_box_mask(depth.shape, box, 0) > 0) & (depth > 0)
        if mask.sum() < 30:
            return None
        scene = back_project(depth, K, mask)
        median = np.median(scene[:, 2])
        scene = scene[np.abs(scene[:, 2] - median) < 0.6 * diameter]
        if len(scene) < 30:
            return None
        if obj_id not in self._features:
            self._features[obj_id] = self._prepare(model)
        source, source_features = self._features[obj_id]
        target, target_features = self._prepare(scene)
        coarse = feature_ransac(np.asarray(source.points), np.asarray(target.points),
                                np.asarray(source_features.data).T,
                                np.asarray(target_features.data).T, 2.5 * self.voxel,
                                np.random.default_rng(self.seed))
        transform = point_to_plane_icp(np.asarray(source.points), np.asarray(target.points),
                                       np.asarray(target.normals), 2.0 * self.voxel,
                                       coarse)
        return transform[:3, :3].copy(), transform[:3, 3].copy()

    def __call__(self, batch: dict) -> dict:
        size = len(batch["id"])
        R, t, valid = _empty(size)
        if "depth" not in batch:
            return _output(R, t, valid, batch["K"].device)
        for row, obj_id in enumerate(_ints(batch["obj_id"])):
            found = self.estimate(batch["depth"][row].cpu().numpy(),
                                  batch["K"][row].cpu().numpy(), batch["bbox"][row].cpu().numpy(),
                                  obj_id, batch["model_points"][row].cpu().numpy(),
                                  float(batch["diameter"][row]))
            if found is not None:
                R[row], t[row], valid[row] = found[0], found[1], True
        return _output(R, t, valid, batch["K"].device)


@register_baseline("depth-icp", "pose",
                   description="depth in the 2D box registered to the model: FPFH+RANSAC, ICP")
def _build_icp(spec: Any, info: Any, device: torch.device) -> Callable[[dict], dict]:
    return DepthIcp()


# ---------------------------------------------------------------- BB8-style CNN + PnP

class CornerNet(nn.Module):
    """A small CNN: a 64x64 crop -> 2D positions of the 8 box corners and the centre, for
    each object (one head per object; the sample's object selects it)."""

    def __init__(self, num_objects: int) -> None:
        super().__init__()
        self.num_objects = num_objects

        def block(cin: int, cout: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 64),
                                      nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
                                  nn.Linear(128, num_objects * 18))

    def forward(self, crops: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Crops [B,3,64,64], object index [B] -> points [B,9,2] in crop units (-1..1)."""
        out = self.head(self.features(crops)).view(-1, self.num_objects, 9, 2)
        return out[torch.arange(len(index), device=crops.device), index]


def _keypoints_3d(models: Any, obj_id: int) -> np.ndarray:
    corners = models.corners(obj_id)
    return np.concatenate([corners, corners.mean(axis=0, keepdims=True)])


def _crop_window(box: np.ndarray, scale: float = 1.25) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop around a (x, y, w, h) box."""
    x, y, w, h = box
    return x + (w - 1) / 2.0, y + (h - 1) / 2.0, max(float(max(w, h)) * scale, 8.0)


def _crop(image: np.ndarray, window: tuple[float, float, float]) -> np.ndarray:
    """The square window of an HxWx3 float image, resampled to CROP x CROP (zero outside)."""
    cx, cy, side = window
    scale = CROP / side
    affine = np.array([[scale, 0, (CROP - 1) / 2.0 - scale * cx],
                       [0, scale, (CROP - 1) / 2.0 - scale * cy]], dtype=np.float64)
    return cv2.warpAffine(image, affine, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def _to_crop(uv: np.ndarray, window: tuple[float, float, float]) -> np.ndarray:
    cx, cy, side = window
    return (uv - np.array([cx, cy])) / (side / 2.0)


def _from_crop(points: np.ndarray, window: tuple[float, float, float]) -> np.ndarray:
    cx, cy, side = window
    return points * (side / 2.0) + np.array([cx, cy])


def bb8_weights(task: str) -> Path:
    """The BB8 baseline's weights for ``task``."""
    return WEIGHTS_DIR / f"bb8-pnp.{task}.pt"


class Bb8Pnp:
    """Predict the 9 keypoints' projections in the box crop, then solve PnP for the pose."""

    def __init__(self, net: CornerNet, models: Any, device: torch.device) -> None:
        self.net = net.to(device).eval()
        self.models = models
        self.index = {obj_id: i for i, obj_id in enumerate(models.ids)}
        self.device = device

    def __call__(self, batch: dict) -> dict:
        size = len(batch["id"])
        R, t, valid = _empty(size)
        obj_ids = _ints(batch["obj_id"])
        images = batch["image"].detach().cpu().permute(0, 2, 3, 1).numpy()
        windows = [_crop_window(b) for b in batch["bbox"].cpu().numpy()]
        crops = np.stack([_crop(images[i], windows[i]) for i in range(size)])
        index = torch.tensor([self.index[o] for o in obj_ids], device=self.device)
        with torch.no_grad():
            out = self.net(torch.from_numpy(crops).permute(0, 3, 1, 2).float().to(self.device),
                           index).cpu().double().numpy()
        for row, obj_id in enumerate(obj_ids):
            if batch["bbox"][row][2] <= 0:
                continue
            uv = _from_crop(out[row], windows[row])
            K = batch["K"][row].cpu().numpy()
            ok, rvec, tvec = cv2.solvePnP(_keypoints_3d(self.models, obj_id), uv, K, None,
                                          flags=cv2.SOLVEPNP_EPNP)
            if ok:
                ok, rvec, tvec = cv2.solvePnP(_keypoints_3d(self.models, obj_id), uv, K, None,
                                              rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
            if ok and tvec[2, 0] > 0:
                R[row], t[row], valid[row] = cv2.Rodrigues(rvec)[0], tvec.reshape(3), True
        return _output(R, t, valid, batch["K"].device)


def _build_bb8(spec: Any, info: Any, device: torch.device) -> Callable[[dict], dict]:
    path = bb8_weights(spec.task)
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline 'bb8-pnp' on task {spec.task!r} "
                         f"({path} is missing)",
                         f"train them with `arbench train bb8-pnp --task {spec.task}`")
    models = info.meta["models"]
    net = CornerNet(len(models.ids))
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return Bb8Pnp(net, models, device)


def _training_set(spec: Any) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray],
                                      list[int], Any]:
    from bench.runner import build_dataset

    train = build_dataset(spec, split="train")
    models = train.info.meta["models"]
    images, boxes, targets, objects = [], [], [], []
    for i in range(len(train)):
        sample = train[i]
        obj_id = int(sample["obj_id"])
        points = _keypoints_3d(models, obj_id)
        cam = points @ sample["R"].numpy().T + sample["t"].numpy()
        uvw = cam @ sample["K"].numpy().T
        images.append(sample["image"].permute(1, 2, 0).numpy())
        boxes.append(sample["bbox"].numpy())
        targets.append(uvw[:, :2] / uvw[:, 2:3])
        objects.append(models.ids.index(obj_id))
    return images, boxes, targets, objects, models


def _train_bb8(spec: Any, device: torch.device, out: Path | None = None,
               epochs: int | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, boxes, targets, objects, models = _training_set(spec)
    net = CornerNet(len(models.ids)).to(device)
    epochs = epochs or 60
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=epochs * (
        (len(images) + 31) // 32))
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(images))
        total = 0.0
        for chunk in np.array_split(order, max(1, len(order) // 32)):
            crops, goals = [], []
            for i in chunk:
                x, y, w, h = boxes[i]
                jitter = rng.uniform(-0.12, 0.12, 2) * max(w, h)
                window = _crop_window(np.array([x + jitter[0], y + jitter[1], w, h]),
                                      scale=rng.uniform(1.1, 1.45))
                crop = _crop(images[i], window)
                crop = np.clip(crop * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1, 3), 0, 1)
                if rng.random() < 0.5:
                    cut = rng.integers(8, 28, 2)
                    top, left = rng.integers(0, CROP - cut)
                    crop[top:top + cut[0], left:left + cut[1]] = rng.uniform(0, 1, 3)
                crops.append(crop)
                goals.append(_to_crop(targets[i], window))
            x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().to(device)
            goal = torch.from_numpy(np.stack(goals)).float().to(device)
            index = torch.tensor([objects[i] for i in chunk], device=device)
            loss = nn.functional.smooth_l1_loss(net(x, index), goal, beta=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss) * len(chunk)
        if (epoch + 1) % 10 == 0 or epoch == 0:
            print(f"bb8-pnp epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    print(f"trained bb8-pnp in {time.perf_counter() - start:.1f}s on {device}")
    path = out or bb8_weights(spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.cpu().state_dict(), path)
    return path


register_baseline("bb8-pnp", "pose", weights=lambda task: [bb8_weights(task)], train=_train_bb8,
                  default_task="synthetic-pose",
                  description="BB8-style CNN regressing 2D box corners in the crop, then PnP")(
    _build_bb8)
