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
   others 2 (left) or 3 (right) by side.
5. The LSUN type and corners of the box (``box_layout``): its room edges projected and
   clipped to the image as the embedded set defines them. The best hypothesis whose view
   is an LSUN layout gives labels, type and corners (``fallback_layout`` if none is).
No training; deterministic (fixed sampling seed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from bench.families.layout import CEILING, FLOOR, FRONT, LEFT, RIGHT, level_wall_layout
from bench.geometry.cameras import clip_segment_to_image
from bench.models import register_baseline

MIN_SEGMENT_PX = 20.0
INLIER_DEGREES = 2.0
PITCH_RANGE = 16.0
ROLL_RANGE = 6.0
SCORE_SIZE = (60, 80)
LABEL_FIT_SIZE = (30, 40)
HYPOTHESES = 400
REFINE_ROUNDS = 3
MISS_PENALTY = 0.5
LAYOUT_TRIES = 200
NEAR = 0.05
WALL_FACES = (0, 1, 4, 5)


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
    [P,3] (box frame) inside boxes with face distances [B,6] from the camera: the nearest of
    the three faces the ray heads for, the first on ties (as ``argmin``), compared as [B,P]
    arrays (``argmin`` over a last axis of three took 17 ms for 200 boxes of 1,200 rays)."""
    sides = 2 * np.arange(3) + (rays > 0)  # [P,3]
    inverse = 1.0 / np.maximum(np.abs(rays), 1e-9)
    x, y, z = (distances[:, sides[:, axis]] * inverse[:, axis] for axis in range(3))
    return np.where((x <= y) & (x <= z), sides[:, 0], np.where(y <= z, sides[:, 1], sides[:, 2]))


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
    """Face distances [N,6] (floor = 1) of every box hypothesis tried, best first: ranked by
    how well their face boundaries agree with the segments (random hypotheses, then local
    refinement around the best so far; ties keep the order they were tried in)."""
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
    tried, tried_scores = [], []
    for round_index in range(REFINE_ROUNDS + 1):
        scores = _scores(_boundaries(render_faces(rays, candidates), SCORE_SIZE), evidence)
        tried.append(candidates)
        tried_scores.append(scores)
        if scores.max() > best_score:
            best, best_score = candidates[int(scores.argmax())], float(scores.max())
        spread = 0.3 / (round_index + 1)
        candidates = best * np.exp(rng.normal(0.0, spread, (HYPOTHESES // 4, 6)))
        candidates[:, 3] = 1.0
    order = np.argsort(-np.concatenate(tried_scores), kind="stable")
    return np.concatenate(tried)[order]


def _vertex(frame: np.ndarray, distances: np.ndarray, x_face: int, z_face: int,
            y: float) -> np.ndarray:
    """Camera-frame point of the box at the corner of wall faces ``x_face`` (0/1) and
    ``z_face`` (4/5), at box height ``y``."""
    x = -distances[0] if x_face == 0 else distances[1]
    z = -distances[4] if z_face == 4 else distances[5]
    return frame @ np.array([x, y, z])


def _corner_faces(a: int, b: int) -> tuple[int, int] | None:
    """(x face, z face) of two adjacent walls, None for opposite walls."""
    if (a < 2) == (b < 2):
        return None
    return (a, b) if a < 2 else (b, a)


def box_layout(K: np.ndarray, frame: np.ndarray, distances: np.ndarray, faces: np.ndarray,
               height: int, width: int) -> tuple[int, np.ndarray] | None:
    """LSUN type and corners [N,2] (pixels, LSUN order) of the box ``distances`` [6] seen
    in ``frame`` (as in ``render_faces``) in an HxW image, given its face map ``faces``
    [h,w] on a grid over the image (which walls show, left to right); None when the view
    is not one of LSUN's 11 layouts. The corners follow the embedded set's definition
    (``bench.synth.synthetic_rooms``): room edges clipped to the image, far ends on its
    border."""
    ceiling_y, floor_y = -distances[2], distances[3]
    walls = [face for face in WALL_FACES if (faces == face).any()]
    walls.sort(key=lambda face: np.nonzero(faces == face)[1].mean())

    def clip(start: np.ndarray, end: np.ndarray):
        return clip_segment_to_image(start, end, K, height, width, NEAR)

    if len(walls) == 1:
        wall = walls[0]
        ends = [(wall, z) for z in (4, 5)] if wall < 2 else [(x, wall) for x in (0, 1)]
        return level_wall_layout(*(clip(*(_vertex(frame, distances, *end, y) for end in ends))
                                   for y in (ceiling_y, floor_y)))
    if len(walls) not in (2, 3):
        return None
    corners = [_corner_faces(a, b) for a, b in itertools.pairwise(walls)]
    if any(c is None for c in corners):
        return None
    edges = [clip(_vertex(frame, distances, *c, ceiling_y), _vertex(frame, distances, *c, floor_y))
             for c in corners]
    if any(e is None for e in edges):
        return None

    def far(wall: int, corner: tuple[int, int], y: float) -> np.ndarray | None:
        x_face, z_face = corner
        other = (x_face, 9 - z_face) if wall == x_face else (1 - x_face, z_face)
        seg = clip(_vertex(frame, distances, *other, y), _vertex(frame, distances, *corner, y))
        return None if seg is None or seg[2] else seg[0]

    top_in, bottom_in = [e[2] for e in edges], [e[3] for e in edges]
    first, last = walls[0], walls[-1]
    c0, c1 = corners[0], corners[-1]
    if len(walls) == 3:
        ab, bc = edges
        if all(top_in) and all(bottom_in):
            kind, points = 0, [ab[0], far(first, c0, ceiling_y), ab[1], far(first, c0, floor_y),
                               bc[1], far(last, c1, floor_y), bc[0], far(last, c1, ceiling_y)]
        elif all(bottom_in) and not any(top_in):
            kind, points = 1, [ab[1], ab[0], far(first, c0, floor_y), bc[1], bc[0],
                               far(last, c1, floor_y)]
        elif all(top_in) and not any(bottom_in):
            kind, points = 2, [ab[0], far(first, c0, ceiling_y), ab[1], bc[0],
                               far(last, c1, ceiling_y), bc[1]]
        elif not any(top_in) and not any(bottom_in):
            kind, points = 7, [ab[0], ab[1], bc[0], bc[1]]
        else:
            return None
    else:
        (ab,) = edges
        if top_in[0] and bottom_in[0]:
            kind, points = 5, [ab[0], far(first, c0, ceiling_y), far(last, c0, ceiling_y),
                               ab[1], far(first, c0, floor_y), far(last, c0, floor_y)]
        elif top_in[0]:
            kind, points = 3, [ab[0], far(first, c0, ceiling_y), ab[1], far(last, c0, ceiling_y)]
        elif bottom_in[0]:
            kind, points = 4, [ab[1], far(first, c0, floor_y), ab[0], far(last, c0, floor_y)]
        else:
            kind, points = 10, [ab[0], ab[1]]
    if any(p is None for p in points):
        return None
    return kind, np.array(points, dtype=np.float64)


def surface_classes(rays: np.ndarray, frames: np.ndarray, distances: np.ndarray
                    ) -> np.ndarray:
    """What each camera-frame ray [P,3] meets first inside boxes [B,6] seen in frames
    [B,3,3] (as ``render_faces``): [B,P] 0 ceiling, 1 floor, 2 a wall. Each box axis's
    ray component is summed over the camera axes in turn, as ``einsum`` sums them (the
    same bits), as [B,P] outer products: 2-3x faster than ``einsum``'s [B,P,3]."""
    hits, ahead = [], []
    for axis in range(3):
        local = np.multiply.outer(frames[:, 0, axis], rays[:, 0])
        local += np.multiply.outer(frames[:, 1, axis], rays[:, 1])
        local += np.multiply.outer(frames[:, 2, axis], rays[:, 2])
        ahead.append(local > 0)
        inverse = 1.0 / np.maximum(np.abs(local), 1e-9)
        hits.append(np.where(ahead[axis], distances[:, 2 * axis + 1, None],
                             distances[:, 2 * axis, None]) * inverse)
    return np.where(np.minimum(hits[0], hits[2]) < hits[1], 2, ahead[1].astype(np.int64))


def fit_box_to_labels(labels: np.ndarray, K: np.ndarray, seed: int = 0
                      ) -> tuple[int, np.ndarray] | None:
    """LSUN type and corners [N,2] of the upright box (any yaw, pitch within +-PITCH_RANGE,
    roll within +-ROLL_RANGE degrees, sampled face distances) whose ceiling / floor / wall
    map agrees best with a surface label map [H,W] (1..5; walls are not told apart, so
    one that shows a single wall label still gets its room corners from the kinks of its
    ceiling and floor boundaries), on a LABEL_FIT_SIZE grid: random hypotheses, then
    refinement around the best. None when the best box shows no LSUN layout."""
    height, width = labels.shape
    rows = np.round((np.arange(LABEL_FIT_SIZE[0]) + 0.5) * height / LABEL_FIT_SIZE[0] - 0.5)
    cols = np.round((np.arange(LABEL_FIT_SIZE[1]) + 0.5) * width / LABEL_FIT_SIZE[1] - 0.5)
    surface = np.array([-1, 2, 2, 2, 1, 0])  # label -> ceiling 0, floor 1, wall 2 (0: none)
    target = surface[labels[np.ix_(rows.astype(int), cols.astype(int))]].ravel()
    rays = _rays(K, np.eye(3), height, width, LABEL_FIT_SIZE)
    rng = np.random.default_rng(seed)
    angles = np.stack([rng.uniform(-PITCH_RANGE, PITCH_RANGE, HYPOTHESES),
                       rng.uniform(-ROLL_RANGE, ROLL_RANGE, HYPOTHESES),
                       rng.uniform(-45.0, 45.0, HYPOTHESES)], axis=1)
    distances = np.exp(rng.uniform(np.log(0.3), np.log(8.0), (HYPOTHESES, 6)))
    distances[:, 2] = np.exp(rng.uniform(np.log(0.3), np.log(2.5), HYPOTHESES))
    distances[:, 3] = 1.0
    best_score, best_angles, best_box = -1, angles[0], distances[0]
    for round_index in range(REFINE_ROUNDS + 2):
        scores = (surface_classes(rays, _frames(angles), distances) == target).sum(1)
        if scores.max() > best_score:
            index = int(scores.argmax())
            best_score, best_angles, best_box = int(scores[index]), angles[index], distances[index]
        shrink = round_index + 1
        angles = best_angles + rng.normal(0.0, (4.0 / shrink, 2.0 / shrink, 6.0 / shrink),
                                          (HYPOTHESES // 2, 3))
        distances = best_box * np.exp(rng.normal(0.0, 0.3 / shrink, (HYPOTHESES // 2, 6)))
        distances[:, 3] = 1.0
    frame = _frames(best_angles[None])[0]
    faces = render_faces(_rays(K, frame, height, width, (height, width)), best_box[None])[0]
    return box_layout(K, frame, best_box, faces.reshape(height, width), height, width)


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


def predict_layout(image: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(surface label map [H,W] uint8 (1..5), LSUN type, corners [N,2] pixels) of an RGB
    image [H,W,3] in [0,1]: those of the best-scoring box hypothesis whose view is one of
    LSUN's layouts (``fallback_layout`` with the best box's labels when none of the first
    LAYOUT_TRIES is)."""
    height, width = image.shape[:2]
    gray = cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    segments = detect_segments(gray)
    frame = manhattan_frame(segments, K)
    boxes = fit_box(segments, K, frame, height, width)
    rays = _rays(K, frame, height, width, (height, width))
    faces = render_faces(rays, boxes[:1])[0]
    labels = face_labels(frame, faces)[faces].reshape(height, width).astype(np.uint8)
    layout = box_layout(K, frame, boxes[0], faces.reshape(height, width), height, width)
    if layout is not None:
        return labels, *layout
    # Further hypotheses are checked on the scoring grid (which walls show is all it takes).
    coarse = render_faces(_rays(K, frame, height, width, SCORE_SIZE), boxes[1:LAYOUT_TRIES])
    for box, box_faces in zip(boxes[1:LAYOUT_TRIES], coarse, strict=True):
        layout = box_layout(K, frame, box, box_faces.reshape(SCORE_SIZE), height, width)
        if layout is not None:
            faces = render_faces(rays, box[None])[0]
            labels = face_labels(frame, faces)[faces].reshape(height, width).astype(np.uint8)
            return labels, *layout
    return labels, *fallback_layout(height, width)


def fallback_layout(height: int, width: int) -> tuple[int, np.ndarray]:
    """A wall straight ahead (LSUN type 6), its ceiling and floor lines level at a quarter
    and three quarters of the image height: the layout given when no box hypothesis shows
    one of LSUN's layouts (e.g. a frame that sees one wall only)."""
    top, bottom = (height - 1) / 4, 3 * (height - 1) / 4
    return 6, np.array([[0.0, top], [width - 1.0, top], [0.0, bottom], [width - 1.0, bottom]])


def build_vp(spec: Any, info: Any, device: torch.device) -> Callable[[dict], Any]:
    """Vanishing points from LSD segments and K, best box layout against the lines: its
    labels, LSUN type and corners."""

    def predict(batch: dict) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"labels": [], "type": [], "corners": []}
        for image, K in zip(batch["image"], batch["K"], strict=True):
            label_map, kind, corners = predict_layout(image.permute(1, 2, 0).cpu().numpy(),
                                                      K.cpu().numpy().astype(np.float64))
            out["labels"].append(torch.from_numpy(label_map).long().to(image.device))
            out["type"].append(kind)
            out["corners"].append(torch.from_numpy(corners))
        return out

    return predict


register_baseline("vp-layout", "layout",
                  description="vanishing points (LSD + K, RANSAC) and the box layout that "
                              "best fits the lines (Hedau et al. 2009 style)")(build_vp)
