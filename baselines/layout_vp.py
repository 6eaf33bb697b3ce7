"""``vp-layout``: a classical room layout baseline in the spirit of Hedau et al. (ICCV 2009).

1. Line segments from OpenCV's LSD detector.
2. Three orthogonal vanishing directions with the image's K: each segment spans a plane
   through the camera centre (normal ``n``); a direction ``v`` vanishes on the segment when
   ``n . v = 0``. A coarse-to-fine rotation search over an upright camera's pitch and roll
   (within +-16 and +-6 degrees) and any yaw keeps the frame that the most segment length
   agrees with (within ``INLIER_DEGREES``).
3. Box layout hypotheses: the camera inside an axis-aligned box in that frame; floor at
   distance 1 (the scale is free), ceiling and the four walls at sampled distances. Each
   pixel's ray shows the face it reaches first, so a hypothesis renders to a face map;
   hypotheses are scored at 60x80 by how much of their face boundaries lie on detected
   lines (minus a penalty for boundaries on no line), and the best one is refined.
4. Faces become LSUN labels: floor 4, ceiling 5, the wall facing the camera most 1, the
   others 2 (left) or 3 (right) by side. Output: the label map only (no type or corners,
   so the corner error is left out for this baseline).
No training; deterministic (fixed sampling seed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from bench.families.layout import CEILING, FLOOR, FRONT, LEFT, RIGHT
from bench.models import register_baseline

MIN_SEGMENT_PX = 20.0
INLIER_DEGREES = 2.0
PITCH_RANGE = 16.0
ROLL_RANGE = 6.0
SCORE_SIZE = (60, 80)
HYPOTHESES = 400
REFINE_ROUNDS = 3
MISS_PENALTY = 0.5


def detect_segments(gray: np.ndarray) -> np.ndarray:
    """Line segments [N,4] (x1, y1, x2, y2 pixels) at least MIN_SEGMENT_PX long of an 8-bit
    grey image."""
    lines = cv2.createLineSegmentDetector().detect(gray)[0]
    if lines is None:
        return np.zeros((0, 4))
    lines = lines.reshape(-1, 4).astype(np.float64)
    lengths = np.hypot(lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1])
    return lines[lengths >= MIN_SEGMENT_PX]


def segment_normals(segments: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit normals [N,3] of the planes through the camera centre and each segment."""
    ones = np.ones((len(segments), 1))
    inverse = np.linalg.inv(K)
    start = np.hstack([segments[:, :2], ones]) @ inverse.T
    end = np.hstack([segments[:, 2:], ones]) @ inverse.T
    normals = np.cross(start, end)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _frames(angles: np.ndarray) -> np.ndarray:
    """Rotations [N,3,3] (columns: the box axes in the camera frame) of an upright box seen
    with angles [N,3] = (pitch, roll, yaw) in degrees: roll @ pitch @ yaw."""
    pitch, roll, yaw = np.radians(angles).T
    zeros, ones = np.zeros_like(pitch), np.ones_like(pitch)

    def matrices(rows: list[list[np.ndarray]]) -> np.ndarray:
        return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)

    yaw_m = matrices([[np.cos(yaw), zeros, np.sin(yaw)], [zeros, ones, zeros],
                      [-np.sin(yaw), zeros, np.cos(yaw)]])
    pitch_m = matrices([[ones, zeros, zeros], [zeros, np.cos(pitch), -np.sin(pitch)],
                        [zeros, np.sin(pitch), np.cos(pitch)]])
    roll_m = matrices([[np.cos(roll), -np.sin(roll), zeros],
                       [np.sin(roll), np.cos(roll), zeros], [zeros, zeros, ones]])
    return roll_m @ pitch_m @ yaw_m


