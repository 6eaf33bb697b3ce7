"""Embedded ``synthetic-shapes``: procedural meshes written as OFF files in ModelNet's layout.

``<class>/{train,test}/<class>_<NNNN>.off`` for the twelve classes of
``bench.synth.shapes.SHAPE_CLASSES`` (numbered across train then test, as ModelNet numbers
its files), 48 train and 16 test meshes per class. Each instance draws its proportions,
then is subdivided to edges <= 0.3 (unit-sphere units), stretched per axis by U(0.5, 1.5)
(anisotropy), displaced per vertex by Gaussian noise (sigma 0.04), rotated about the up
axis z by U(0, 360) degrees and tilted by up to 15 degrees, in 70 % of the cases cut by a
random plane that removes 10-50 % of its faces (partial occlusion), scaled to a radius of
U(0.1, 0.5) m and translated by up to 1 m. Everything is seeded: the build is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d

from bench.registry import EMBEDDED
from bench.synth.shapes import SHAPE_CLASSES, make_shape

SPLIT_SIZES = {"train": 48, "test": 16}
SEED = 2017
MAX_EDGE = 0.3
NOISE_SIGMA = 0.04
MAX_TILT_DEG = 15.0
OCCLUSION_PROBABILITY = 0.7
ANISOTROPY = (0.5, 1.5)
OCCLUDED_FRACTION = (0.1, 0.5)


def write_off(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Write a triangle mesh as an OFF file (vertices [V,3] float, triangles [F,3] int)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    text = (f"OFF\n{len(vertices)} {len(triangles)} 0\n"
            + ("%.6f %.6f %.6f\n" * len(vertices)) % tuple(vertices.ravel())
            + ("3 %d %d %d\n" * len(triangles)) % tuple(triangles.ravel()))
    path.write_text(text, encoding="ascii")


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _tilt(rng: np.random.Generator) -> np.ndarray:
    """Rotation by up to MAX_TILT_DEG about a random horizontal axis (Rodrigues)."""
    phi = rng.uniform(0.0, 2.0 * np.pi)
    axis = np.array([np.cos(phi), np.sin(phi), 0.0])
    angle = np.deg2rad(rng.uniform(0.0, MAX_TILT_DEG))
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def _max_edge(mesh: o3d.geometry.TriangleMesh) -> float:
    v = np.asarray(mesh.vertices)
    t = np.asarray(mesh.triangles)
    edges = v[t] - v[np.roll(t, 1, axis=1)]
    return float(np.linalg.norm(edges, axis=2).max())


def make_instance(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One randomised instance of class ``name``: vertices [V,3] (m), triangles [F,3]."""
    mesh = make_shape(name, rng)
    for _ in range(4):
        if _max_edge(mesh) <= MAX_EDGE:
            break
        mesh = mesh.subdivide_midpoint(1)
    vertices = np.asarray(mesh.vertices) * rng.uniform(*ANISOTROPY, size=3)
    vertices = vertices + rng.normal(0.0, NOISE_SIGMA, size=vertices.shape)
    rotation = _rotation_z(rng.uniform(0.0, 2.0 * np.pi)) @ _tilt(rng)
    vertices = vertices @ rotation.T
    triangles = np.asarray(mesh.triangles)
    if rng.uniform() < OCCLUSION_PROBABILITY:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        depth = vertices[triangles].mean(axis=1) @ direction
        cut = np.quantile(depth, 1.0 - rng.uniform(*OCCLUDED_FRACTION))
        triangles = triangles[depth <= cut]
        used, triangles = np.unique(triangles, return_inverse=True)
        vertices, triangles = vertices[used], triangles.reshape(-1, 3)
    vertices = vertices * rng.uniform(0.1, 0.5) + rng.uniform(-1.0, 1.0, size=3)
    return vertices, triangles


@EMBEDDED.register("synthetic-shapes")
def build_synthetic_shapes(root: Path) -> None:
    """Twelve classes of procedural Open3D meshes, OFF in ModelNet's layout, 576/192 shapes."""
    for class_index, name in enumerate(SHAPE_CLASSES):
        number = 0
        for split_index, (split, count) in enumerate(SPLIT_SIZES.items()):
            folder = root / name / split
            folder.mkdir(parents=True, exist_ok=True)
            for instance in range(count):
                number += 1
                rng = np.random.default_rng([SEED, class_index, split_index, instance])
                vertices, triangles = make_instance(name, rng)
                write_off(folder / f"{name}_{number:04d}.off", vertices, triangles)
