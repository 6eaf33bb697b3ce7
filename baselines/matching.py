"""Classical keypoint-matching baselines: OpenCV SIFT, RootSIFT, ORB and GFTT corners with
upright SIFT descriptors. The learned ``lift-style`` and ``sift-learned-desc`` are in
``baselines.lift_style``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from bench.families.base import Predictor
from bench.families.matching import matching_params, per_image_predictor
from bench.models import register_baseline


def gray_uint8(image: torch.Tensor) -> np.ndarray:
    """float [3,H,W] in [0,1] (any device) -> uint8 grayscale [H,W] (ITU-R 601 luma)."""
    rgb = (image.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0)
    return cv2.cvtColor(np.ascontiguousarray(rgb.cpu().numpy()), cv2.COLOR_RGB2GRAY)


def max_keypoints(spec: Any) -> int:
    """The keypoint budget of the spec's matching metric (2000 when it sets none)."""
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
    sift = cv2.SIFT_create(nfeatures=max_keypoints(spec))
    return per_image_predictor(lambda image: _opencv_features(sift, sift, image, None))


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović and Zisserman, CVPR 2012): each SIFT descriptor [N,128]
    L1-normalised, then square-rooted element-wise, so L2 distances between the results
    compare the descriptors with the Hellinger kernel (float32 [N,128], unit L2 norm)."""
    values = descriptors.astype(np.float32)
    l1 = np.abs(values).sum(axis=1, keepdims=True)
    return np.sqrt(values / np.maximum(l1, np.finfo(np.float32).tiny))


@register_baseline("rootsift", "matching")
def build_rootsift(spec: Any, info: Any, device: torch.device) -> Predictor:
    """RootSIFT (Arandjelović and Zisserman 2012): SIFT keypoints, Hellinger-mapped SIFT
    descriptors (L1-normalise, square root)."""
    sift = cv2.SIFT_create(nfeatures=max_keypoints(spec))

    def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = _opencv_features(sift, sift, image, None)
        rooted = root_sift(features["descriptors"].cpu().numpy())
        return {**features, "descriptors": torch.from_numpy(rooted).to(image.device)}

    return per_image_predictor(extract)


@register_baseline("orb", "matching")
def build_orb(spec: Any, info: Any, device: torch.device) -> Predictor:
    """OpenCV ORB (Rublee et al. 2011): oriented FAST + rotated BRIEF, 256-bit descriptors."""
    orb = cv2.ORB_create(nfeatures=max_keypoints(spec))
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
    detector = _GfttDetector(max_keypoints(spec))
    sift = cv2.SIFT_create()
    return per_image_predictor(lambda image: _opencv_features(detector, sift, image, None))
