"""Global-descriptor baselines for retrieval and localization: a colour histogram (the
floor), SIFT + VLAD on a k-means vocabulary, and a ResNet-18 trunk with GeM pooling.

The vocabulary and the network are trained (``arbench train sift-vlad`` / ``cnn-gem``) on
the ``train/`` part of the embedded synthetic-retrieval set, whose photographs are disjoint
from every evaluation set; tasks without weights of their own use those. Weights:
``weights/NAME.TASK.pt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.models import register_baseline

TRAIN_TASK = "synthetic-retrieval"
INPUT_SIDE = 128
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def images_of(batch: dict[str, Any]) -> list[torch.Tensor]:
    """The batch's images as a list of [3, H, W] tensors (stacked or not)."""
    images = batch["image"]
    return list(images) if isinstance(images, torch.Tensor) else images


def weights_path(name: str, task: str) -> Path:
    """The weights of ``name`` for ``task``, else those trained on synthetic-retrieval."""
    own = WEIGHTS_DIR / f"{name}.{task}.pt"
    return own if own.is_file() else WEIGHTS_DIR / f"{name}.{TRAIN_TASK}.pt"


def _require(path: Path, name: str) -> Path:
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline {name!r} ({path} is missing)",
                         f"train them with `arbench train {name}`")
    return path


def _training_images(spec: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB uint8 images of the spec's train split and a group label per image (-1: none).

    Group g holds query g and its easy and hard database images.
    """
    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    n_q = dataset.info.meta["n_queries"]
    labels = np.full(len(dataset), -1, dtype=np.int64)
    images = []
    for i in range(len(dataset)):
        sample = dataset[i]
        images.append((sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        if sample["is_query"]:
            labels[i] = i
            for db in sample["easy"] + sample["hard"]:
                labels[n_q + db] = i
    return images, labels


# -- colour histogram -------------------------------------------------------------------

def color_histogram(image: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Joint RGB histogram [bins^3] of an image [3, H, W] in [0, 1], square-rooted
    (Hellinger) so that the inner product of L2-normalised histograms is the Bhattacharyya
    coefficient."""
    quantised = (image.clamp(0, 1) * (bins - 1e-6)).long()
    flat = (quantised[0] * bins + quantised[1]) * bins + quantised[2]
    counts = torch.bincount(flat.reshape(-1), minlength=bins**3).float()
    return (counts / counts.sum()).sqrt()


@register_baseline("color-hist", "retrieval", also_families=("localization",),
                   description="joint RGB histogram 8x8x8, Hellinger (the floor)")
def build_color_hist(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """The floor: a global colour histogram, no training."""
    return lambda batch: torch.stack([color_histogram(im) for im in images_of(batch)])


# -- SIFT + VLAD ------------------------------------------------------------------------

def root_sift(image: np.ndarray, n_features: int = 500) -> np.ndarray:
    """RootSIFT descriptors [N, 128] (L1-normalise, square root) of an RGB uint8 image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    _, desc = cv2.SIFT_create(nfeatures=n_features).detectAndCompute(grey, None)
    if desc is None:
        return np.zeros((0, 128), dtype=np.float32)
    desc = desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(desc).astype(np.float32)


def vlad(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """VLAD (Jegou et al. 2010) [K*128]: residuals to the nearest centroid summed per
    centroid, intra-normalised (Arandjelovic & Zisserman 2013), signed square root."""
    k, dim = centroids.shape
    out = np.zeros((k, dim), dtype=np.float32)
    if len(descriptors):
        nearest = ((centroids**2).sum(axis=1)[None] - 2.0 * descriptors @ centroids.T).argmin(1)
        np.add.at(out, nearest, descriptors - centroids[nearest])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    out = out.reshape(-1)
    return np.sign(out) * np.sqrt(np.abs(out))


def _build_sift_vlad(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    path = _require(weights_path("sift-vlad", spec.task), "sift-vlad")
    centroids = torch.load(path, map_location="cpu", weights_only=True)["centroids"].numpy()

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        rows = []
        for image in images_of(batch):
            pixels = (image.detach().cpu().permute(1, 2, 0).numpy() * 255).round()
            rows.append(vlad(root_sift(pixels.astype(np.uint8)), centroids))
        return torch.from_numpy(np.stack(rows)).to(batch["index"].device)

    return predict


def _train_sift_vlad(spec: Any, device: torch.device, out: Path | None = None,
                     epochs: int | None = None, seed: int = 0, clusters: int = 32) -> Path:
    """k-means vocabulary (scikit-learn) on RootSIFT of the train split's images."""
    from sklearn.cluster import KMeans

    images, _ = _training_images(spec)
    rng = np.random.default_rng(seed)
    descriptors = np.concatenate([root_sift(image) for image in images])
    sample = descriptors[rng.permutation(len(descriptors))[:50_000]]
    kmeans = KMeans(clusters, n_init=1, max_iter=epochs or 100, random_state=seed).fit(sample)
    path = out or WEIGHTS_DIR / f"sift-vlad.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"centroids": torch.from_numpy(kmeans.cluster_centers_.astype(np.float32))}, path)
    print(f"sift-vlad: {clusters} centroids from {len(sample)} RootSIFT descriptors "
          f"of {len(images)} images")
    return path


# -- ResNet-18 trunk + GeM --------------------------------------------------------------

class GeM(nn.Module):
    """Generalised-mean pooling (Radenovic et al. 2018): (mean x^p)^(1/p), p learned."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class GemNet(nn.Module):
    """torchvision ResNet-18 up to ``layer2`` (128 channels, stride 8), then GeM [B, 128].

    The baseline feeds images with the longer side scaled to 128 px, the training scale."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet18(weights=None)
        self.trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1,
                                   net.layer2)
        self.pool = GeM()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - IMAGENET_MEAN.to(images.device)) / IMAGENET_STD.to(images.device)
        return self.pool(self.trunk(x))


