"""Single-view shape prediction: one image in, the object's 3D shape out.

Sample (adapters ``r2n2``, ``pix3d``): ``id``; ``image`` [3,H,W] in [0,1]; ``mask`` [H,W]
bool (the object's silhouette, all True when the data has none); the camera ``K`` [3,3],
``R`` [3,3], ``t`` [3] (normalised frame -> OpenCV camera); the ground truth in the data
set's normalised frame (the object centred in the unit cube [-0.5, 0.5]^3): ``vertices``
[V,3] float, ``faces`` [F,3] long, ``voxels`` [32,32,32] bool over ``voxel_bounds`` [2,3]
(min, max corners); ``class_index`` and ``class_name`` (ShapeNet synset names).

Prediction, per sample, one of (the predictor declares which by what it returns):

- a mesh: ``{"vertices": [V,3], "faces": [F,3]}``;
- a point cloud: ``{"points": [N,3]}``, optionally with ``"normals": [N,3]`` (scaled to
  unit length; they give the point cloud its normal consistency), or a tensor [B,N,3] for
  the whole batch;
- an occupancy grid: ``{"occupancy": [R,R,R], "bounds": [2,3]}`` with probabilities in
  [0,1] (or a tensor [B,R,R,R]: bounds default to the sample's ``voxel_bounds``).

A batch prediction is a list of such dicts, or one dict whose values are batched (tensors
with a leading B, or lists of B tensors). Grids become meshes by marching cubes.

Predictions file (``--predictions FILE.zip``): a zip archive with one member per sample
named by sample id plus an extension: ``<id>.npz`` holding ``vertices`` + ``faces``, or
``points`` (+ ``normals``), or ``occupancy`` (+ ``bounds``); or ``<id>.off`` / ``<id>.obj`` /
``<id>.ply`` (a mesh, or a point cloud when a PLY has no faces).

Predictions folder (``--predictions DIR``), Occupancy Networks' ``generate.py`` output as it
is: ``DIR/meshes/<path>.off|.obj|.ply`` and/or ``DIR/pointcloud/<path>.ply|.npz`` (points
with optional normals); ``DIR`` may also be OccNet's ``out_dir`` holding ``generation/``.
``<path>`` is the sample id, or the id's parent (``<synset>/<model>`` of an R2N2 id
``<synset>/<model>/<view>``, OccNet's one file per model) when the run has no other sample
under that parent. A folder without ``meshes/`` or ``pointcloud/`` is read like the zip,
unpacked. When a sample has both a mesh and a point cloud, the mesh is evaluated.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError, ContractError, ModelError
from bench.families.base import Batch, Family, Predictor
from bench.families.saving import PredictionWriter, write_bytes_atomic
from bench.formats.archive import read_member
from bench.formats.npz import NpzFile
from bench.geometry.grids import grid_occupancy, grid_to_mesh
from bench.geometry.mesh import check_mesh, mesh_occupancy
from bench.registry import FAMILIES

PREDICTION_SUFFIXES = (".npz", ".obj", ".off", ".ply")
MESH_SUFFIXES = (".off", ".obj", ".ply")
POINT_CLOUD_SUFFIXES = (".ply", ".npz")


@dataclass
class ShapePrediction:
    """One sample's prediction: a mesh, a point cloud, or an occupancy grid with bounds.

    ``kind`` is ``mesh`` (``vertices`` [V,3], ``faces`` [F,3]), ``points`` (``points`` [N,3],
    optionally unit ``normals`` [N,3]) or ``grid`` (``grid`` [R,R,R] occupancy probabilities
    in [0,1], ``bounds`` [2,3]: the min and max corners of the box the grid covers; cell
    (i,j,k) is centred at ``lo + (ijk + 0.5) * (hi - lo) / R``, as binvox voxels are).
    Arrays are float64 numpy.
    """

    kind: str
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    points: np.ndarray | None = None
    grid: np.ndarray | None = None
    bounds: np.ndarray | None = None
    normals: np.ndarray | None = None

    def mesh(self, level: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices, faces) of a mesh or grid prediction (grids via marching cubes)."""
        if self.kind == "mesh":
            return self.vertices, self.faces
        if self.kind == "grid":
            return grid_to_mesh(self.grid, self.bounds, level)
        return None

    def inside(self, points: np.ndarray, level: float = 0.5) -> np.ndarray | None:
        """Inside test [N] bool of ``points`` [N,3]; None for a point cloud.

        Meshes: Open3D raycasting (``mesh_occupancy``). Grids: trilinear interpolation of
        the grid (zero outside it) >= ``level``, the isosurface marching cubes extracts.
        """
        if self.kind == "grid":
            return grid_occupancy(self.grid, self.bounds, points, level)
        if self.kind == "mesh":
            return mesh_occupancy(self.vertices, self.faces, points)
        return None


