"""Procedural 3D shapes as Open3D triangle meshes: the classes of the embedded shape sets.

Public API (shared by the point-cloud and single-view shape families):

- ``SHAPE_CLASSES``: the class names, in label order.
- ``make_shape(name, rng)``: one instance of a class as an ``open3d.geometry.TriangleMesh``
  with per-instance proportions drawn from ``rng``; centred (bounding-box centre at the
  origin), scaled so that its farthest vertex lies 1 m from the origin (the unit sphere,
  as ModelNet clouds are normalised), axis of symmetry along +z where it has one. Every
  class is a closed watertight surface except ``mobius`` (a one-sided strip).
- ``random_rotation(rng)``: a uniformly random rotation matrix [3,3].

Meshes carry no normals; call ``compute_vertex_normals()`` where needed. Surfaces of
revolution come from one lathe routine so that they are watertight by construction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import open3d as o3d

LATHE_RESOLUTION = 32
PROFILE_STEP = 0.2


def _mesh(vertices: np.ndarray, triangles: np.ndarray) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.ascontiguousarray(vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.ascontiguousarray(triangles, dtype=np.int32)),
    )


def lathe(radius: np.ndarray, height: np.ndarray,
          resolution: int = LATHE_RESOLUTION) -> o3d.geometry.TriangleMesh:
    """A closed surface of revolution about z from a profile running pole to pole.

    ``radius`` [M] and ``height`` [M] (m) trace the profile from the bottom pole
    (``radius[0] == 0``) to the top pole (``radius[-1] == 0``); the inner M-2 points become
    rings of ``resolution`` vertices. Faces are oriented outwards when height increases
    along the profile.
    """
    radius = np.asarray(radius, dtype=np.float64)
    height = np.asarray(height, dtype=np.float64)
    if radius[0] != 0 or radius[-1] != 0 or len(radius) < 3:
        raise ValueError("a lathe profile needs >= 3 points and must start and end on the axis")
    rings = len(radius) - 2
    angle = np.linspace(0.0, 2.0 * np.pi, resolution, endpoint=False)
    ring_r, ring_z = radius[1:-1, None], height[1:-1, None]
    ring_vertices = np.stack([ring_r * np.cos(angle), ring_r * np.sin(angle),
                              np.broadcast_to(ring_z, ring_r.shape[:1] + angle.shape)], axis=-1)
    bottom, top = 0, 1
    vertices = np.concatenate([[[0.0, 0.0, height[0]], [0.0, 0.0, height[-1]]],
                               ring_vertices.reshape(-1, 3)])
    j = np.arange(resolution)
    k = (j + 1) % resolution
    faces = [np.stack([np.full(resolution, bottom), 2 + k, 2 + j], axis=1)]
    for ring in range(rings - 1):
        a, b = 2 + ring * resolution, 2 + (ring + 1) * resolution
        faces.append(np.stack([a + j, a + k, b + k], axis=1))
        faces.append(np.stack([a + j, b + k, b + j], axis=1))
    last = 2 + (rings - 1) * resolution
    faces.append(np.stack([np.full(resolution, top), last + j, last + k], axis=1))
    return _mesh(vertices, np.concatenate(faces))


def _arc(centre_z: float, r: float, start: float, stop: float, steps: int) -> np.ndarray:
    """Points (radius, height) on a circle of radius r about (0, centre_z), angles in rad."""
    theta = np.linspace(start, stop, steps)
    return np.stack([r * np.cos(theta), centre_z + r * np.sin(theta)], axis=1)


def _profile(points: list[np.ndarray | list[list[float]]],
             max_step: float = PROFILE_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Join profile pieces into (radius, height), dropping repeats and splitting every
    segment longer than ``max_step`` so that no face of the lathe is much larger than others."""
    stacked = np.concatenate([np.asarray(p, dtype=np.float64) for p in points])
    keep = np.ones(len(stacked), dtype=bool)
    keep[1:] = np.abs(np.diff(stacked, axis=0)).sum(axis=1) > 1e-12
    stacked = stacked[keep]
    dense = [stacked[:1]]
    for start, stop in itertools.pairwise(stacked):
        steps = max(1, int(np.ceil(np.linalg.norm(stop - start) / max_step)))
        t = np.arange(1, steps + 1)[:, None] / steps
        dense.append(start + t * (stop - start))
    stacked = np.concatenate(dense)
    stacked[np.abs(stacked[:, 0]) < 1e-12, 0] = 0.0
    return stacked[:, 0], stacked[:, 1]