def _build_cnn_gem(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    path = _require(weights_path("cnn-gem", spec.task), "cnn-gem")
    net = GemNet()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net = net.to(device).eval()

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        images = batch["image"]
        if isinstance(images, torch.Tensor):
            return net(_shrink(images))
        return torch.cat([net(_shrink(image[None])) for image in images])

    return predict


def _shrink(images: torch.Tensor, side: int = INPUT_SIDE) -> torch.Tensor:
    """Images [B,3,H,W] scaled (area) so that the longer side is at most ``side`` pixels."""
    scale = side / max(images.shape[-2:])
    if scale >= 1:
        return images
    size = (max(1, round(images.shape[-2] * scale)), max(1, round(images.shape[-1] * scale)))
    return nn.functional.interpolate(images, size=size, mode="area")


def _train_cnn_gem(spec: Any, device: torch.device, out: Path | None = None,
                   epochs: int | None = None, seed: int = 0) -> Path:
    """Supervised contrastive loss on the train split's landmark groups (8 groups x 4 views
    and 8 distractors per step), random 128 px crops and flips of 144 px images."""
    torch.manual_seed(seed)
    images, labels = _training_images(spec)
    small = [cv2.resize(im, (144, 144), interpolation=cv2.INTER_AREA) for im in images]
    tensors = torch.stack([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in small])
    labels_t = torch.from_numpy(labels)
    net = GemNet().to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    groups = [torch.nonzero(labels_t == g).flatten() for g in labels_t.unique() if g >= 0]
    negatives = torch.nonzero(labels_t < 0).flatten()
    epochs = epochs or 60
    start = time.perf_counter()
    for epoch in range(epochs):
        pick = torch.randperm(len(groups), generator=generator)[:8]
        chosen = [groups[g][torch.randperm(len(groups[g]), generator=generator)[:4]]
                  for g in pick.tolist()]
        index = torch.cat([*chosen, negatives[torch.randperm(len(negatives),
                                                             generator=generator)[:8]]])
        x = _augment(tensors[index], generator).to(device)
        desc = nn.functional.normalize(net(x), dim=1)
        y = labels_t[index].to(device)
        loss = _supervised_contrastive(desc, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"cnn-gem step {epoch + 1}/{epochs}: loss {float(loss):.4f}")
    print(f"trained cnn-gem in {time.perf_counter() - start:.1f}s on {device}")
    path = out or WEIGHTS_DIR / f"cnn-gem.{spec.task}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() for k, v in net.cpu().state_dict().items()}, path)
    return path


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 128 px crops of 144 px images and horizontal flips."""
    out = torch.empty(len(images), 3, 128, 128)
    offsets = torch.randint(0, 17, (len(images), 2), generator=generator)
    flips = torch.rand(len(images), generator=generator) < 0.5
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist(), strict=True)):
        crop = images[i, :, dy:dy + 128, dx:dx + 128]
        out[i] = crop.flip(2) if flip else crop
    return out


def _supervised_contrastive(desc: torch.Tensor, labels: torch.Tensor,
                            temperature: float = 0.1) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) on L2-normalised descriptors: each image with a positive
    in the batch pulls its positives against every other image; label -1 = negative only."""
    logits = desc @ desc.T / temperature
    eye = torch.eye(len(labels), dtype=torch.bool, device=desc.device)
    logits = logits.masked_fill(eye, float("-inf"))
    positive = (labels[:, None] == labels[None]) & (labels[:, None] >= 0) & ~eye
    anchors = positive.any(dim=1)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    mean_pos = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1) / positive.sum(
        1).clamp_min(1)
    return -mean_pos[anchors].mean()


def _register(name: str, build: Callable, train: Callable, description: str) -> None:
    register_baseline(name, "retrieval", weights=lambda task: [weights_path(name, task)],
                      train=train, default_task=TRAIN_TASK, description=description,
                      also_families=("localization",))(build)


_register("sift-vlad", _build_sift_vlad, _train_sift_vlad,
          "RootSIFT + VLAD (32-word k-means vocabulary), intra- and power-normalised")
_register("cnn-gem", _build_cnn_gem, _train_cnn_gem,
          "ResNet-18 trunk (to layer2) + GeM, contrastive training on synthetic views")
