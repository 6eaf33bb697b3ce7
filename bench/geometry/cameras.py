"""Pinhole cameras and projections.

Conventions (DESIGN.md): metres; OpenCV camera frame (x right, y down, z forward); pixel
centres at integer coordinates, so pixel (u, v) looks along K^-1 [u, v, 1]. A camera pose
is world->camera: ``x_cam = R @ x_world + t``. An object pose is object->world (4x4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.geometry.rotations import rotation_matrix

# 3D-R2N2's renderer puts the camera at distance_ratio x this (ShapeNet units).
R2N2_MAX_CAMERA_DIST = 1.75
# fx, fy, cx, cy of the NYU v2 Kinect colour camera at 640x480 (as BTS uses).
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The pinhole matrix K [3,3] (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def intrinsics_from_fov(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """K for a horizontal field of view (degrees), principal point at the image centre."""
    fx = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2.0)
    return intrinsics(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


def look_at(
    eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """World->camera (R [3,3], t [3]) of a camera at ``eye`` looking at ``target``.

    The camera's y axis points away from ``up`` (image y down), z towards the target.
    """
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rotation = np.stack([x, y, z])
    return rotation, -rotation @ eye


def orbit_path(
    target: Sequence[float], radius: float, height: float, frames: int,
    start_deg: float = 0.0, sweep_deg: float = 360.0, up: Sequence[float] = (0.0, 0.0, 1.0),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """World->camera poses on a circle of ``radius`` around ``target`` (z up), looking at it."""
    target = np.asarray(target, dtype=np.float64)
    poses = []
    for angle in np.radians(start_deg + sweep_deg * np.arange(frames) / max(frames, 1)):
        eye = target + np.array([radius * np.cos(angle), radius * np.sin(angle), height])
        poses.append(look_at(eye, target, up))
    return poses


def pose_matrix(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """4x4 rigid transform from R [3,3] and t [3]."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


@dataclass
class Camera:
    """A pinhole camera: K [3,3], image size, world->camera pose (R [3,3], t [3])."""

    K: np.ndarray
    width: int
    height: int
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def extrinsic(self) -> np.ndarray:
        """World->camera 4x4."""
        return pose_matrix(self.R, self.t)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates [3]."""
        return -self.R.T @ self.t


def back_project(depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame points [N,3] (metres) of pixels with depth > 0 (and ``mask``)."""
    keep = depth > 0 if mask is None else (depth > 0) & mask
    rows, cols = np.nonzero(keep)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates [N,2] of camera-frame points [N,3] (OpenCV convention)."""
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def clip_segment_to_image(start: np.ndarray, end: np.ndarray, K: np.ndarray, height: int,
                          width: int, near: float = 0.05
                          ) -> tuple[np.ndarray, np.ndarray, bool, bool] | None:
    """The image of the camera-frame 3D segment start-end (metres) clipped to the plane
    z = ``near`` and to [0,W-1]x[0,H-1]: (p, q, p_kept, q_kept) in pixels, ``*_kept`` False
    where that end was cut (it then lies on the image border); None when no part of it is in
    view."""
    a, b = np.array(start, dtype=np.float64), np.array(end, dtype=np.float64)
    kept = [True, True]
    if a[2] < near and b[2] < near:
        return None
    if a[2] < near or b[2] < near:
        s = (near - a[2]) / (b[2] - a[2])
        cut = a + s * (b - a)
        if a[2] < near:
            a, kept[0] = cut, False
        else:
            b, kept[1] = cut, False
    p, q = (K @ a)[:2] / a[2], (K @ b)[:2] / b[2]
    t0, t1 = 0.0, 1.0
    delta = q - p
    for step, room in ((-delta[0], p[0]), (delta[0], width - 1 - p[0]),
                       (-delta[1], p[1]), (delta[1], height - 1 - p[1])):
        if abs(step) < 1e-12:
            if room < 0:
                return None
            continue
        t = room / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    if t0 >= t1:
        return None
    return p + t0 * delta, p + t1 * delta, kept[0] and t0 == 0.0, kept[1] and t1 == 1.0


def camera_from_metadata(azimuth: float, elevation: float, in_plane: float, distance_ratio:
                         float, fov: float, width: int, height: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K [3,3], R [3,3], t [3] (ShapeNet frame -> OpenCV camera) of one R2N2 view."""
    az, el = np.radians(azimuth), np.radians(elevation)
    distance = distance_ratio * R2N2_MAX_CAMERA_DIST
    eye = distance * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    rotation, translation = look_at(eye, (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    roll = rotation_matrix((0.0, 0.0, 1.0), in_plane)
    return intrinsics_from_fov(width, height, fov), roll @ rotation, roll @ translation
