"""Point cloud files (.ply, .pcd, .xyz, .xyzn, .pts), read and written with Open3D."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import DataError

POINT_CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".pts")


def read_point_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud file (.ply, .pcd, .xyz, .xyzn, .pts) with Open3D.

    Returns points [N,3] float64 and normals [N,3] (or None when the file has none).
    An unreadable or empty file, or NaN/Inf coordinates, raise DataError.
    """
    import open3d as o3d

    if not path.is_file():
        raise DataError(f"point cloud file {path} does not exist")
    if path.suffix.lower() not in POINT_CLOUD_SUFFIXES:
        raise DataError(f"{path}: unsupported point cloud format "
                        f"(use one of {', '.join(POINT_CLOUD_SUFFIXES)} or .off meshes)")
    cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points, dtype=np.float64)
    if len(points) == 0:
        raise DataError(f"{path} holds no points (empty or unreadable by Open3D)")
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points).all(axis=1)).sum())
        raise DataError(f"{path}: {bad} points have NaN or infinite coordinates")
    normals = np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None
    return points, normals


def write_point_cloud(path: Path, points: np.ndarray, normals: np.ndarray | None = None) -> None:
    """Write points [N,3] (and normals [N,3]) to .ply, .pcd, .xyz, .xyzn or .pts via Open3D."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_point_cloud(str(path), cloud):
        raise DataError(f"Open3D could not write {path}")