def _box(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    w, h, d = rng.uniform(0.6, 1.0, size=3)
    return o3d.geometry.TriangleMesh.create_box(w, h, d)


def _sphere(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=16)


def _hemisphere(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    r, z = _profile([[[0.0, 0.0]], _arc(0.0, 1.0, 0.0, np.pi / 2, 12)])
    return lathe(r, z)


def _cylinder(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    height = rng.uniform(1.2, 2.5)
    r, z = _profile([[[0.0, 0.0], [1.0, 0.0], [1.0, height], [0.0, height]]])
    return lathe(r, z)


def _cone(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    height = rng.uniform(1.2, 2.5)
    r, z = _profile([[[0.0, 0.0], [1.0, 0.0], [0.0, height]]])
    return lathe(r, z)


def _capsule(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    length = rng.uniform(1.0, 2.5)
    r, z = _profile([_arc(0.0, 1.0, -np.pi / 2, 0.0, 8),
                     _arc(length, 1.0, 0.0, np.pi / 2, 8)])
    return lathe(r, z)


def _arrow(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    shaft_r = rng.uniform(0.12, 0.22)
    shaft_len = rng.uniform(1.5, 2.5)
    head_r = shaft_r * rng.uniform(2.0, 2.8)
    head_len = rng.uniform(0.6, 1.0)
    r, z = _profile([[[0.0, 0.0], [shaft_r, 0.0], [shaft_r, shaft_len], [head_r, shaft_len],
                      [0.0, shaft_len + head_len]]])
    return lathe(r, z)


def _torus(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    tube = rng.uniform(0.15, 0.4)
    return o3d.geometry.TriangleMesh.create_torus(1.0, tube, radial_resolution=30,
                                                  tubular_resolution=16)


def _tetrahedron(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_tetrahedron(1.0)


def _octahedron(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_octahedron(1.0)


def _icosahedron(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_icosahedron(1.0)


def _mobius(rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_mobius(
        length_split=60, width_split=6, twists=1, radius=1.0, flatness=1.0,
        width=rng.uniform(0.4, 0.8), scale=1.0)


_MAKERS: dict[str, Callable[[np.random.Generator], o3d.geometry.TriangleMesh]] = {
    "arrow": _arrow,
    "box": _box,
    "capsule": _capsule,
    "cone": _cone,
    "cylinder": _cylinder,
    "hemisphere": _hemisphere,
    "icosahedron": _icosahedron,
    "mobius": _mobius,
    "octahedron": _octahedron,
    "sphere": _sphere,
    "tetrahedron": _tetrahedron,
    "torus": _torus,
}

SHAPE_CLASSES: list[str] = sorted(_MAKERS)
WATERTIGHT: frozenset[str] = frozenset(SHAPE_CLASSES) - {"mobius"}


def normalise_mesh(mesh: o3d.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    """Translate the bounding-box centre to the origin and scale the farthest vertex to 1 m."""
    vertices = np.asarray(mesh.vertices)
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    vertices = vertices - centre
    extent = np.linalg.norm(vertices, axis=1).max()
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("cannot normalise a degenerate mesh (all vertices coincide)")
    mesh.vertices = o3d.utility.Vector3dVector(vertices / extent)
    return mesh


def make_shape(name: str, rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    """One instance of class ``name`` with proportions drawn from ``rng``, in the unit sphere.

    The mesh is centred (bounding-box centre at the origin) and scaled so its farthest
    vertex is 1 m from the origin; it is in canonical orientation (rotate it yourself, e.g.
    with ``random_rotation``). Raises ValueError for an unknown class name.
    """
    if name not in _MAKERS:
        raise ValueError(f"unknown shape class {name!r}; valid: {', '.join(SHAPE_CLASSES)}")
    mesh = _MAKERS[name](rng)
    mesh.remove_duplicated_vertices()
    return normalise_mesh(mesh)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix [3,3] drawn uniformly from SO(3) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
