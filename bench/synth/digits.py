"""Embedded ``digits``: scikit-learn's 8x8 digits as 28x28 MNIST IDX files.

Each 8x8 digit (values 0..16) is resized to 20x20 with bilinear interpolation and centred
in a 28x28 frame, as MNIST centres its 20x20 digits; 360 digits (a stratified split with
a fixed seed, 35 to 37 per class) form the test split and the other 1437 the train split.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from bench.registry import EMBEDDED

TEST_SIZE = 360
SPLIT_SEED = 0


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic 0x08, one int32 per dimension)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits as uint8 [N,28,28] images and int labels [N]."""
    digits = load_digits()
    small = (digits.images / 16.0 * 255.0).astype(np.float32)
    images = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for index, image in enumerate(small):
        resized = cv2.resize(image, (20, 20), interpolation=cv2.INTER_LINEAR)
        images[index, 4:24, 4:24] = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return images, digits.target.astype(np.uint8)


@EMBEDDED.register("digits")
def build_digits(root: Path) -> None:
    """scikit-learn digits upsampled to 28x28, MNIST IDX, 1437 train / 360 test."""
    images, labels = digits_28x28()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels)
    for prefix, idx in (("train", np.sort(train_idx)), ("t10k", np.sort(test_idx))):
        write_idx(root / f"{prefix}-images-idx3-ubyte", images[idx])
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels[idx])
