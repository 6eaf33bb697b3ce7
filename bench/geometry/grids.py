"""Occupancy grids over a box: cell centres, trilinear inside tests, marching cubes."""

from __future__ import annotations

import numpy as np


def grid_occupancy(grid: np.ndarray, bounds: np.ndarray, points: np.ndarray,
                   level: float = 0.5) -> np.ndarray:
    """Trilinearly interpolated occupancy of ``grid`` [R,R,R] over ``bounds`` at ``points``.

    Cell (i,j,k) holds the value at its centre; beyond the grid the value is 0. Returns
    [N] bool: interpolated value >= ``level``.
    """
    from scipy.ndimage import map_coordinates

    bounds = np.asarray(bounds, dtype=np.float64)
    cell = (bounds[1] - bounds[0]) / np.asarray(grid.shape, dtype=np.float64)
    coords = (np.asarray(points, dtype=np.float64) - bounds[0]) / cell - 0.5
    values = map_coordinates(np.asarray(grid, dtype=np.float32), coords.T, order=1,
                             mode="grid-constant", cval=0.0)
    return values >= level


def grid_to_mesh(grid: np.ndarray, bounds: np.ndarray,
                 level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes (scikit-image) of an occupancy grid [R,R,R] over ``bounds`` [2,3].

    The grid is padded with one empty cell on every side so the surface is closed. Returns
    vertices [V,3] (same units as ``bounds``) and faces [F,3]; both empty when no cell
    reaches ``level`` or every cell does not fall below it.
    """
    from skimage.measure import marching_cubes

    grid = np.asarray(grid, dtype=np.float32)
    if grid.max(initial=0.0) < level:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    padded = np.pad(grid, 1, constant_values=0.0)
    verts, faces, _, _ = marching_cubes(padded, level=level)
    bounds = np.asarray(bounds, dtype=np.float64)
    cell = (bounds[1] - bounds[0]) / np.asarray(grid.shape, dtype=np.float64)
    verts = bounds[0] + (verts.astype(np.float64) - 1.0 + 0.5) * cell
    return verts, faces.astype(np.int64)


def uniform_cube_points(n: int, side: float, padding: float, seed: int) -> np.ndarray:
    """``n`` points uniform in the cube of side ``side * (1 + padding)`` centred at 0."""
    half = 0.5 * side * (1.0 + padding)
    return np.random.default_rng(seed).uniform(-half, half, size=(n, 3))


def cell_centres(bounds: np.ndarray, resolution: int) -> np.ndarray:
    """Centres [R^3,3] of the cells of an R^3 grid over ``bounds`` [2,3], in (i,j,k) order."""
    bounds = np.asarray(bounds, dtype=np.float64)
    axes = [bounds[0, d] + (np.arange(resolution) + 0.5) * (bounds[1, d] - bounds[0, d])
            / resolution for d in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