def _support(normals: np.ndarray, lengths: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Length-weighted agreement [R] of segments with each frame's vanishing directions:
    a segment counts (1 - angle / INLIER_DEGREES) for its best direction."""
    sines = np.abs(np.einsum("nc,rck->rnk", normals, frames)).min(axis=2)
    closeness = np.clip(1.0 - np.degrees(np.arcsin(np.clip(sines, 0, 1))) / INLIER_DEGREES,
                        0.0, None)
    return closeness @ lengths


def manhattan_frame(segments: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rotation [3,3] whose columns are three orthogonal vanishing directions in the camera
    frame (x right, y down, z forward): column 1 the vertical one pointing down (towards the
    floor). A rotation search: pitch within +-PITCH_RANGE, roll within +-ROLL_RANGE degrees,
    any yaw, on a 2 degree grid refined to 0.25 degree, maximising the segment length that
    vanishes at one of the three directions. Identity without segments."""
    if not len(segments):
        return np.eye(3)
    normals = segment_normals(segments, K)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    best = np.zeros(3)
    for step, spans in ((2.0, (PITCH_RANGE, ROLL_RANGE, 45.0)), (0.5, (2.0, 2.0, 2.0)),
                        (0.25, (0.5, 0.5, 0.5))):
        axes = [centre + np.arange(-span, span + step / 2, step)
                for centre, span in zip(best, spans, strict=True)]
        angles = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        scores = _support(normals, lengths, _frames(angles))
        best = angles[int(np.argmax(scores))]
    return _frames(best[None])[0]


def render_faces(rays: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Face index [B,P] (0..5: -x, +x, -y, +y, -z, +z of the box frame) seen along each ray
    [P,3] (box frame) inside boxes with face distances [B,6] from the camera."""
    sides = 2 * np.arange(3) + (rays > 0)  # [P,3]
    inverse = 1.0 / np.maximum(np.abs(rays), 1e-9)
    hits = distances[:, sides] * inverse[None]  # [B,P,3]
    axis = hits.argmin(axis=2)
    return np.take_along_axis(np.broadcast_to(sides, hits.shape), axis[..., None], 2)[..., 0]


def _rays(K: np.ndarray, frame: np.ndarray, height: int, width: int,
          size: tuple[int, int]) -> np.ndarray:
    """Rays [h*w,3] in the box frame through the centres of a size=(h, w) grid over the
    image."""
    h, w = size
    ys = (np.arange(h) + 0.5) * height / h - 0.5
    xs = (np.arange(w) + 0.5) * width / w - 0.5
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    rays = np.hstack([grid, np.ones((len(grid), 1))]) @ np.linalg.inv(K).T
    return rays @ frame


def _boundaries(faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean [B,h,w]: pixels whose face differs from the right or lower neighbour."""
    maps = faces.reshape(-1, *size)
    edges = np.zeros(maps.shape, dtype=bool)
    edges[:, :, :-1] |= maps[:, :, 1:] != maps[:, :, :-1]
    edges[:, :-1, :] |= maps[:, 1:, :] != maps[:, :-1, :]
    return edges


def _line_evidence(segments: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean [h,w] at SCORE_SIZE: pixels within one cell of a detected segment."""
    h, w = SCORE_SIZE
    canvas = np.zeros((h, w), dtype=np.uint8)
    scale = np.array([w / width, h / height] * 2)
    for x1, y1, x2, y2 in (segments + 0.5) * scale - 0.5:
        cv2.line(canvas, (round(x1), round(y1)), (round(x2), round(y2)), 1, 1)
    return cv2.dilate(canvas, np.ones((3, 3), np.uint8)).astype(bool)


def _scores(edges: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    on = (edges & evidence).reshape(len(edges), -1).sum(1)
    off = (edges & ~evidence).reshape(len(edges), -1).sum(1)
    return on - MISS_PENALTY * off


def fit_box(segments: np.ndarray, K: np.ndarray, frame: np.ndarray, height: int,
            width: int, seed: int = 0) -> np.ndarray:
    """Face distances [6] (floor = 1) of the box hypothesis whose face boundaries best
    agree with the segments: random hypotheses, then local refinement."""
    rng = np.random.default_rng(seed)
    rays = _rays(K, frame, height, width, SCORE_SIZE)
    evidence = _line_evidence(segments, height, width)

    def sample(count: int) -> np.ndarray:
        distances = np.exp(rng.uniform(np.log(0.3), np.log(8.0), (count, 6)))
        distances[:, 3] = 1.0  # +y: the floor
        distances[:, 2] = np.exp(rng.uniform(np.log(0.3), np.log(2.5), count))
        return distances

    candidates = sample(HYPOTHESES)
    best, best_score = candidates[0], -np.inf
    for round_index in range(REFINE_ROUNDS + 1):
        scores = _scores(_boundaries(render_faces(rays, candidates), SCORE_SIZE), evidence)
        if scores.max() > best_score:
            best, best_score = candidates[int(scores.argmax())], float(scores.max())
        spread = 0.3 / (round_index + 1)
        candidates = best * np.exp(rng.normal(0.0, spread, (HYPOTHESES // 4, 6)))
        candidates[:, 3] = 1.0
    return best


def face_labels(frame: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """LSUN label (1..5) of each box face 0..5 of ``frame``: +y floor, -y ceiling, the
    visible wall facing the camera most frontal, the others left or right by side."""
    labels = np.array([FRONT, FRONT, CEILING, FLOOR, FRONT, FRONT])
    walls = [face for face in (0, 1, 4, 5) if (faces == face).any()]
    directions = {face: frame[:, face // 2] * (1 if face % 2 else -1) for face in walls}
    if walls:
        front = max(walls, key=lambda face: directions[face][2])
        for face in walls:
            if face != front:
                labels[face] = LEFT if directions[face][0] < directions[front][0] else RIGHT
    return labels


def predict_layout(image: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Surface label map [H,W] uint8 (1..5) of an RGB image [H,W,3] in [0,1]."""
    height, width = image.shape[:2]
    gray = cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    segments = detect_segments(gray)
    frame = manhattan_frame(segments, K)
    box = fit_box(segments, K, frame, height, width)
    faces = render_faces(_rays(K, frame, height, width, (height, width)), box[None])[0]
    return face_labels(frame, faces)[faces].reshape(height, width).astype(np.uint8)


def build_vp(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Vanishing points from LSD segments and K, best box layout against the lines."""

    def predict(batch: dict) -> dict[str, Any]:
        labels = []
        for image, K in zip(batch["image"], batch["K"], strict=True):
            label_map = predict_layout(image.permute(1, 2, 0).cpu().numpy(),
                                       K.cpu().numpy().astype(np.float64))
            labels.append(torch.from_numpy(label_map).long().to(image.device))
        return {"labels": labels}

    return predict


register_baseline("vp-layout", "layout",
                  description="vanishing points (LSD + K, RANSAC) and the box layout that "
                              "best fits the lines (Hedau et al. 2009 style)")(build_vp)
