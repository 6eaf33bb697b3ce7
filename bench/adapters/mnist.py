"""MNIST IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` ...).

Reads the files in ``root``, ``root/raw`` or ``root/MNIST/raw`` (torchvision's layout) with
a small IDX reader that checks magic numbers and sizes. Also reads Fashion-MNIST and the
embedded ``digits`` set, which are written in the same format.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.idx import read_idx
from bench.registry import ADAPTERS

SPLIT_PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
HOW_TO_GET = "run `arbench data get mnist` or pass --set dataset.root=DIR with the IDX files"


def find_idx(root: Path, name: str) -> Path:
    """The first of ``name`` or ``name.gz`` in root, root/raw, root/MNIST/raw."""
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    if not root.exists():
        raise DataError(f"MNIST data root {root} does not exist", HOW_TO_GET)
    raise DataError(f"no {name}[.gz] in {root} (also looked in raw/ and MNIST/raw/)", HOW_TO_GET)


@ADAPTERS.register("mnist")
class MnistDataset(BenchDataset):
    """MNIST-format IDX images and labels (MNIST, Fashion-MNIST, the embedded digits)."""

    def __init__(self, root: Path, split: str = "test", class_names: list[str] | None = None):
        if split not in SPLIT_PREFIX:
            raise DataError(f"MNIST split must be one of {sorted(SPLIT_PREFIX)}, got {split!r}")
        prefix = SPLIT_PREFIX[split]
        image_path = find_idx(root, f"{prefix}-images-idx3-ubyte")
        label_path = find_idx(root, f"{prefix}-labels-idx1-ubyte")
        images = read_idx(image_path, 3)
        labels = read_idx(label_path, 1)
        if len(images) != len(labels):
            raise DataError(
                f"{image_path} has {len(images)} images but {label_path} {len(labels)} labels")
        num_classes = len(class_names) if class_names else 10
        whole = np.isfinite(labels) & (np.floor(labels) == labels) if labels.dtype.kind == "f" \
            else np.ones(labels.shape, dtype=bool)
        bad = ~whole | (labels < 0) | (labels >= num_classes)
        if bad.any():
            index = int(np.argmax(bad))
            raise DataError(f"{label_path}: label {labels[index].item()!r} of sample {index} "
                            f"is not a class 0..{num_classes - 1}")
        self.images = torch.from_numpy(images.astype(np.uint8))
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.info = DatasetInfo(
            name="mnist",
            root=root,
            split=split,
            fingerprint=fingerprint_files([image_path, label_path], root),
            size=len(self.labels),
            meta={"num_classes": num_classes,
                  "class_names": class_names or [str(i) for i in range(num_classes)]},
        )

    def __getitem__(self, index: int) -> dict:
        return {
            "id": f"{self.info.split}/{index:05d}",
            "image": self.images[index].unsqueeze(0).float().div_(255.0),
            "label": int(self.labels[index]),
        }


def download_mnist(root: Path) -> list[Path]:
    """Download the four MNIST files into ``root``, verifying their MD5 checksums."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for name, md5 in MNIST_MD5.items():
        target = root / name
        if target.is_file():
            if hashlib.md5(target.read_bytes()).hexdigest() != md5:
                raise DataError(f"{target} exists and is not the MNIST file {name} (checksum "
                                "differs); arbench does not overwrite it",
                                "move it away, or download into another --root")
            written.append(target)
            continue
        partial = target.with_suffix(".part")
        with urllib.request.urlopen(MNIST_MIRROR + name, timeout=60) as response, open(
            partial, "wb"
        ) as handle:
            shutil.copyfileobj(response, handle)
        digest = hashlib.md5(partial.read_bytes()).hexdigest()
        if digest != md5:
            partial.unlink()
            raise DataError(f"checksum mismatch for {name}: got {digest}, expected {md5}")
        partial.rename(target)
        written.append(target)
    return written
