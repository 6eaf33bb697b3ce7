"""Point-cloud classification baselines: PointNet (Qi et al. 2017) and FPFH + linear SVM.

Weights: ``weights/pointnet.TASK.pt`` (a dict ``{"config": {...}, "state_dict": {...}}``)
and ``weights/fpfh-svm.TASK.pt`` (a dict of tensors: codebook, SVM weights); both load with
``torch.load(weights_only=True)``, neither is a pickle of Python objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
import torch
from torch import nn

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.families.pointcloud import with_votes
from bench.models import register_baseline

COMPACT_WIDTH = 0.125
COMPACT_TRAIN_POINTS = 256
RESAMPLED_COPIES = 2
LARGE_SET = 2000


def weights_path(name: str, task: str) -> Path:
    """Where the weights of baseline ``name`` trained on ``task`` live."""
    return WEIGHTS_DIR / f"{name}.{task}.pt"


def _missing(name: str, task: str) -> ModelError:
    return ModelError(f"no trained weights for baseline {name!r} on task {task!r} "
                      f"({weights_path(name, task)} is missing)",
                      f"train them with `arbench train {name} --task {task}`")


# --------------------------------------------------------------------------- PointNet


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv1d(cin, cout, 1), nn.BatchNorm1d(cout), nn.ReLU()]


def _fc(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU()]


class TNet(nn.Module):
    """PointNet's transform net: shared MLP (64,128,1024), max pool, FC (512,256) -> [k,k],
    initialised to the identity; channel widths scaled by ``width``."""

    def __init__(self, k: int, width: float = 1.0) -> None:
        super().__init__()
        c = [max(8, round(v * width)) for v in (64, 128, 1024, 512, 256)]
        self.k = k
        self.features = nn.Sequential(*_conv(k, c[0]), *_conv(c[0], c[1]), *_conv(c[1], c[2]))
        self.head = nn.Sequential(*_fc(c[2], c[3]), *_fc(c[3], c[4]), nn.Linear(c[4], k * k))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,k,N] -> transform [B,k,k]."""
        pooled = self.features(x).amax(dim=2)
        eye = torch.eye(self.k, device=x.device, dtype=pooled.dtype)
        return self.head(pooled).view(-1, self.k, self.k) + eye


