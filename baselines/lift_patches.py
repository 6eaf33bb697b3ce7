"""Training and validation data of the ``lift-style`` baseline: patch correspondences
extracted once from random homographies of scikit-image photographs, as tensors.

Each *view* is a photograph (resized to a random longest side) and its warp by a random
homography plus an extra rotation, both with independent photometric changes (gain,
gamma, colour cast, brightness ramp, blur, noise) and JPEG compression. DoG keypoints are
detected in both images with the detector ``lift-style`` uses at test time; a keypoint of
A and one of B form a correspondence when B's lies within ``MATCH_RADIUS`` pixels of A's
projection (mutually nearest) and their sizes agree with the local scale of the
homography, so the pairs carry the detector's real position and scale noise. Around each
keypoint an upright *context* patch is cut (``CONTEXT`` px covering ``CONTEXT / PATCH``
times the descriptor's support) from which training crops are rotated freely.

The photographs are disjoint from the four evaluation photographs of the embedded
``homography-pairs`` set (and from ``cat``, the same photograph as ``chelsea``); the
validation photographs are disjoint from both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

TRAIN_PHOTOS = ("camera", "brick", "grass", "gravel", "moon", "cell", "page", "text",
                "hubble_deep_field", "retina", "clock")
VALIDATION_PHOTOS = ("coins", "immunohistochemistry")
PATCH = 32
CONTEXT = 48
SUPPORT = 6.0
MIN_SIDE = 12.0
MATCH_RADIUS = 2.0
SCALE_TOLERANCE = 1.35


@dataclass
class PatchPairs:
    """Corresponding context patches: ``a``, ``b`` uint8 [N,CONTEXT,CONTEXT] (upright,
    covering CONTEXT/PATCH x the patch side) and ``rotation`` float32 [N], the rotation
    (rad) that maps A's neighbourhood onto B's (the homography's local rotation)."""

    a: torch.Tensor
    b: torch.Tensor
    rotation: torch.Tensor

    def __len__(self) -> int:
        return len(self.rotation)


def image_pyramid(gray: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """Grayscale [H,W] float -> [1,1,H/2^l,W/2^l] images, Gaussian-blurred before halving."""
    image = gray[None, None]
    pyramid = [image]
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=gray.device) / 16.0
    for _ in range(levels - 1):
        blurred = torch.nn.functional.conv2d(
            torch.nn.functional.pad(image, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
        blurred = torch.nn.functional.conv2d(
            torch.nn.functional.pad(blurred, (0, 0, 2, 2), mode="replicate"),
            kernel.view(1, 1, 5, 1))
        image = blurred[:, :, ::2, ::2]
        pyramid.append(image)
    return pyramid


def cut_patches(pyramid: list[torch.Tensor], points: torch.Tensor, sides: torch.Tensor,
                angles: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """Bilinear ``size`` x ``size`` patches [N,1,size,size] (raw intensities) centred on
    ``points`` [N,2] (pixels, OpenCV convention), ``sides`` [N] pixels wide, their x axis
    along ``angles`` [N] (rad, image coordinates, y down), each from the pyramid level whose
    resolution fits ``sides * PATCH / size`` (a patch's pixel pitch is ``sides / size``)."""
    n = len(points)
    out = torch.zeros(n, 1, size, size, device=points.device)
    if n == 0:
        return out
    steps = (torch.arange(size, device=points.device, dtype=torch.float32) + 0.5) / size - 0.5
    b, a = torch.meshgrid(steps, steps, indexing="ij")
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    side = sides[:, None, None]
    u = points[:, 0, None, None] + side * (cos * a - sin * b)
    v = points[:, 1, None, None] + side * (sin * a + cos * b)
    pitch = sides * PATCH / size
    level = torch.log2(pitch / PATCH).floor().clamp(0, len(pyramid) - 1).long()
    for index in level.unique().tolist():
        chosen = torch.nonzero(level == index).squeeze(1)
        image = pyramid[index]
        height, width = image.shape[-2:]
        scale = 2.0 ** index
        gx = ((u[chosen] + 0.5) / scale) / width * 2 - 1
        gy = ((v[chosen] + 0.5) / scale) / height * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).reshape(1, -1, size, 2)
        patches = torch.nn.functional.grid_sample(image, grid, mode="bilinear",
                                                  padding_mode="border", align_corners=False)
        out = out.index_copy(0, chosen, patches.reshape(len(chosen), 1, size, size))
    return out


def standardise(patches: torch.Tensor) -> torch.Tensor:
    """Each patch [N,1,S,S] to zero mean and unit variance (the descriptor's input)."""
    flat = patches.flatten(1)
    mean, std = flat.mean(1), flat.std(1)
    return (patches - mean[:, None, None, None]) / (std[:, None, None, None] + 1e-3)


def dog_detector(max_keypoints: int, contrast_threshold: float) -> cv2.SIFT:
    """OpenCV's DoG detector asked for more locations than the budget, since SIFT repeats a
    location once per dominant orientation and ``dog_keypoints`` removes the repeats."""
    return cv2.SIFT_create(nfeatures=int(max_keypoints * 1.3),
                           contrastThreshold=contrast_threshold)


def dog_keypoints(gray: np.ndarray, detector: cv2.SIFT, max_keypoints: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DoG keypoints of a uint8 [H,W] image without SIFT's repeated orientations, the
    ``max_keypoints`` strongest: positions [N,2] (px), sizes [N] (px), responses [N]."""
    keypoints = detector.detect(gray, None)
    if not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    sizes = np.array([k.size for k in keypoints], dtype=np.float32)
    responses = np.array([k.response for k in keypoints], dtype=np.float32)
    _, first = np.unique(np.round(np.c_[points, sizes], 3), axis=0, return_index=True)
    first = np.sort(first)
    if len(first) > max_keypoints:
        strongest = np.argsort(-responses[first], kind="stable")[:max_keypoints]
        first = np.sort(first[strongest])
    return points[first], sizes[first], responses[first]


def patch_sides(sizes: np.ndarray) -> np.ndarray:
    """Descriptor support (px) of keypoints of OpenCV ``size`` (px): ``SUPPORT`` x size."""
    return np.maximum(sizes * SUPPORT, MIN_SIDE)


def local_similarity(homography: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale [N] and rotation [N] (rad) of the homography's Jacobian at ``points`` [N,2]."""
    h = homography
    w = points @ h[2, :2] + h[2, 2]
    projected = (points @ h[:2, :2].T + h[:2, 2]) / w[:, None]
    jac = np.empty((len(points), 2, 2))
    for row in range(2):
        jac[:, row, 0] = (h[row, 0] - projected[:, row] * h[2, 0]) / w
        jac[:, row, 1] = (h[row, 1] - projected[:, row] * h[2, 1]) / w
    scale = np.sqrt(np.abs(np.linalg.det(jac)))
    rotation = np.arctan2(jac[:, 1, 0] - jac[:, 0, 1], jac[:, 0, 0] + jac[:, 1, 1])
    return projected, scale, rotation


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


def random_view(rng: np.random.Generator, photo: np.ndarray, warp: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photograph (uint8 RGB) -> grayscale A, grayscale B and the homography A -> B:
    the embedded set's homography generator (strength up to 1.3) times a rotation of up to
    60 deg (the identity when ``warp`` is false: an illumination-only view), photometric
    changes on both (B stronger) and JPEG compression (a quarter of the A, half of the B
    images)."""
    from bench.synth.homography_pairs import photometric, random_homography

    height, width = photo.shape[:2]
    homography = np.eye(3)
    warped = photo
    if warp:
        homography = random_homography(rng, width, height, strength=rng.uniform(0.3, 1.3))
        turn = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0),
                                       rng.uniform(-60, 60), 1.0)
        homography = np.vstack([turn, [0, 0, 1]]) @ homography
        warped = cv2.warpPerspective(photo, homography, (width, height),
                                     flags=cv2.INTER_LINEAR)
    grays = []
    for image, strength, jpeg_chance in ((photo, 0.4, 0.25), (warped, 1.0, 0.5)):
        changed = photometric(image, rng, rng.uniform(0, strength))
        if rng.uniform() < jpeg_chance:
            changed = _jpeg(changed, int(rng.integers(40, 96)))
        grays.append(cv2.cvtColor(changed, cv2.COLOR_RGB2GRAY))
    return grays[0], grays[1], homography / homography[2, 2]


def correspondences(gray_a: np.ndarray, gray_b: np.ndarray, homography: np.ndarray,
                    detector: cv2.SIFT, max_keypoints: int) -> tuple[np.ndarray, ...]:
    """Detected keypoints of A and B that correspond under ``homography``: positions
    [N,2] in A and B, patch sides [N] in A and B, local rotation [N] (rad)."""
    from scipy.spatial import cKDTree

    points_a, sizes_a, _ = dog_keypoints(gray_a, detector, max_keypoints)
    points_b, sizes_b, _ = dog_keypoints(gray_b, detector, max_keypoints)
    if len(points_a) == 0 or len(points_b) == 0:
        empty = np.zeros(0)
        return np.zeros((0, 2)), np.zeros((0, 2)), empty, empty, empty
    projected, scale, rotation = local_similarity(homography, points_a.astype(np.float64))
    distance, nearest = cKDTree(points_b).query(projected, distance_upper_bound=MATCH_RADIUS)
    found = np.isfinite(distance)
    back = np.full(len(points_a), -1)
    back[found] = cKDTree(projected).query(points_b[nearest[found]])[1]
    mutual = found & (back == np.arange(len(points_a)))
    index_a = np.nonzero(mutual)[0]
    index_b = nearest[index_a]
    ratio = sizes_b[index_b] / (sizes_a[index_a] * scale[index_a])
    agree = (ratio < SCALE_TOLERANCE) & (ratio > 1 / SCALE_TOLERANCE)
    index_a, index_b = index_a[agree], index_b[agree]
    return (points_a[index_a], points_b[index_b], patch_sides(sizes_a[index_a]),
            patch_sides(sizes_b[index_b]), rotation[index_a])


def context_patches(gray: np.ndarray, points: np.ndarray, sides: np.ndarray) -> torch.Tensor:
    """Upright uint8 context patches [N,CONTEXT,CONTEXT] around ``points`` (px) covering
    ``CONTEXT / PATCH`` x ``sides`` (px), at the descriptor's pixel pitch."""
    pyramid = image_pyramid(torch.from_numpy(gray).float())
    span = torch.from_numpy(sides * CONTEXT / PATCH).float()
    patches = cut_patches(pyramid, torch.from_numpy(points).float(), span,
                          torch.zeros(len(points)), size=CONTEXT)
    return patches[:, 0].round().clamp(0, 255).byte()


def extract_patch_pairs(photos: tuple[str, ...], views_per_photo: int, seed: int,
                        detector: cv2.SIFT, max_keypoints: int) -> PatchPairs:
    """Correspondences from ``views_per_photo`` random views of each photograph (longest
    side drawn from 360, 480, 640 px), in a fixed order from ``seed``."""
    from bench.synth.homography_pairs import EVAL_IMAGES, photograph

    if set(photos) & {*EVAL_IMAGES, "cat"}:
        raise ValueError(f"training photographs overlap the evaluation set: {photos}")
    rng = np.random.default_rng(seed)
    parts_a, parts_b, rotations = [], [], []
    for name in photos:
        for _ in range(views_per_photo):
            photo = photograph(name, max_side=int(rng.choice([360, 480, 640])))
            gray_a, gray_b, homography = random_view(rng, photo)
            pa, pb, side_a, side_b, rotation = correspondences(gray_a, gray_b, homography,
                                                               detector, max_keypoints)
            parts_a.append(context_patches(gray_a, pa, side_a))
            parts_b.append(context_patches(gray_b, pb, side_b))
            rotations.append(torch.from_numpy(rotation).float())
    return PatchPairs(torch.cat(parts_a), torch.cat(parts_b), torch.cat(rotations))


def write_validation_sequences(root: Path, seed: int = 2017) -> None:
    """HPatches-layout ``v_``/``i_`` sequences of the validation photographs, drawn as the
    embedded ``homography-pairs`` set draws its own (5 growing homographies with a mild
    photometric change, 5 growing illumination changes), under ``root`` (a new folder):
    the data to choose a recipe on, since the evaluation photographs are never used."""
    from bench.synth.homography_pairs import write_photo_sequences

    if root.exists():
        raise FileExistsError(f"{root} exists; give a new folder")
    write_photo_sequences(root, VALIDATION_PHOTOS, seed)
