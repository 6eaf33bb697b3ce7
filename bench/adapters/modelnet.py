"""ModelNet40 / ModelNet10 in both common layouts, and point-cloud file I/O through Open3D.

Layouts (detected from what ``root`` holds):

- HDF5 (``modelnet40_ply_hdf5_2048``, PointNet's release): ``ply_data_{train,test}N.h5``
  with ``data`` [S,2048,3] float32, ``label`` [S,1] uint8, optional ``normal`` [S,2048,3],
  and ``shape_names.txt`` (one class per line, label order). The clouds are already
  centred and scaled to the unit sphere; the first ``num_points`` points are used, as
  PointNet's evaluation does.
- OFF meshes (the Princeton release, ``ModelNet40.zip``): ``<class>/{train,test}/<name>.off``;
  classes are the class folders in sorted order (ModelNet's label order). Each mesh is
  sampled to ``num_points`` points with Open3D (``uniform``: area-weighted; ``poisson``:
  Poisson-disk elimination), seeded per shape, then centred on the points' centroid and
  scaled so the farthest point is at distance 1 (the unit sphere). The same folders may
  also hold point clouds (``.ply``, ``.pcd``, ``.xyz``, ``.xyzn``, ``.pts``) instead of meshes.

``root`` may also be the folder that contains ``ModelNet40/``, ``ModelNet10/`` or
``modelnet40_ply_hdf5_2048/``. Samples: ``id``, ``points`` float32 [N,3], ``label``,
``normals`` [N,3] when ``normals=True``, and the test-time voting settings ``votes`` and
``up_axis`` (0=x, 1=y, 2=z; z for the OFF layout, y for the HDF5 release).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.off import read_off
from bench.formats.ply import POINT_CLOUD_SUFFIXES, read_point_cloud
from bench.registry import ADAPTERS

HOW_TO_GET = (
    "download ModelNet40.zip (https://modelnet.cs.princeton.edu) or "
    "modelnet40_ply_hdf5_2048.zip (PointNet's release), unpack it and pass "
    "--set dataset.root=DIR"
)
SHAPE_SUFFIXES = (".off", *POINT_CLOUD_SUFFIXES)
SAMPLING_METHODS = ("uniform", "poisson")
AXES = {"x": 0, "y": 1, "z": 2}
SPLITS = ("train", "test")


def normalise_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre points [N,3] on their centroid and scale the farthest one to distance 1."""
    centred = points - points.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    return centred / radius if radius > 0 else centred