class PointNet(nn.Module):
    """PointNet classification network with input (3x3) and feature (64x64) transforms.

    ``forward(points [B,N,3] or [B,N,6] with normals) -> logits [B,C]``; ``width`` scales
    every channel count (1.0 = the paper's network, 3.5 M parameters).
    """

    def __init__(self, num_classes: int, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        c = [max(8, round(v * width)) for v in (64, 128, 1024, 512, 256)]
        self.in_channels = in_channels
        self.input_transform = TNet(3, width)
        self.mlp1 = nn.Sequential(*_conv(in_channels, c[0]), *_conv(c[0], c[0]))
        self.feature_transform = TNet(c[0], width)
        self.mlp2 = nn.Sequential(*_conv(c[0], c[0]), *_conv(c[0], c[1]),
                                  nn.Conv1d(c[1], c[2], 1), nn.BatchNorm1d(c[2]))
        self.head = nn.Sequential(*_fc(c[2], c[3]), nn.Linear(c[3], c[4]), nn.Dropout(0.3),
                                  nn.BatchNorm1d(c[4]), nn.ReLU(), nn.Linear(c[4], num_classes))
        self.last_feature_transform: torch.Tensor | None = None

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        xyz = points[..., :3]
        transform = self.input_transform(xyz.transpose(1, 2))
        parts = [xyz @ transform]
        if self.in_channels == 6:
            parts.append(points[..., 3:6] @ transform)
        x = self.mlp1(torch.cat(parts, dim=2).transpose(1, 2))
        feature_transform = self.feature_transform(x)
        self.last_feature_transform = feature_transform
        x = torch.bmm(feature_transform.transpose(1, 2), x)
        return self.head(self.mlp2(x).amax(dim=2))


def orthogonality_loss(transform: torch.Tensor) -> torch.Tensor:
    """PointNet's regulariser ||I - A A^T||_F^2 averaged over the batch (A [B,k,k])."""
    eye = torch.eye(transform.shape[1], device=transform.device)
    product = transform @ transform.transpose(1, 2)
    return ((product - eye) ** 2).sum(dim=(1, 2)).mean()


def _network_input(batch: dict[str, Any], in_channels: int) -> torch.Tensor:
    if in_channels == 6:
        return torch.cat([batch["points"], batch["normals"]], dim=2)
    return batch["points"]


def load_pointnet(task: str, num_classes: int, device: torch.device) -> PointNet:
    """The trained PointNet of ``task`` (architecture from the checkpoint's config)."""
    path = weights_path("pointnet", task)
    if not path.is_file():
        raise _missing("pointnet", task)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = checkpoint["config"]
    if int(config["num_classes"]) != num_classes:
        raise ModelError(f"{path} was trained for {config['num_classes']} classes, the task "
                         f"has {num_classes}",
                         f"retrain with `arbench train pointnet --task {task}`")
    module = PointNet(num_classes, float(config["width"]), int(config["in_channels"]))
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(device).eval()


def _training_clouds(spec: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Train-split clouds [S*copies,N,C] and labels; meshes are resampled ``copies`` times."""
    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    copies = 1 if dataset.info.meta["layout"] == "hdf5" or len(dataset) > LARGE_SET \
        else RESAMPLED_COPIES
    in_channels = 6 if spec.dataset.params.get("normals") else 3
    clouds, labels = [], []
    for copy in range(copies):
        params = {**spec.dataset.params, "seed": int(spec.dataset.params.get("seed", 0))
                  + 1000 * (copy + 1)}
        copy_spec = spec.model_copy(update={"dataset": spec.dataset.model_copy(
            update={"params": params})})
        copy_set = build_dataset(copy_spec, split="train")
        for index in range(len(copy_set)):
            sample = copy_set[index]
            clouds.append(sample["points"] if in_channels == 3 else
                          torch.cat([sample["points"], sample["normals"]], dim=1))
            labels.append(sample["label"])
    info = {"num_classes": dataset.info.meta["num_classes"], "in_channels": in_channels,
            "up_axis": "xyz".index(dataset.info.meta["up_axis"]),
            "embedded": spec.dataset.embedded is not None}
    return torch.stack(clouds), torch.tensor(labels), info


def _augment(clouds: torch.Tensor, up_axis: int, generator: torch.Generator) -> torch.Tensor:
    """Random rotation about the up axis, anisotropic scale U(0.8,1.25), jitter N(0,0.01)
    clipped at 0.05 (PointNet's and PointNet++'s training augmentation)."""
    angles = torch.rand(len(clouds), generator=generator) * 2 * torch.pi
    scales = 0.8 + 0.45 * torch.rand(len(clouds), 1, 3, generator=generator)
    i, j = (up_axis + 1) % 3, (up_axis + 2) % 3
    rotations = torch.eye(3).repeat(len(clouds), 1, 1)
    rotations[:, i, i], rotations[:, i, j] = angles.cos(), -angles.sin()
    rotations[:, j, i], rotations[:, j, j] = angles.sin(), angles.cos()
    out = torch.cat([clouds[..., k:k + 3] @ rotations.transpose(1, 2)
                     for k in range(0, clouds.shape[2], 3)], dim=2)
    out[..., :3] *= scales
    jitter = (0.01 * torch.randn(out[..., :3].shape, generator=generator)).clamp(-0.05, 0.05)
    out[..., :3] += jitter
    return out


def train_pointnet(spec: Any, device: torch.device, out: Path | None = None,
                   epochs: int | None = None, seed: int = 0, width: float | None = None) -> Path:
    """Train PointNet on the task's train split; returns the weights file.

    On embedded sets a compact network (width 0.125) sees a random 256 of each cloud's
    points per step (to train in minutes on a CPU); on real data the paper's network
    (width 1.0) sees all of them; ``width`` overrides the choice. Adam, cosine schedule,
    label smoothing 0.1.
    """
    torch.manual_seed(seed)
    start = time.perf_counter()
    clouds, labels, info = _training_clouds(spec)
    print(f"prepared {len(clouds)} training clouds in {time.perf_counter() - start:.1f}s")
    width = width or (COMPACT_WIDTH if info["embedded"] else 1.0)
    train_points = COMPACT_TRAIN_POINTS if width < 1.0 else clouds.shape[1]
    module = PointNet(info["num_classes"], width, info["in_channels"]).to(device)
    epochs = epochs or (40 if info["embedded"] else 250)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(seed)
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        total, hits = 0.0, 0
        for chunk in order.split(32):
            if len(chunk) < 2:
                continue
            x = clouds[chunk]
            if train_points < x.shape[1]:
                x = x[:, torch.randperm(x.shape[1], generator=generator)[:train_points]]
            x = _augment(x, info["up_axis"], generator).to(device)
            y = labels[chunk].to(device)
            logits = module(x)
            loss = nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
            loss = loss + 1e-3 * orthogonality_loss(module.last_feature_transform)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(chunk)
            hits += int((logits.argmax(1) == y).sum())
        schedule.step()
        print(f"pointnet epoch {epoch + 1}/{epochs}: loss {total / len(labels):.4f}, "
              f"train accuracy {hits / len(labels):.3f}")
    print(f"trained pointnet (width {width}) in {time.perf_counter() - start:.1f}s on {device}")
    path = out or weights_path("pointnet", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if width < 1.0:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"config": {"num_classes": info["num_classes"], "width": width,
                           "in_channels": info["in_channels"]}, "state_dict": state}, path)
    return path


@register_baseline("pointnet", "pointcloud", weights=lambda task: [weights_path("pointnet", task)],
                   train=train_pointnet, default_task="synthetic-shapes",
                   description="PointNet (Qi et al. 2017) with input and feature transforms")
def build_pointnet(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """PointNet's logits, averaged over the task's rotation votes."""
    module = load_pointnet(spec.task, info.meta["num_classes"], device)
    return with_votes(lambda batch: module(_network_input(batch, module.in_channels)))


# --------------------------------------------------------------------------- FPFH + SVM

NORMAL_RADIUS = 0.1
FPFH_RADIUS = 0.25
MAX_NEIGHBOURS = 64
CODEBOOK_SIZE = 64
CHI2_STEPS = 2
CHI2_INTERVAL = 0.5


def fpfh_descriptors(points: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """Open3D FPFH [N,33] of a unit-sphere cloud, each row scaled to sum to 1.

    Normals: the given ones, else PCA normals (radius 0.1, 30 neighbours) oriented away
    from the centroid. FPFH radius 0.25, at most 64 neighbours.
    """
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    else:
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(NORMAL_RADIUS, 30))
        cloud.orient_normals_towards_camera_location(points.mean(axis=0))
        cloud.normals = o3d.utility.Vector3dVector(-np.asarray(cloud.normals))
    feature = o3d.pipelines.registration.compute_fpfh_feature(
        cloud, o3d.geometry.KDTreeSearchParamHybrid(FPFH_RADIUS, MAX_NEIGHBOURS))
    descriptors = np.asarray(feature.data).T
    return descriptors / np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-12)


def pooled_histogram(descriptors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The global feature of one cloud: mean FPFH [33] and the normalised histogram of its
    descriptors' nearest codewords [K], concatenated (each part sums to 1)."""
    distances = (codebook**2).sum(axis=1)[None] - 2.0 * descriptors @ codebook.T
    words = np.bincount(distances.argmin(axis=1), minlength=len(codebook)).astype(np.float64)
    return np.concatenate([descriptors.mean(axis=0), words / words.sum()])


def chi2_map(features: np.ndarray, steps: int = CHI2_STEPS,
             interval: float = CHI2_INTERVAL) -> np.ndarray:
    """Explicit feature map of the additive chi2 kernel (Vedaldi & Zisserman 2012), as
    scikit-learn's AdditiveChi2Sampler computes it: [S,D] non-negative -> [S,D*(2*steps-1)]."""
    x = np.clip(features, 0.0, None)
    positive = x > 0
    log_x = np.log(np.where(positive, x, 1.0))
    parts = [np.sqrt(x * interval)]
    for j in range(1, steps):
        factor = np.where(positive, np.sqrt(2.0 * x * interval / np.cosh(np.pi * j * interval)),
                          0.0)
        parts += [factor * np.cos(j * log_x * interval), factor * np.sin(j * log_x * interval)]
    return np.concatenate(parts, axis=1)


def _batch_descriptors(batch: dict[str, Any]) -> list[np.ndarray]:
    points = batch["points"].detach().cpu().numpy()
    normals = batch["normals"].detach().cpu().numpy() if "normals" in batch else None
    return [fpfh_descriptors(p, None if normals is None else normals[i])
            for i, p in enumerate(points)]


def train_fpfh_svm(spec: Any, device: torch.device, out: Path | None = None,
                   epochs: int | None = None, seed: int = 0) -> Path:
    """Fit the codebook (k-means) and a one-vs-rest linear SVM on chi2-mapped features."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.svm import LinearSVC

    from bench.runner import build_dataset

    start = time.perf_counter()
    dataset = build_dataset(spec, split="train")
    descriptors, labels = [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        batch = {k: v[None] for k, v in sample.items() if k in ("points", "normals")}
        descriptors += _batch_descriptors(batch)
        labels.append(sample["label"])
    rng = np.random.default_rng(seed)
    pool = np.concatenate([d[rng.choice(len(d), min(len(d), 128), replace=False)]
                           for d in descriptors])
    kmeans = MiniBatchKMeans(CODEBOOK_SIZE, random_state=seed, n_init=3, batch_size=4096)
    codebook = kmeans.fit(pool).cluster_centers_
    features = chi2_map(np.stack([pooled_histogram(d, codebook) for d in descriptors]))
    svm = LinearSVC(C=10.0, max_iter=epochs or 20000, random_state=seed)
    svm.fit(features, np.asarray(labels))
    num_classes = dataset.info.meta["num_classes"]
    weight = np.zeros((num_classes, features.shape[1]), dtype=np.float32)
    bias = np.full(num_classes, -1e3, dtype=np.float32)
    weight[svm.classes_] = svm.coef_
    bias[svm.classes_] = svm.intercept_
    print(f"trained fpfh-svm in {time.perf_counter() - start:.1f}s "
          f"(train accuracy {svm.score(features, labels):.4f})")
    path = out or weights_path("fpfh-svm", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"codebook": torch.from_numpy(codebook.astype(np.float32)),
                "weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)}, path)
    return path


@register_baseline("fpfh-svm", "pointcloud", weights=lambda task: [weights_path("fpfh-svm", task)],
                   train=train_fpfh_svm, default_task="synthetic-shapes",
                   description="Open3D FPFH pooled into histograms, linear SVM on a chi2 map")
def build_fpfh_svm(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """SVM decision values as logits; FPFH is rotation invariant, so votes are not used."""
    path = weights_path("fpfh-svm", spec.task)
    if not path.is_file():
        raise _missing("fpfh-svm", spec.task)
    params = torch.load(path, map_location="cpu", weights_only=True)
    codebook = params["codebook"].double().numpy()
    weight, bias = params["weight"].double(), params["bias"].double()
    if len(bias) != info.meta["num_classes"]:
        raise ModelError(f"{path} was fitted for {len(bias)} classes, the task has "
                         f"{info.meta['num_classes']}")

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        features = chi2_map(np.stack([pooled_histogram(d, codebook)
                                      for d in _batch_descriptors(batch)]))
        logits = torch.from_numpy(features) @ weight.T + bias
        return logits.float().to(batch["points"].device)

    return predict