def _array(name: str, value: Any, sample: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise ContractError(f"{sample}: prediction {name!r} must be a tensor or array, "
                            f"got {type(value).__name__}")
    return value


def to_shape_prediction(pred: dict[str, Any], default_bounds: np.ndarray,
                        sample: str = "prediction") -> ShapePrediction:
    """Validate one sample's prediction dict and return it as a ShapePrediction."""
    if "vertices" in pred or "faces" in pred:
        if "vertices" not in pred or "faces" not in pred:
            raise ContractError(f"{sample}: a mesh prediction needs both 'vertices' and 'faces'")
        vertices = _array("vertices", pred["vertices"], sample).astype(np.float64)
        faces = _array("faces", pred["faces"], sample)
        if faces.size and not np.issubdtype(faces.dtype, np.integer):
            raise ContractError(f"{sample}: faces must be integer, got {faces.dtype}")
        faces = faces.astype(np.int64).reshape(-1, 3) if faces.size == 0 else faces.astype(
            np.int64)
        vertices = vertices.reshape(-1, 3) if vertices.size == 0 else vertices
        check_mesh(vertices, faces, f"{sample}: predicted mesh")
        return ShapePrediction("mesh", vertices=vertices, faces=faces)
    if "points" in pred:
        points = _array("points", pred["points"], sample).astype(np.float64)
        points = points.reshape(-1, 3) if points.size == 0 else points
        if points.ndim != 2 or points.shape[1] != 3:
            raise ContractError(f"{sample}: points must be [N,3], got {list(points.shape)}")
        if not np.isfinite(points).all():
            raise ContractError(f"{sample}: {int((~np.isfinite(points)).any(1).sum())} "
                                "predicted points are NaN or infinite")
        normals = pred.get("normals")
        if normals is not None:
            normals = _unit_normals(_array("normals", normals, sample), points.shape, sample)
        return ShapePrediction("points", points=points, normals=normals)
    if "occupancy" in pred:
        grid = _array("occupancy", pred["occupancy"], sample).astype(np.float32)
        if grid.ndim != 3 or len(set(grid.shape)) != 1:
            raise ContractError(f"{sample}: occupancy must be a cubic grid [R,R,R], "
                                f"got {list(grid.shape)}")
        if not np.isfinite(grid).all():
            raise ContractError(f"{sample}: occupancy has NaN or infinite values")
        if grid.min() < 0 or grid.max() > 1:
            raise ContractError(f"{sample}: occupancy must be probabilities in [0,1], got "
                                f"[{grid.min():.3g}, {grid.max():.3g}] (apply a sigmoid)")
        bounds = pred.get("bounds")
        bounds = default_bounds if bounds is None else _array("bounds", bounds, sample)
        bounds = np.asarray(bounds, dtype=np.float64)
        if bounds.shape != (2, 3) or not (bounds[1] > bounds[0]).all():
            raise ContractError(f"{sample}: bounds must be [[xmin,ymin,zmin],[xmax,ymax,zmax]] "
                                f"with max > min, got {bounds.tolist()}")
        return ShapePrediction("grid", grid=grid, bounds=bounds)
    raise ContractError(f"{sample}: a shape prediction needs 'vertices'+'faces', 'points' or "
                        f"'occupancy'; got keys {sorted(pred)}")


def _unit_normals(normals: np.ndarray, shape: tuple[int, ...], sample: str) -> np.ndarray:
    """Normals [N,3] matching the points' ``shape``, scaled to unit length (ContractError)."""
    normals = normals.astype(np.float64)
    normals = normals.reshape(-1, 3) if normals.size == 0 else normals
    if normals.shape != shape:
        raise ContractError(f"{sample}: normals must be [N,3] like the points "
                            f"{list(shape)}, got {list(normals.shape)}")
    length = np.linalg.norm(normals, axis=1)
    bad = ~(np.isfinite(length) & (length > 0))
    if bad.any():
        raise ContractError(f"{sample}: {int(bad.sum())} normals are zero, NaN or infinite")
    return normals / length[:, None]


def _split_batched(pred: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """A dict of batched values -> one dict per sample (a [2,3] bounds is shared)."""
    rows: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, value in pred.items():
        shared = key == "bounds" and getattr(value, "ndim", 0) == 2
        if not shared and len(value) != size:
            raise ContractError(f"prediction {key!r} holds {len(value)} items for a batch of "
                                f"{size}")
        for i in range(size):
            rows[i][key] = value if shared else value[i]
    return rows


class ShapeFolder(PredictionWriter):
    """A folder of ``<sample id>.npz`` files (the zip layout, unpacked): ``vertices`` +
    ``faces``, ``points`` (+ ``normals``) or ``occupancy`` + ``bounds``, each written to a
    temporary file and renamed into place."""

    target_name = "shapes"

    def write(self, batch: Batch, raw: Any, pred: list[ShapePrediction]) -> None:
        for sample_id, shape in zip(batch["id"], pred, strict=True):
            if shape.kind == "mesh":
                arrays = {"vertices": shape.vertices, "faces": shape.faces}
            elif shape.kind == "points":
                arrays = {"points": shape.points}
                if shape.normals is not None:
                    arrays["normals"] = shape.normals
            else:
                arrays = {"occupancy": shape.grid, "bounds": shape.bounds}
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            write_bytes_atomic(self.target / f"{sample_id}.npz", buffer.getvalue())


@FAMILIES.register("shape")
class ShapeFamily(Family):
    """Single-view 3D shape: image -> mesh, point cloud or occupancy grid (normalised frame)."""

    name = "shape"
    sample_keys = ("id", "image", "mask", "K", "R", "t", "vertices", "faces", "voxels",
                   "voxel_bounds", "class_index", "class_name")

    def module_predictor(self, module: Any) -> Predictor:
        """A network ``module(images [B,3,H,W])`` -> occupancy [B,R,R,R] or points [B,N,3]."""
        return lambda batch: module(batch["image"])

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> list[ShapePrediction]:
        """Any accepted prediction form -> one ShapePrediction per sample (ContractError)."""
        size = len(batch["id"])
        if isinstance(pred, torch.Tensor):
            if pred.ndim == 4:
                pred = {"occupancy": pred}
            elif pred.ndim == 3 and pred.shape[-1] == 3:
                pred = {"points": pred}
            else:
                raise ContractError(
                    f"a shape prediction tensor must be occupancy [B,R,R,R] or points [B,N,3], "
                    f"got shape {list(pred.shape)}")
        if isinstance(pred, dict):
            pred = _split_batched(pred, size)
        if not isinstance(pred, list | tuple) or len(pred) != size:
            raise ContractError(f"expected {size} shape predictions (a list of dicts, a dict "
                                f"of batched values or a tensor), got {type(pred).__name__}")
        out = []
        for i, item in enumerate(pred):
            if not isinstance(item, dict):
                raise ContractError(f"{batch['id'][i]}: prediction must be a dict, got "
                                    f"{type(item).__name__}")
            bounds = batch["voxel_bounds"][i]
            bounds = bounds.cpu().numpy() if isinstance(bounds, torch.Tensor) else bounds
            out.append(to_shape_prediction(item, np.asarray(bounds), str(batch["id"][i])))
        return out

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """Serve per-sample predictions from a zip (see the module docstring) or a folder
        in Occupancy Networks' generation layout; both are only read."""
        if path.is_dir():
            ids = dataset.sample_ids() if hasattr(dataset, "sample_ids") else []
            return FolderPredictions(path, ids)
        if not zipfile.is_zipfile(path):
            raise ContractError(f"{path}: shape predictions must be a zip archive of "
                                "<sample id>.npz/.off/.obj/.ply files, or a folder")
        return ZipPredictions(path)

    def prediction_writer(self, folder: Path, dataset: Any) -> ShapeFolder:
        """A folder of ``<sample id>.npz`` predictions (the zip layout, unpacked)."""
        return ShapeFolder(folder, dataset)


class ZipPredictions:
    """Reads one prediction per sample id from a zip archive (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with zipfile.ZipFile(path) as archive:
            self.members: dict[str, str] = {}
            for name in archive.namelist():
                stem, suffix = name.rsplit(".", 1) if "." in name else (name, "")
                if f".{suffix.lower()}" in PREDICTION_SUFFIXES:
                    self.members[stem.strip("/")] = name

    def read(self, sample_id: str) -> dict[str, Any]:
        """The prediction dict of one sample."""
        if sample_id not in self.members:
            raise ModelError(f"{self.path} has no prediction for sample {sample_id!r} "
                             f"(expected a member {sample_id}.npz, .off, .obj or .ply)")
        name = self.members[sample_id]
        where = f"{self.path}:{name}"
        with zipfile.ZipFile(self.path) as archive:
            data = read_member(archive, name, where)
        suffix = name.rsplit(".", 1)[1].lower()
        if suffix == "npz":
            return NpzFile(io.BytesIO(data), where).read_all()
        if suffix == "obj":
            return read_obj_text(data.decode("utf-8", errors="replace"), where)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / f"prediction.{suffix}"
            file.write_bytes(data)
            try:
                return read_prediction_file(file, where)
            except BenchError as exc:
                raise type(exc)(exc.message.replace(str(file), where), exc.hint) from exc

    def __call__(self, batch: Batch) -> list[dict[str, Any]]:
        return [self.read(str(sample_id)) for sample_id in batch["id"]]


class FolderPredictions:
    """Reads Occupancy Networks' generation folder (or an unpacked zip), one sample at a time.

    Only file names are indexed up front; each sample's files are read when its batch
    comes. Nothing in the folder is written.
    """

    def __init__(self, root: Path, sample_ids: list[str]) -> None:
        if not _has_kind_folders(root) and _has_kind_folders(root / "generation"):
            root = root / "generation"
        self.root = root
        self.occnet = _has_kind_folders(root)
        self.files: dict[str, list[tuple[str, Path]]] = {}
        kinds = (("mesh", root / "meshes", MESH_SUFFIXES),
                 ("pointcloud", root / "pointcloud", POINT_CLOUD_SUFFIXES)) if self.occnet \
            else (("any", root, PREDICTION_SUFFIXES),)
        for kind, folder, suffixes in kinds:
            for file in sorted(folder.rglob("*")):
                if file.suffix.lower() in suffixes and file.is_file():
                    stem = file.relative_to(folder).with_suffix("").as_posix()
                    self.files.setdefault(stem, []).append((kind, file))
        parents = Counter(sample_id.rpartition("/")[0] for sample_id in sample_ids)
        self.single_parents = {parent for parent, n in parents.items() if parent and n == 1}

    def files_of(self, sample_id: str) -> list[tuple[str, Path]]:
        """(kind, file) pairs of one sample: named by its id, else by its id's parent."""
        parent = sample_id.rpartition("/")[0]
        found = self.files.get(sample_id)
        if not found and parent in self.single_parents:
            found = self.files.get(parent)
        if not found:
            raise ModelError(f"{self.root} has no prediction for sample {sample_id!r}: "
                             f"missing {self._expected(sample_id)}")
        for kind in ("mesh", "pointcloud", "any"):
            same = [file for k, file in found if k == kind]
            if len(same) > 1:
                raise ContractError(f"{same[0]} and {same[1].name}: two predictions of one "
                                    f"sample {sample_id!r}; keep one")
        return found

    def _expected(self, sample_id: str) -> str:
        """The paths looked for, for a missing-file message."""
        if not self.occnet:
            return f"{self.root / sample_id}.npz (or .off, .obj, .ply)"
        parent = sample_id.rpartition("/")[0]
        stems = [sample_id] + ([parent] if parent in self.single_parents else [])
        meshes = " or ".join(f"{self.root / 'meshes' / stem}.off" for stem in stems)
        clouds = " or ".join(f"{self.root / 'pointcloud' / stem}.ply" for stem in stems)
        return f"{meshes} (or .obj, .ply) and {clouds} (or .npz)"

    def read(self, sample_id: str) -> dict[str, Any]:
        """The prediction dict of one sample (mesh and point cloud merged when both exist)."""
        pred: dict[str, Any] = {}
        for kind, file in self.files_of(sample_id):
            values = read_prediction_file(file, str(file))
            if kind == "mesh" and "vertices" not in values:
                if len(values.get("points", ())):
                    raise ContractError(f"{file}: a point cloud (no faces) in meshes/; point "
                                        "clouds go in pointcloud/")
                values = {"vertices": np.zeros((0, 3)), "faces": np.zeros((0, 3), np.int64)}
            if kind == "pointcloud" and "points" not in values:
                raise ContractError(f"{file}: a point cloud needs 'points' [N,3] (+ 'normals'); "
                                    f"found {sorted(values)}")
            pred.update(values)
        return pred

    def __call__(self, batch: Batch) -> list[dict[str, Any]]:
        return [self.read(str(sample_id)) for sample_id in batch["id"]]


def _has_kind_folders(root: Path) -> bool:
    return (root / "meshes").is_dir() or (root / "pointcloud").is_dir()


def read_prediction_file(path: Path, where: str) -> dict[str, Any]:
    """A prediction dict from one ``.npz``, ``.off``, ``.obj`` or ``.ply`` file.

    Meshes give ``vertices`` + ``faces``; a PLY without faces gives ``points`` (+ ``normals``
    when it has ``nx ny nz``); an npz gives its arrays. Malformed files raise a BenchError
    naming ``where``.
    """
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with NpzFile(path, where) as arrays:
            return arrays.read_all()
    if suffix == ".obj":
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ContractError(f"{where}: cannot read ({exc})") from exc
        return read_obj_text(text, where)
    if suffix == ".off":
        from bench.formats.off import read_off

        vertices, faces = read_off(path)
        return {"vertices": vertices, "faces": faces}
    if suffix == ".ply":
        return read_ply(path, where)
    raise ContractError(f"{where}: unsupported prediction file (use .npz, .off, .obj, .ply)")



def read_obj_text(text: str, where: str) -> dict[str, np.ndarray]:
    """``vertices`` + ``faces`` of Wavefront OBJ text."""
    from bench.formats.obj import parse_obj

    vertices, faces = parse_obj(text, where)
    return {"vertices": vertices, "faces": faces}


def read_ply(path: Path, where: str) -> dict[str, np.ndarray]:
    """A PLY mesh (``vertices`` + ``faces``) or, without faces, a point cloud (``points``
    and ``normals`` when present), read with Open3D."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles):
        return {"vertices": np.asarray(mesh.vertices),
                "faces": np.asarray(mesh.triangles).astype(np.int64)}
    cloud = o3d.io.read_point_cloud(str(path))
    if len(cloud.points) == 0 and len(mesh.vertices) == 0:
        with open(path, "rb") as handle:
            header = handle.read(4096)
        if not re.search(rb"element vertex 0\s", header):
            raise ContractError(f"{where}: cannot read a mesh or point cloud from this PLY")
    out = {"points": np.asarray(cloud.points)}
    if cloud.has_normals():
        out["normals"] = np.asarray(cloud.normals)
    return out


def render_panel(rows: list[dict[str, Any]], path: Path, level: float = 0.5) -> None:
    """One figure: per row the input image | ground truth | prediction, seen by its camera.

    Meshes are rendered with ``bench.geometry.render`` from the sample's camera (lit from
    above in ShapeNet's y-up frame); point clouds are projected through it and drawn as dots.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.geometry.cameras import Camera, project
    from bench.geometry.render import Scene, SceneObject

    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    for row, axis_row in zip(rows, axes, strict=True):
        image = np.transpose(row["image"], (1, 2, 0))
        height, width = image.shape[:2]
        camera = Camera(row["K"].astype(np.float64), width, height, row["R"].astype(np.float64),
                        row["t"].astype(np.float64))
        axis_row[0].imshow(np.clip(image, 0, 1))
        axis_row[0].set_title(str(row["id"]), fontsize=7)
        pred: ShapePrediction = row["pred"]
        for axis, mesh, colour in ((axis_row[1], row["gt"], (0.4, 0.7, 0.4)),
                                   (axis_row[2], pred.mesh(level), (0.4, 0.5, 0.85))):
            if mesh is not None and len(mesh[1]):
                axis.imshow(_render_mesh(mesh, camera, colour, Scene, SceneObject))
            else:
                axis.imshow(np.ones((height, width, 3)))
                points = pred.points if pred.points is not None else np.zeros((0, 3))
                cam = points @ camera.R.T + camera.t
                cam = cam[cam[:, 2] > 1e-6]
                if len(cam):
                    uv = project(cam, camera.K)
                    axis.scatter(uv[:, 0], uv[:, 1], s=0.3, c=[colour])
                axis.set_xlim(-0.5, width - 0.5)
                axis.set_ylim(height - 0.5, -0.5)
        axis_row[1].set_title("ground truth", fontsize=8)
        axis_row[2].set_title(f"prediction ({pred.kind})", fontsize=8)
        for axis in axis_row:
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _render_mesh(mesh: tuple[np.ndarray, np.ndarray], camera: Any, colour: tuple,
                 scene_cls: Any, object_cls: Any) -> np.ndarray:
    import open3d as o3d

    triangle_mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh[0], dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh[1], dtype=np.int32)))
    scene = scene_cls(background=(1.0, 1.0, 1.0), light_direction=(-0.3, -1.0, -0.6),
                      ambient=0.45)
    scene.add(object_cls(triangle_mesh, color=colour))
    return scene.render(camera).rgb
