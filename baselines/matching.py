"""Keypoint-matching baselines: OpenCV SIFT, ORB, GFTT corners with upright SIFT descriptors,
and ``lift-style``, a LIFT-like learned pipeline (Yi et al., ECCV 2016) in torch:
DoG keypoints, a learned orientation estimator and an L2-Net/HardNet-like descriptor CNN
on rotation-normalised 32x32 patches, trained by ``arbench train lift-style`` on random
homographies of scikit-image photographs disjoint from the evaluation images.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from baselines import WEIGHTS_DIR
from bench.errors import ModelError
from bench.families.base import Predictor
from bench.families.matching import matching_params, per_image_predictor
from bench.models import register_baseline

PATCH = 32
SUPPORT = 6.0
TRAIN_TASK = "matching-homography"


def gray_uint8(image: torch.Tensor) -> np.ndarray:
    """float [3,H,W] in [0,1] (any device) -> uint8 grayscale [H,W] (ITU-R 601 luma)."""
    rgb = (image.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0)
    return cv2.cvtColor(np.ascontiguousarray(rgb.cpu().numpy()), cv2.COLOR_RGB2GRAY)


def _max_keypoints(spec: Any) -> int:
    value = matching_params(spec).get("max_keypoints", 2000)
    return 2000 if value is None else int(value)


def keypoint_arrays(keypoints: list[cv2.KeyPoint]) -> tuple[np.ndarray, ...]:
    """OpenCV keypoints -> positions [N,2], sizes [N], angles [N] (deg), responses [N]."""
    if not keypoints:
        empty = np.zeros(0, dtype=np.float32)
        return np.zeros((0, 2), dtype=np.float32), empty, empty, empty
    return (np.array([k.pt for k in keypoints], dtype=np.float32),
            np.array([k.size for k in keypoints], dtype=np.float32),
            np.array([k.angle for k in keypoints], dtype=np.float32),
            np.array([k.response for k in keypoints], dtype=np.float32))


def _opencv_features(detector: Any, describer: Any, image: torch.Tensor,
                     descriptor_bytes: int | None) -> dict[str, torch.Tensor]:
    gray = gray_uint8(image)
    keypoints = detector.detect(gray, None)
    keypoints, descriptors = describer.compute(gray, keypoints)
    points, _, _, responses = keypoint_arrays(list(keypoints))
    if descriptors is None:
        width = descriptor_bytes or 128
        descriptors = np.zeros((0, width), dtype=np.uint8 if descriptor_bytes else np.float32)
    device = image.device
    return {"keypoints": torch.from_numpy(points).to(device),
            "descriptors": torch.from_numpy(descriptors).to(device),
            "scores": torch.from_numpy(responses).to(device)}


@register_baseline("sift", "matching")
def build_sift(spec: Any, info: Any, device: torch.device) -> Predictor:
    """OpenCV SIFT (Lowe 2004): DoG keypoints, 128-D float descriptors."""
    sift = cv2.SIFT_create(nfeatures=_max_keypoints(spec))
    return per_image_predictor(lambda image: _opencv_features(sift, sift, image, None))


@register_baseline("orb", "matching")
def build_orb(spec: Any, info: Any, device: torch.device) -> Predictor:
    """OpenCV ORB (Rublee et al. 2011): oriented FAST + rotated BRIEF, 256-bit descriptors."""
    orb = cv2.ORB_create(nfeatures=_max_keypoints(spec))
    return per_image_predictor(lambda image: _opencv_features(orb, orb, image, 32))


class _GfttDetector:
    """Shi-Tomasi corners (OpenCV GFTT) given SIFT's size 8 (sigma 4) and an upright
    orientation. ``octave`` is SIFT's packed octave/layer of that sigma (octave 1, layer
    1), so the descriptor is computed on the matching pyramid level, as for SIFT's own."""

    size = 8.0
    octave = 1 | (1 << 8)

    def __init__(self, max_keypoints: int) -> None:
        self.gftt = cv2.GFTTDetector_create(maxCorners=max_keypoints, qualityLevel=0.005,
                                            minDistance=3, blockSize=5)

    def detect(self, gray: np.ndarray, mask: Any) -> list[cv2.KeyPoint]:
        return [cv2.KeyPoint(k.pt[0], k.pt[1], self.size, 0.0, k.response, self.octave)
                for k in self.gftt.detect(gray, mask)]