def sample_mesh(vertices: np.ndarray, triangles: np.ndarray, num_points: int,
                method: str = "uniform", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``num_points`` surface points and their face normals from a triangle mesh.

    ``uniform``: triangles chosen with probability proportional to area, uniform
    barycentric coordinates; ``poisson``: Yuksel's sample elimination from 5x as many
    uniform samples. Open3D's generator is seeded with ``seed``. Empty or zero-area meshes
    raise ValueError.
    """
    if len(triangles) == 0:
        raise ValueError("the mesh has no faces")
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(triangles.astype(np.int32)))
    if mesh.get_surface_area() <= 0:
        raise ValueError("the mesh has zero surface area")
    o3d.utility.random.seed(seed)
    if method == "poisson":
        cloud = mesh.sample_points_poisson_disk(num_points, init_factor=5,
                                                use_triangle_normal=True)
    else:
        cloud = mesh.sample_points_uniformly(num_points, use_triangle_normal=True)
    return np.asarray(cloud.points), np.asarray(cloud.normals)


def resample_points(points: np.ndarray, num_points: int, rng: np.random.Generator,
                    keep_order: bool = False) -> np.ndarray:
    """Indices choosing ``num_points`` of ``len(points)`` points.

    With enough points: the first ``num_points`` (``keep_order``) or a random subset without
    replacement. With fewer: every point once, then random repeats (sampling with
    replacement for the shortfall).
    """
    n = len(points)
    if n >= num_points:
        return np.arange(num_points) if keep_order else np.sort(
            rng.choice(n, num_points, replace=False))
    return np.concatenate([np.arange(n), rng.choice(n, num_points - n, replace=True)])


def _shape_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def _find_h5_folder(root: Path, split: str) -> Path | None:
    for folder in (root, root / "modelnet40_ply_hdf5_2048"):
        if folder.is_dir() and any(folder.glob(f"ply_data_{split}*.h5")):
            return folder
    return None


def _find_off_folder(root: Path, split: str) -> Path | None:
    for folder in (root, root / "ModelNet40", root / "ModelNet10"):
        if folder.is_dir() and any((d / split).is_dir() for d in folder.iterdir() if d.is_dir()):
            return folder
    return None


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


@ADAPTERS.register("modelnet40")
class ModelNetDataset(BenchDataset):
    """ModelNet40/10 (HDF5 or OFF layout) and sets written like it; point clouds per shape."""

    def __init__(self, root: Path, split: str = "test", num_points: int = 1024,
                 sampling: str = "uniform", seed: int = 0, normals: bool = False,
                 votes: int = 1, up_axis: str | None = None,
                 num_classes: int | None = None) -> None:
        if split not in SPLITS:
            raise DataError(f"ModelNet split must be one of {list(SPLITS)}, got {split!r}")
        if int(num_points) < 1:
            raise DataError(f"num_points must be >= 1, got {num_points}")
        if sampling not in SAMPLING_METHODS:
            raise DataError(f"sampling must be one of {list(SAMPLING_METHODS)}, got {sampling!r}")
        if int(votes) < 1:
            raise DataError(f"votes must be >= 1, got {votes}")
        if up_axis is not None and up_axis not in AXES:
            raise DataError(f"up_axis must be one of {list(AXES)}, got {up_axis!r}")
        self.num_points = int(num_points)
        self.sampling = sampling
        self.seed = int(seed)
        self.with_normals = bool(normals)
        self.votes = int(votes)
        if not root.exists():
            raise DataError(f"ModelNet data root {root} does not exist", HOW_TO_GET)
        h5_folder = _find_h5_folder(root, split)
        off_folder = None if h5_folder else _find_off_folder(root, split)
        if h5_folder is not None:
            self.layout = "hdf5"
            class_names, files = self._load_h5(h5_folder, split)
            default_up = "y"
        elif off_folder is not None:
            self.layout = "off"
            class_names, files = self._index_off(off_folder, split)
            default_up = "z"
        else:
            raise DataError(f"no ModelNet data for split {split!r} in {root}: expected "
                            f"ply_data_{split}*.h5 files or <class>/{split}/*.off folders",
                            HOW_TO_GET)
        if num_classes is not None and len(class_names) != int(num_classes):
            raise DataError(f"{root} has {len(class_names)} classes, the task expects "
                            f"{num_classes}", "point dataset.root at the matching data set")
        self.class_names = class_names
        self.up_axis = AXES[up_axis or default_up]
        self.info = DatasetInfo(
            name="modelnet", root=root, split=split,
            fingerprint=fingerprint_files(files, root), size=len(self.labels),
            meta={"num_classes": len(class_names), "class_names": class_names,
                  "layout": self.layout, "num_points": self.num_points,
                  "sampling": self.sampling if self.layout == "off" else "first-n",
                  "seed": self.seed, "votes": self.votes, "up_axis": "xyz"[self.up_axis]},
        )

    def _load_h5(self, folder: Path, split: str) -> tuple[list[str], list[Path]]:
        import h5py

        names_path = folder / "shape_names.txt"
        if not names_path.is_file():
            raise DataError(f"missing {names_path} (the class names of the HDF5 release)",
                            HOW_TO_GET)
        class_names = [line.strip() for line in names_path.read_text().splitlines()
                       if line.strip()]
        files = sorted(folder.glob(f"ply_data_{split}*.h5"), key=_natural_key)
        points, labels, normals = [], [], []
        for path in files:
            try:
                with h5py.File(path, "r") as handle:
                    for key in ("data", "label"):
                        if key not in handle:
                            raise DataError(f"{path} has no dataset {key!r} "
                                            f"(found {sorted(handle.keys())})")
                    data = np.asarray(handle["data"], dtype=np.float32)
                    label = np.asarray(handle["label"]).reshape(-1).astype(np.int64)
                    if self.with_normals:
                        if "normal" not in handle:
                            raise DataError(f"{path} has no 'normal' dataset; "
                                            "set dataset.params.normals=false")
                        normals.append(np.asarray(handle["normal"], dtype=np.float32))
            except OSError as exc:
                raise DataError(f"cannot read HDF5 file {path}: {exc}") from exc
            if data.ndim != 3 or data.shape[2] != 3 or len(data) != len(label):
                raise DataError(f"{path}: 'data' has shape {data.shape} and 'label' "
                                f"{len(label)} entries; expected [S,P,3] and S labels")
            if not np.isfinite(data).all():
                raise DataError(f"{path}: 'data' holds NaN or infinite coordinates")
            points.append(data)
            labels.append(label)
        self.h5_points = torch.from_numpy(np.concatenate(points))
        self.h5_normals = torch.from_numpy(np.concatenate(normals)) if normals else None
        self.labels = np.concatenate(labels)
        self.ids = [f"{path.stem}/{i:04d}" for path, label in zip(files, labels, strict=True)
                    for i in range(len(label))]
        self._check_labels(class_names, files[0].parent)
        return class_names, [*files, names_path]

    def _index_off(self, folder: Path, split: str) -> tuple[list[str], list[Path]]:
        class_names = sorted(d.name for d in folder.iterdir()
                             if d.is_dir() and (d / split).is_dir())
        self.paths: list[Path] = []
        labels = []
        for label, name in enumerate(class_names):
            files = sorted((p for p in (folder / name / split).iterdir()
                            if p.suffix.lower() in SHAPE_SUFFIXES), key=_natural_key)
            self.paths += files
            labels += [label] * len(files)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.ids = [f"{p.parent.parent.name}/{p.stem}" for p in self.paths]
        return class_names, self.paths

    def _check_labels(self, class_names: list[str], where: Path) -> None:
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(class_names)):
            raise DataError(f"{where}: label {int(self.labels.max())} outside the "
                            f"{len(class_names)} classes of shape_names.txt")

    def load_cloud(self, index: int) -> tuple[np.ndarray | torch.Tensor,
                                              np.ndarray | torch.Tensor | None]:
        """Points [num_points,3] (unit sphere) and normals (or None) of shape ``index``."""
        if self.layout == "hdf5":
            cloud = self.h5_points[index]
            if len(cloud) >= self.num_points:  # the first N points: a view, no generator
                chosen: slice | torch.Tensor = slice(0, self.num_points)
            else:
                rng = np.random.default_rng(_shape_seed(self.seed, index))
                chosen = torch.from_numpy(resample_points(cloud, self.num_points, rng))
            normals = self.h5_normals[index][chosen] if self.h5_normals is not None else None
            return cloud[chosen], normals
        rng = np.random.default_rng(_shape_seed(self.seed, index))
        path = self.paths[index]
        if path.suffix.lower() == ".off":
            vertices, triangles = read_off(path)
            try:
                points, normals = sample_mesh(vertices, triangles, self.num_points,
                                              self.sampling, _shape_seed(self.seed, index))
            except ValueError as exc:
                raise DataError(f"{path}: cannot sample points: {exc}") from exc
            if len(points) < self.num_points:
                chosen = resample_points(points, self.num_points, rng)
                points, normals = points[chosen], normals[chosen]
        else:
            points, normals = read_point_cloud(path)
            chosen = resample_points(points, self.num_points, rng)
            points = points[chosen]
            normals = normals[chosen] if normals is not None else None
        if self.with_normals and normals is None:
            raise DataError(f"{path} has no normals; set dataset.params.normals=false")
        return normalise_unit_sphere(points), normals

    def __getitem__(self, index: int) -> dict[str, Any]:
        points, normals = self.load_cloud(index)
        sample: dict[str, Any] = {
            "id": self.ids[index],
            "points": torch.as_tensor(points, dtype=torch.float32),
            "label": int(self.labels[index]),
            "votes": self.votes,
            "up_axis": self.up_axis,
        }
        if self.with_normals:
            sample["normals"] = torch.as_tensor(normals, dtype=torch.float32)
        return sample
