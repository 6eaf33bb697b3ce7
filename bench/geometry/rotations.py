"""Rotations [3,3] and the symmetry transformations of BOP objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def rotation_matrix(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """Rotation [3,3] of ``angle_deg`` degrees about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    angle = np.radians(angle_deg)
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation [3,3] (from a random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def symmetry_transformations(info: dict[str, Any], max_sym_disc_step: float = 0.01,
                             unit: float = 1.0) -> np.ndarray:
    """BOP symmetry transformations [S,4,4] of a models_info entry (identity first).

    Continuous symmetries are discretised into ceil(pi / max_sym_disc_step) rotations
    (bop_toolkit's ``get_symmetry_transformations``) and composed with every discrete one.
    ``unit`` scales translations (0.001: millimetres in the file -> metres).
    """
    discrete = [np.eye(4)]
    for values in info.get("symmetries_discrete", []):
        matrix = np.asarray(values, dtype=np.float64).reshape(4, 4).copy()
        matrix[:3, 3] *= unit
        discrete.append(matrix)
    continuous = []
    for sym in info.get("symmetries_continuous", []):
        axis = np.asarray(sym["axis"], dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        offset = np.asarray(sym["offset"], dtype=np.float64) * unit
        steps = int(np.ceil(np.pi / max_sym_disc_step))
        skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        for index in range(steps):
            angle = index * 2.0 * np.pi / steps
            rotation = np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew
            matrix = np.eye(4)
            matrix[:3, :3] = rotation
            matrix[:3, 3] = offset - rotation @ offset
            continuous.append(matrix)
    if not continuous:
        return np.stack(discrete)
    return np.stack([c @ d for d in discrete for c in continuous])
