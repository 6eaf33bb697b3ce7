"""Single-view shape baselines, trained on a task's train split (``arbench train NAME``).

- ``mean-shape``: the training split's mean occupancy over the normalisation cube,
  thresholded where it best fits the training shapes (the floor every method must beat).
- ``retrieval``: Tatarchenko et al.'s nearest-neighbour baseline. A small CNN is trained to
  classify the training images; its pooled features embed an image, and the prediction is
  the (normalised) mesh of the training shape whose image is nearest (cosine).
- ``voxel-decoder``: a 3D-R2N2 / Pix2Vox-style single-view network: a 2D CNN encoder to a
  64-d code, a fully connected layer to a 4^3 x 32 volume, two 3D transposed convolutions
  up to 16^3 and a 3D convolution to occupancy logits, trilinearly upsampled to a 32^3
  grid over the cube [-0.5, 0.5]^3 (the 16^3 stage keeps CPU training to minutes);
  trained with binary cross-entropy.

Images are resized to 64x64. Every grid covers the normalisation cube [-0.5, 0.5]^3
(cube side 1), so no prediction uses the ground truth's voxel bounds. Weights:
``weights/NAME.TASK.pt`` (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.geometry.grids import cell_centres
from bench.geometry.mesh import mesh_occupancy
from bench.metrics.shape import iou
from bench.models import register_baseline

INPUT_SIZE = 64
RESOLUTION = 32
CUBE = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])


def weights_path(name: str, task: str) -> Path:
    """Where baseline ``name``'s weights for ``task`` live."""
    return WEIGHTS_DIR / f"{name}.{task}.pt"


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Images [B,3,H,W] in [0,1] -> [B,3,64,64], centred at 0.5."""
    return F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                         antialias=True, align_corners=False) - 0.5


class Encoder(nn.Module):
    """Four stride-2 conv + BatchNorm + ReLU blocks (16-32-64-64 channels), global pooling."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, 16, 32, width, width]
        for cin, cout in itertools.pairwise(channels):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class VoxelDecoderNet(nn.Module):
    """Image [B,3,64,64] -> occupancy logits [B,32,32,32] (x, y, z index order)."""

    def __init__(self, code: int = 64) -> None:
        super().__init__()
        self.encoder = Encoder(code)
        self.fc = nn.Linear(code, 32 * 4 ** 3)
        self.decoder = nn.Sequential(
            nn.ConvTranspose3d(32, 32, 4, stride=2, padding=1), nn.BatchNorm3d(32), nn.ReLU(True),
            nn.ConvTranspose3d(32, 16, 4, stride=2, padding=1), nn.BatchNorm3d(16), nn.ReLU(True),
            nn.Conv3d(16, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        volume = F.relu(self.fc(self.encoder(x))).view(-1, 32, 4, 4, 4)
        logits = self.decoder(volume)
        return F.interpolate(logits, size=(RESOLUTION,) * 3, mode="trilinear",
                             align_corners=False)[:, 0]


class ClassifierNet(nn.Module):
    """The retrieval embedding: Encoder + a linear classifier over the training classes."""

    def __init__(self, num_classes: int, code: int = 64) -> None:
        super().__init__()
        self.encoder = Encoder(code)
        self.head = nn.Linear(code, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


# --------------------------------------------------------------------------- data


def training_set(spec: Any) -> Any:
    """The task's train split with every rendered view (r2n2) or every image (pix3d)."""
    from bench.registry import ADAPTERS
    from bench.runner import dataset_root

    root = dataset_root(spec)
    params = dict(spec.dataset.params)
    if spec.dataset.adapter == "r2n2":
        params["views"] = "all"
    return ADAPTERS.get(spec.dataset.adapter)(root, "train", **params)


def unit_cube_occupancy(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Occupancy [32,32,32] bool of a (watertight) mesh at the cube's cell centres."""
    centres = cell_centres(CUBE, RESOLUTION)
    return mesh_occupancy(vertices, faces, centres).reshape((RESOLUTION,) * 3)


def load_training_arrays(spec: Any) -> dict[str, Any]:
    """Images [N,3,64,64], targets [N,32,32,32], classes [N], sample ids of the train split."""
    dataset = training_set(spec)
    images, targets, classes, ids = [], [], [], []
    cache: dict[str, np.ndarray] = {}
    for index in range(len(dataset)):
        sample = dataset[index]
        shape_key = sample["id"].rsplit("/", 1)[0]
        if shape_key not in cache:
            cache[shape_key] = unit_cube_occupancy(sample["vertices"].double().numpy(),
                                                   sample["faces"].numpy())
        images.append(prepare(sample["image"][None])[0])
        targets.append(torch.from_numpy(cache[shape_key]))
        classes.append(int(sample["class_index"]))
        ids.append(sample["id"])
    return {"images": torch.stack(images), "targets": torch.stack(targets),
            "classes": torch.tensor(classes), "ids": ids, "dataset": dataset,
            "num_classes": int(dataset.info.meta["num_classes"])}


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness/contrast jitter per image (shapes and viewpoints are untouched)."""
    gain = 1.0 + 0.2 * (torch.rand(len(images), 1, 1, 1, generator=generator) - 0.5)
    shift = 0.1 * (torch.rand(len(images), 1, 1, 1, generator=generator) - 0.5)
    return images * gain + shift


def _fit(module: nn.Module, images: torch.Tensor, targets: torch.Tensor,
         loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], epochs: int,
         device: torch.device, seed: int, name: str) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    module = module.to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-3, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for chunk in order.split(32):
            x = _augment(images[chunk], generator).to(device)
            loss = loss_fn(module(x), targets[chunk].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
        schedule.step()
        print(f"{name} epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    print(f"trained {name} in {time.perf_counter() - start:.1f}s on {device}")
    return module.cpu().eval()


# --------------------------------------------------------------------------- mean shape


def train_mean_shape(spec: Any, device: torch.device, out: Path | None = None,
                     epochs: int | None = None, seed: int = 0) -> Path:
    """Mean training occupancy (one grid per shape) and the IoU-best threshold."""
    data = load_training_arrays(spec)
    _, first = np.unique(np.array([i.rsplit("/", 1)[0] for i in data["ids"]]), return_index=True)
    shapes = data["targets"][torch.from_numpy(first)].float()
    mean = shapes.mean(0)
    scores = {float(t): float(np.mean([iou(mean >= t, s > 0.5) for s in shapes]))
              for t in np.arange(0.1, 0.95, 0.05)}
    threshold = max(scores, key=scores.get)
    print(f"mean-shape: {len(shapes)} training shapes, threshold {threshold:.2f} "
          f"(train IoU {scores[threshold]:.3f})")
    path = out or weights_path("mean-shape", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"grid": (mean >= threshold).to(torch.uint8), "mean": mean.half(),
                "threshold": torch.tensor(threshold)}, path)
    return path


def _require(name: str, spec: Any) -> dict[str, Any]:
    path = weights_path(name, spec.task)
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline {name!r} on task {spec.task!r} "
                         f"({path} is missing)",
                         f"train them with `arbench train {name} --task {spec.task}`")
    return torch.load(path, map_location="cpu", weights_only=True)


def _grid_prediction(grids: torch.Tensor) -> dict[str, Any]:
    return {"occupancy": grids.float(), "bounds": torch.tensor(CUBE, dtype=torch.float32)}


@register_baseline("mean-shape", "shape", weights=lambda task: [weights_path("mean-shape", task)],
                   train=train_mean_shape, default_task="synthetic-shapes3d",
                   description="the training split's mean occupancy grid, thresholded")
def build_mean_shape(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Predict the same thresholded mean grid for every image."""
    grid = _require("mean-shape", spec)["grid"].float()
    return lambda batch: _grid_prediction(grid.expand(len(batch["id"]), -1, -1, -1))


# --------------------------------------------------------------------------- voxel decoder


def train_voxel_decoder(spec: Any, device: torch.device, out: Path | None = None,
                        epochs: int | None = None, seed: int = 0) -> Path:
    """Train the encoder-decoder with binary cross-entropy on the train split's grids."""
    torch.manual_seed(seed)
    data = load_training_arrays(spec)
    targets = data["targets"].float()
    positive = float(targets.mean())
    weight = torch.tensor((1 - positive) / max(positive, 1e-6)).sqrt()

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight.to(
            logits.device))

    module = _fit(VoxelDecoderNet(), data["images"], targets, loss_fn, epochs or 40,
                  device, seed, "voxel-decoder")
    path = out or weights_path("voxel-decoder", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v
                for k, v in module.state_dict().items()}, path)
    return path


@register_baseline("voxel-decoder", "shape",
                   weights=lambda task: [weights_path("voxel-decoder", task)],
                   train=train_voxel_decoder, default_task="synthetic-shapes3d",
                   description="3D-R2N2/Pix2Vox-style 2D encoder + 3D deconvolution decoder, 32^3")
def build_voxel_decoder(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Occupancy probabilities [B,32,32,32] over the normalisation cube."""
    module = VoxelDecoderNet()
    state = _require("voxel-decoder", spec)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v
                            for k, v in state.items()})
    module = module.to(device).eval()
    return lambda batch: _grid_prediction(torch.sigmoid(module(prepare(batch["image"]))))


# --------------------------------------------------------------------------- retrieval


def train_retrieval(spec: Any, device: torch.device, out: Path | None = None,
                    epochs: int | None = None, seed: int = 0) -> Path:
    """Train the classifier embedding; store it with the training images' embeddings."""
    torch.manual_seed(seed)
    data = load_training_arrays(spec)
    module = _fit(ClassifierNet(data["num_classes"]), data["images"], data["classes"],
                  F.cross_entropy, epochs or 30, device, seed, "retrieval")
    with torch.no_grad():
        embeddings = F.normalize(module.encoder(data["images"]), dim=1)
    path = out or weights_path("retrieval", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"encoder": {k: v.half() if v.is_floating_point() else v
                            for k, v in module.encoder.state_dict().items()},
                "embeddings": embeddings.half(), "ids": data["ids"]}, path)
    return path


@register_baseline("retrieval", "shape", weights=lambda task: [weights_path("retrieval", task)],
                   train=train_retrieval, default_task="synthetic-shapes3d",
                   description="Tatarchenko et al.'s nearest-neighbour baseline: the training "
                               "shape of the nearest training image (CNN embedding)")
def build_retrieval(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Return the mesh of the training shape whose image embedding is nearest."""
    state = _require("retrieval", spec)
    encoder = Encoder()
    encoder.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in state["encoder"].items()})
    encoder = encoder.to(device).eval()
    embeddings = state["embeddings"].float().to(device)
    train = training_set(spec)
    position = {sample_id: i for i, sample_id in enumerate(train_ids(train))}
    missing = [i for i in state["ids"] if i not in position]
    if missing:
        raise ModelError(f"retrieval weights for {spec.task!r} name training sample "
                         f"{missing[0]!r}, which the train split does not have",
                         f"retrain with `arbench train retrieval --task {spec.task}`")
    rows = [position[i] for i in state["ids"]]

    def predict(batch: dict) -> list[dict[str, Any]]:
        query = F.normalize(encoder(prepare(batch["image"])), dim=1)
        nearest = (query @ embeddings.T).argmax(dim=1).tolist()
        out = []
        for index in nearest:
            shape = train[rows[index]]
            out.append({"vertices": shape["vertices"], "faces": shape["faces"]})
        return out

    return predict


def train_ids(dataset: Any) -> list[str]:
    """Sample ids of a dataset in index order, without loading images where possible."""
    if hasattr(dataset, "sample_ids"):
        return dataset.sample_ids()
    return [dataset[i]["id"] for i in range(len(dataset))]
