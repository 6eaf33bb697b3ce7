"""Embedded ``homography-pairs``: HPatches-layout sequences built from scikit-image photographs.

For each evaluation photograph (astronaut, coffee, chelsea, rocket; longest side scaled to
``MAX_SIDE``) two sequences are written exactly as HPatches lays them out:

- ``v_<name>``: ``1.ppm`` is the photograph, ``k.ppm`` (k = 2..6) its warp by a random
  homography of growing strength (rotation, scale, shear, perspective), with a mild
  brightness change; ``H_1_k`` is the 3x3 homography mapping pixels of 1 to pixels of k.
- ``i_<name>``: identity homographies, growing illumination changes (gain, gamma, colour
  cast, a brightness ramp), sensor noise and blur.

Every random draw comes from a fixed seed, so the build (and its fingerprint) is
deterministic. The training images of the ``lift-style`` baseline are other scikit-image
photographs (``TRAIN_IMAGES``), disjoint from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from bench.registry import EMBEDDED

EVAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
TRAIN_IMAGES = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock", "cell",
                "page", "text", "hubble_deep_field", "retina")
MAX_SIDE = 480
SEED = 2016


def photograph(name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A scikit-image sample photograph as uint8 RGB [H,W,3], longest side <= ``max_side``."""
    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3].astype(np.uint8)
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def random_homography(rng: np.random.Generator, width: int, height: int,
                      strength: float) -> np.ndarray:
    """A homography about the image centre; ``strength`` in (0, 1] scales every component.

    Rotation up to 30 deg, scale in [exp(-0.35), exp(0.35)], shear up to 0.15, perspective
    terms up to 0.6 / max(width, height), a shift up to 5% of the size (all times strength).
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    angle = np.deg2rad(rng.uniform(-30, 30) * strength)
    scale = np.exp(rng.uniform(-0.35, 0.35) * strength)
    shear = rng.uniform(-0.15, 0.15) * strength
    size = max(width, height)
    persp = rng.uniform(-0.6, 0.6, size=2) * strength / size
    shift = rng.uniform(-0.05, 0.05, size=2) * strength * np.array([width, height])
    centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    affine = np.array([[scale, shear * scale, 0], [0, scale, 0], [0, 0, 1]])
    projective = np.array([[1, 0, 0], [0, 1, 0], [persp[0], persp[1], 1]])
    back = np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1]])
    homography = back @ projective @ rotation @ affine @ centre
    return homography / homography[2, 2]


def photometric(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Illumination and sensor change of growing ``strength`` in [0, 1] on uint8 RGB."""
    x = image.astype(np.float32) / 255.0
    height, width = x.shape[:2]
    gain = np.exp(rng.uniform(-0.9, 0.6) * strength)
    gamma = np.exp(rng.uniform(-0.5, 0.5) * strength)
    cast = np.exp(rng.uniform(-0.25, 0.25, size=3) * strength).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(direction) * (xx / width - 0.5) + np.sin(direction) * (yy / height - 0.5))
    x = np.clip(x * gain * cast * (1.0 + 0.8 * strength * ramp[:, :, None]), 0, 1) ** gamma
    sigma_blur = 1.5 * strength * rng.uniform(0.3, 1.0)
    if sigma_blur > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma_blur)
    x = x + rng.normal(0, 0.03 * strength, size=x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def write_sequence(folder: Path, images: list[np.ndarray], homographies: list[np.ndarray]) -> None:
    """Write ``1.ppm .. n.ppm`` (RGB images) and ``H_1_k`` (3x3 text) in HPatches layout."""
    folder.mkdir(parents=True)
    for index, image in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"{index}.ppm"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    for index, homography in enumerate(homographies, start=2):
        np.savetxt(folder / f"H_1_{index}", homography, fmt="%.10e")


@EMBEDDED.register("homography-pairs")
def build_homography_pairs(root: Path) -> None:
    """4 scikit-image photographs -> 8 HPatches sequences (4 i_, 4 v_), 40 image pairs."""
    write_photo_sequences(root, EVAL_IMAGES, SEED)


def write_photo_sequences(root: Path, names: Sequence[str], seed: int) -> None:
    """Per photograph ``names[i]`` (random generator ``[seed, i]``) two HPatches sequences
    under ``root``: ``v_<name>`` (5 growing homographies with a mild photometric change) and
    ``i_<name>`` (5 growing illumination changes)."""
    for number, name in enumerate(names):
        base = photograph(name)
        height, width = base.shape[:2]
        rng = np.random.default_rng([seed, number])
        views, homographies = [base], []
        for k in range(1, 6):
            homography = random_homography(rng, width, height, strength=k / 5.0)
            warped = cv2.warpPerspective(base, homography, (width, height),
                                         flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
            views.append(photometric(warped, rng, strength=0.15))
            homographies.append(homography)
        write_sequence(root / f"v_{name}", views, homographies)
        lights = [base] + [photometric(base, rng, strength=k / 5.0) for k in range(1, 6)]
        write_sequence(root / f"i_{name}", lights, [np.eye(3)] * 5)
