"""Triangle meshes (vertices [V,3], faces [F,3]): checks, areas and normals, surface
sampling, watertightness, inside tests and normalisation into the unit cube."""

from __future__ import annotations

import numpy as np

from bench.errors import ContractError, DataError


def check_mesh(vertices: np.ndarray, faces: np.ndarray, what: str = "mesh") -> None:
    """Raise ContractError for NaN vertices or faces indexing past the vertex list."""
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ContractError(f"{what}: vertices must be [V,3], got {list(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ContractError(f"{what}: faces must be [F,3] triangles, got {list(faces.shape)}")
    if not np.isfinite(vertices).all():
        raise ContractError(f"{what}: {int((~np.isfinite(vertices)).any(1).sum())} vertices "
                            "are NaN or infinite")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ContractError(f"{what}: faces index vertex {int(faces.max())} (min "
                            f"{int(faces.min())}), but there are {len(vertices)} vertices")


def face_areas_normals(vertices: np.ndarray,
                       faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle areas [F] and unit normals [F,3] (zero for degenerate triangles)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(norm, 1e-30)[:, None]
    return 0.5 * norm, normals


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly distributed over a mesh's area, with their face normals.

    Faces are drawn with probability proportional to their area, points uniformly inside
    each face (as trimesh's ``sample_surface`` does for Occupancy Networks). Returns points
    [n,3] and unit normals [n,3]; both empty when the mesh has no area.
    """
    if len(faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    areas, normals = face_areas_normals(vertices, faces)
    total = areas.sum()
    if not total > 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    cumulative = np.cumsum(areas)
    face = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    face = np.minimum(face, len(faces) - 1)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    tri = faces[face]
    a = vertices[tri[:, 0]]
    points = a + u[:, None] * (vertices[tri[:, 1]] - a) + v[:, None] * (vertices[tri[:, 2]] - a)
    return points, normals[face]


def is_watertight(faces: np.ndarray) -> bool:
    """True when every undirected edge is shared by exactly two triangles (closed, manifold)."""
    if len(faces) == 0:
        return False
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool((counts == 2).all())


def mesh_occupancy(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside test [N] bool of ``points`` [N,3] for a watertight mesh (Open3D raycasting)."""
    import open3d as o3d

    if len(faces) == 0:
        return np.zeros(len(points), dtype=bool)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)))
    inside = scene.compute_occupancy(o3d.core.Tensor(np.ascontiguousarray(points,
                                                                          dtype=np.float32)))
    return inside.numpy().astype(bool)


def unit_cube_normalisation(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre [3], scale) mapping x to ``(x - centre) * scale``: bbox centred, longest side 1."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    side = float((hi - lo).max())
    if not side > 0:
        raise DataError("cannot normalise a degenerate ground-truth mesh (zero extent)")
    return (lo + hi) / 2.0, 1.0 / side