@register_baseline("gftt-sift", "matching")
def build_gftt_sift(spec: Any, info: Any, device: torch.device) -> Predictor:
    """OpenCV GFTT (Shi-Tomasi) corners with upright, single-scale SIFT descriptors."""
    detector = _GfttDetector(_max_keypoints(spec))
    sift = cv2.SIFT_create()
    return per_image_predictor(lambda image: _opencv_features(detector, sift, image, None))


class OrientationNet(nn.Module):
    """Upright 32x32 patch -> unit vector (cos, sin) of its orientation."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 2),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[N,1,32,32] -> angles [N] in radians."""
        out = self.layers(patches)
        return torch.atan2(out[:, 1], out[:, 0])


class DescriptorNet(nn.Module):
    """L2-Net/HardNet-like CNN: rotation-normalised 32x32 patch -> 128-D unit descriptor."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 5, 2, 2, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 4, bias=False), nn.BatchNorm2d(128, affine=False),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[N,1,32,32] -> [N,128], L2-normalised."""
        return F.normalize(self.layers(patches).flatten(1), dim=1)


class LiftStyle(nn.Module):
    """Orientation estimator + descriptor on patches cut from a grayscale image pyramid."""

    def __init__(self) -> None:
        super().__init__()
        self.orientation = OrientationNet()
        self.descriptor = DescriptorNet()

    def describe(self, pyramid: list[torch.Tensor], points: torch.Tensor,
                 sides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptors [N,128] and orientations [N] (rad) of keypoints [N,2] with patch
        sides [N] (pixels)."""
        upright = sample_patches(pyramid, points, sides, torch.zeros_like(sides))
        angles = self.orientation(upright)
        return self.descriptor(sample_patches(pyramid, points, sides, angles)), angles


def image_pyramid(gray: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """Grayscale [H,W] float -> [1,1,H/2^l,W/2^l] images, Gaussian-blurred before halving."""
    image = gray[None, None]
    pyramid = [image]
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=gray.device) / 16.0
    for _ in range(levels - 1):
        blurred = F.conv2d(F.pad(image, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
        blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"),
                           kernel.view(1, 1, 5, 1))
        image = blurred[:, :, ::2, ::2]
        pyramid.append(image)
    return pyramid


def sample_patches(pyramid: list[torch.Tensor], points: torch.Tensor, sides: torch.Tensor,
                   angles: torch.Tensor) -> torch.Tensor:
    """Bilinear 32x32 patches [N,1,32,32] centred on ``points`` (pixels, OpenCV convention),
    ``sides`` pixels wide, rotated by ``angles`` (rad), from the pyramid level whose
    resolution fits the side; each patch is normalised to zero mean and unit variance."""
    n = len(points)
    out = torch.zeros(n, 1, PATCH, PATCH, device=points.device)
    if n == 0:
        return out
    steps = (torch.arange(PATCH, device=points.device, dtype=torch.float32) + 0.5) / PATCH - 0.5
    b, a = torch.meshgrid(steps, steps, indexing="ij")
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    side = sides[:, None, None]
    u = points[:, 0, None, None] + side * (cos * a - sin * b)
    v = points[:, 1, None, None] + side * (sin * a + cos * b)
    level = torch.log2(sides / PATCH).floor().clamp(0, len(pyramid) - 1).long()
    for index in level.unique().tolist():
        chosen = torch.nonzero(level == index).squeeze(1)
        image = pyramid[index]
        height, width = image.shape[-2:]
        scale = 2.0 ** index
        gx = ((u[chosen] + 0.5) / scale) / width * 2 - 1
        gy = ((v[chosen] + 0.5) / scale) / height * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).reshape(1, -1, PATCH, 2)
        patches = F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)
        out = out.index_copy(0, chosen, patches.reshape(len(chosen), 1, PATCH, PATCH))
    flat = out.flatten(1)
    mean, std = flat.mean(1), flat.std(1)
    return (out - mean[:, None, None, None]) / (std[:, None, None, None] + 1e-3)


def dog_keypoints(gray: np.ndarray, detector: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DoG keypoints without SIFT's duplicated orientations: positions, sizes, responses."""
    points, sizes, _, responses = keypoint_arrays(list(detector.detect(gray, None)))
    if len(points) == 0:
        return points, sizes, responses
    _, first = np.unique(np.round(np.c_[points, sizes], 3), axis=0, return_index=True)
    first = np.sort(first)
    return points[first], sizes[first], responses[first]


def weights_path(task: str = TRAIN_TASK) -> Path:
    """Where lift-style weights trained for ``task`` live."""
    return WEIGHTS_DIR / f"lift-style.{task}.pt"


def load_lift_style(path: Path, device: torch.device) -> LiftStyle:
    """Load the committed weights (``weights_only=True``)."""
    if not path.is_file():
        raise ModelError(f"no trained weights for lift-style ({path} is missing)",
                         "train them with `arbench train lift-style`")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = LiftStyle()
    model.load_state_dict({k: v.float() for k, v in checkpoint["state_dict"].items()})
    return model.to(device).eval()


@register_baseline("lift-style", "matching", weights=lambda task: [weights_path()],
                   default_task=TRAIN_TASK,
                   train=lambda spec, device, out=None, epochs=None, seed=0:
                   train_lift_style(spec, device, out, epochs, seed))
def build_lift_style(spec: Any, info: Any, device: torch.device) -> Predictor:
    """LIFT-style: DoG keypoints, learned orientation, learned 128-D patch descriptor."""
    model = load_lift_style(weights_path(), device)
    budget = _max_keypoints(spec)
    # SIFT returns a location once per dominant orientation; ask for more so that the
    # de-duplicated DoG keypoints can fill the budget, then keep the strongest ones.
    detector = cv2.SIFT_create(nfeatures=int(budget * 1.3))

    def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
        gray = gray_uint8(image)
        points, sizes, responses = dog_keypoints(gray, detector)
        if len(points) > budget:
            strongest = np.sort(np.argsort(-responses, kind="stable")[:budget])
            points, sizes, responses = points[strongest], sizes[strongest], responses[strongest]
        pyramid = image_pyramid(torch.from_numpy(gray).float().to(device) / 255.0)
        pts = torch.from_numpy(points).to(device)
        sides = (torch.from_numpy(sizes).to(device) * SUPPORT).clamp(min=12.0)
        with torch.no_grad():
            descriptors, _ = model.describe(pyramid, pts, sides)
        return {"keypoints": pts, "descriptors": descriptors,
                "scores": torch.from_numpy(responses).to(device)}

    return per_image_predictor(extract)


def _training_pair(rng: np.random.Generator, images: list[np.ndarray], detector: Any,
                   count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                        np.ndarray, np.ndarray]:
    """One random homography pair of a training image: grayscale A and B, DoG keypoints
    in A, their projections in B, patch sides in A and B and the local rotation (rad)."""
    from bench.synth.homography_pairs import photometric, random_homography

    base = images[rng.integers(len(images))]
    height, width = base.shape[:2]
    homography = random_homography(rng, width, height, strength=rng.uniform(0.2, 1.0))
    turn = np.deg2rad(rng.uniform(-90, 90))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    rotate = cv2.getRotationMatrix2D((cx, cy), np.rad2deg(turn), 1.0)
    homography = np.vstack([rotate, [0, 0, 1]]) @ homography
    warped = cv2.warpPerspective(base, homography, (width, height), flags=cv2.INTER_LINEAR)
    gray_a = cv2.cvtColor(photometric(base, rng, rng.uniform(0, 0.3)), cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(photometric(warped, rng, rng.uniform(0, 1.0)), cv2.COLOR_RGB2GRAY)
    points, sizes, _ = dog_keypoints(gray_a, detector)
    ones = np.c_[points, np.ones(len(points))]
    mapped = ones @ homography.T
    projected = mapped[:, :2] / mapped[:, 2:]
    margin = 8
    keep = ((projected[:, 0] > margin) & (projected[:, 0] < width - 1 - margin)
            & (projected[:, 1] > margin) & (projected[:, 1] < height - 1 - margin))
    points, sizes, projected, w = points[keep], sizes[keep], projected[keep], mapped[keep, 2]
    if len(points) > count:
        chosen = rng.choice(len(points), count, replace=False)
        points, sizes, projected, w = points[chosen], sizes[chosen], projected[chosen], w[chosen]
    h = homography
    # Jacobian of the homography at each point: d(projected)/d(point).
    jac = np.empty((len(points), 2, 2))
    for row in range(2):
        jac[:, row, 0] = (h[row, 0] - projected[:, row] * h[2, 0]) / w
        jac[:, row, 1] = (h[row, 1] - projected[:, row] * h[2, 1]) / w
    scale = np.sqrt(np.abs(np.linalg.det(jac)))
    rotation = np.arctan2(jac[:, 1, 0] - jac[:, 0, 1], jac[:, 0, 0] + jac[:, 1, 1])
    sides_a = np.maximum(sizes * SUPPORT, 12.0)
    return gray_a, gray_b, points, projected, np.stack([sides_a, sides_a * scale]), rotation


def hardest_triplet_loss(desc_a: torch.Tensor, desc_b: torch.Tensor,
                         margin: float = 1.0) -> torch.Tensor:
    """HardNet loss (Mishchuk et al. 2017): positive pair vs the hardest in-batch negative."""
    dist = torch.cdist(desc_a, desc_b)
    positive = dist.diagonal()
    masked = dist + torch.eye(len(dist), device=dist.device) * 10.0
    negative = torch.minimum(masked.min(dim=1).values, masked.min(dim=0).values)
    return F.relu(margin + positive - negative).mean()


def train_lift_style(spec: Any, device: torch.device, out: Path | None = None,
                     epochs: int | None = None, seed: int = 0) -> Path:
    """Train orientation and descriptor jointly on patch correspondences from random
    homographies of ``TRAIN_IMAGES`` (never the evaluation photographs).

    As LIFT trains its descriptor on orientation-aligned correspondences, the patch in B is
    cut at A's predicted orientation plus the true local rotation of the homography; the
    orientation estimator learns from 1 - cos(theta_B - theta_A - true rotation). Loss:
    HardNet's hardest in-batch triplet loss + 0.5 x the orientation term.
    ``epochs`` counts steps in hundreds (default 4: 400 steps of 192 correspondences).
    """
    from bench.synth.homography_pairs import EVAL_IMAGES, TRAIN_IMAGES, photograph

    assert not set(TRAIN_IMAGES) & set(EVAL_IMAGES)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = [photograph(name) for name in TRAIN_IMAGES]
    detector = cv2.SIFT_create(nfeatures=600)
    model = LiftStyle().to(device).train()
    steps = 100 * (epochs or 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    start = time.perf_counter()
    running = [0.0, 0.0]
    for step in range(1, steps + 1):
        gray_a, gray_b, pa, pb, sides, rotation = _training_pair(rng, images, detector, 192)
        if len(pa) < 16:
            continue
        pyr_a = image_pyramid(torch.from_numpy(gray_a).float().to(device) / 255.0)
        pyr_b = image_pyramid(torch.from_numpy(gray_b).float().to(device) / 255.0)
        pa_t = torch.from_numpy(pa).float().to(device)
        pb_t = torch.from_numpy(pb).float().to(device)
        side_a = torch.from_numpy(sides[0]).float().to(device)
        side_b = torch.from_numpy(sides[1]).float().to(device)
        truth = torch.from_numpy(rotation).float().to(device)
        desc_a, angle_a = model.describe(pyr_a, pa_t, side_a)
        angle_b = model.orientation(sample_patches(pyr_b, pb_t, side_b, torch.zeros_like(side_b)))
        aligned_b = sample_patches(pyr_b, pb_t, side_b, angle_a.detach() + truth)
        loss_desc = hardest_triplet_loss(desc_a, model.descriptor(aligned_b))
        loss_ori = (1 - torch.cos(angle_b - angle_a - truth)).mean()
        loss = loss_desc + 0.5 * loss_ori
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        running = [0.9 * running[0] + 0.1 * loss_desc.item(),
                   0.9 * running[1] + 0.1 * loss_ori.item()]
        if step % 50 == 0:
            print(f"lift-style step {step}/{steps}: triplet {running[0]:.3f}, "
                  f"orientation {running[1]:.3f} ({time.perf_counter() - start:.0f}s)")
    path = out or weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
             for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "train_images": list(TRAIN_IMAGES), "steps": steps,
                "seed": seed, "support": SUPPORT, "patch": PATCH}, path)
    print(f"trained lift-style in {time.perf_counter() - start:.0f}s on {device}; "
          f"train images: {', '.join(TRAIN_IMAGES)}")
    return path

