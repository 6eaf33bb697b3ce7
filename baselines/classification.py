"""Digit-classification baselines: the lecture's CNN, LeNet-5, a small ResNet and logistic
regression (scikit-learn), with their training code. Weights: ``weights/NAME.TASK.pt``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.models import register_baseline


def lecture_cnn(num_classes: int = 10) -> nn.Module:
    """The lecture's CNN: 2 x (conv3x3(4) + BatchNorm + ReLU + maxpool), Linear(4*7*7, C)."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 7 * 7, num_classes),
    )


def lenet5(num_classes: int = 10) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, for 28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def resnet_small(num_classes: int = 10) -> nn.Module:
    """A small ResNet from torchvision's BasicBlock: 16-32-64 channels, ~0.3 MB of weights."""

    def stage(cin: int, cout: int, stride: int) -> nn.Module:
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )


def logistic_regression(num_classes: int = 10) -> nn.Module:
    """Multinomial logistic regression on the 784 pixels, as a linear layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "lecture-cnn": lecture_cnn,
    "lenet5": lenet5,
    "resnet-small": resnet_small,
    "logreg": logistic_regression,
}


def weights_path(name: str, task: str) -> Path:
    """Where the weights of baseline ``name`` trained on ``task`` live."""
    return WEIGHTS_DIR / f"{name}.{task}.pt"


def _load(name: str, spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    path = weights_path(name, spec.task)
    if not path.is_file():
        raise ModelError(f"no trained weights for baseline {name!r} on task {spec.task!r} "
                         f"({path} is missing)",
                         f"train them with `arbench train {name} --task {spec.task}`")
    module = ARCHITECTURES[name](info.meta["num_classes"])
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    module = module.to(device).eval()
    return lambda batch: module(batch["image"])


def _train_network(name: str, spec: Any, device: torch.device, out: Path | None,
                   epochs: int | None, seed: int) -> Path:
    from bench.runner import build_dataset

    torch.manual_seed(seed)
    dataset = build_dataset(spec, split="train")
    module = ARCHITECTURES[name](dataset.info.meta["num_classes"]).to(device)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i]["label"] for i in range(len(dataset))])
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3, weight_decay=1e-4)
    epochs = epochs or 30
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for chunk in order.split(64):
            x = _random_shift(images[chunk], generator).to(device)
            loss = nn.functional.cross_entropy(module(x), labels[chunk].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(chunk)
        schedule.step()
        print(f"{name} epoch {epoch + 1}/{epochs}: loss {total / len(labels):.4f}")
    print(f"trained {name} in {time.perf_counter() - start:.1f}s on {device}")
    path = out or weights_path(name, spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.cpu().state_dict(), path)
    return path


def _random_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to 2 pixels in x and y (zero fill)."""
    shifted = torch.zeros_like(images)
    offsets = torch.randint(-2, 3, (len(images), 2), generator=generator)
    for index, (dy, dx) in enumerate(offsets.tolist()):
        ys, yd = slice(max(0, -dy), 28 - max(0, dy)), slice(max(0, dy), 28 - max(0, -dy))
        xs, xd = slice(max(0, -dx), 28 - max(0, dx)), slice(max(0, dx), 28 - max(0, -dx))
        shifted[index, :, yd, xd] = images[index, :, ys, xs]
    return shifted


def _train_logreg(spec: Any, device: torch.device, out: Path | None, epochs: int | None,
                  seed: int) -> Path:
    from sklearn.linear_model import LogisticRegression

    from bench.runner import build_dataset

    dataset = build_dataset(spec, split="train")
    features = np.stack([dataset[i]["image"].reshape(-1).numpy() for i in range(len(dataset))])
    labels = np.array([dataset[i]["label"] for i in range(len(dataset))])
    classifier = LogisticRegression(C=0.05, max_iter=epochs or 2000, random_state=seed)
    classifier.fit(features, labels)
    num_classes = dataset.info.meta["num_classes"]
    weight = np.zeros((num_classes, features.shape[1]), dtype=np.float32)
    bias = np.zeros(num_classes, dtype=np.float32)
    weight[classifier.classes_] = classifier.coef_
    bias[classifier.classes_] = classifier.intercept_
    path = out or weights_path("logreg", spec.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"1.weight": torch.from_numpy(weight), "1.bias": torch.from_numpy(bias)}, path)
    print(f"trained logreg (scikit-learn, train accuracy {classifier.score(features, labels):.4f})")
    return path


def _register(name: str, description: str) -> None:
    def build(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
        return _load(name, spec, info, device)

    def train(spec: Any, device: torch.device, out: Path | None = None,
              epochs: int | None = None, seed: int = 0) -> Path:
        if name == "logreg":
            return _train_logreg(spec, device, out, epochs, seed)
        return _train_network(name, spec, device, out, epochs, seed)

    register_baseline(name, "classification", weights=lambda task: [weights_path(name, task)],
                      train=train, default_task="digits",
                      description=description)(build)


_register("lecture-cnn", "the lecture's CNN: two conv3x3(4)+BN+ReLU+maxpool blocks, Linear(196,10)")
_register("lenet5", "LeNet-5 (LeCun et al. 1998), ReLU and max pooling")
_register("resnet-small", "small ResNet of torchvision BasicBlocks (16-32-64 channels)")
_register("logreg", "multinomial logistic regression on pixels, fitted by scikit-learn")
