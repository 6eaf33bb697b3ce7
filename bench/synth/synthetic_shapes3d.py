"""Embedded ``synthetic-shapes3d``: procedural shapes rendered in the 3D-R2N2 layout.

The watertight classes of ``bench.synth.shapes`` (11; the one-sided ``mobius`` strip has
no inside, so no voxels or IoU) give ``TRAIN_PER_CLASS`` training and ``TEST_PER_CLASS``
test shapes each, every shape with its own proportions and colour, so no shape is in both
splits. Each shape is turned to ShapeNet's y-up frame (its symmetry axis, z, becomes y),
centred and scaled to a bounding-box diagonal of 1 (ShapeNetCore v2's
``model_normalized.obj`` convention), and written as:

- ``ShapeNetRendering/<synset>/<model>/rendering/00.png ..`` (``VIEWS`` views, 137x137
  RGBA: the shape rendered by ``bench.geometry.render`` over a crop of a scikit-image photo,
  alpha = the object's silhouette) with ``rendering_metadata.txt`` (azimuth uniform in
  [0, 360), elevation in [15, 40], in-plane 0, distance ratio in [0.75, 0.95], fov 50);
- ``ShapeNetVox32/<synset>/<model>/model.binvox``: 32^3 occupancy of the cell centres
  of the cube [-0.5, 0.5]^3 (inside test by Open3D raycasting);
- ``ShapeNetCore.v2/<synset>/<model>/models/model_normalized.obj``;
- ``ShapeNet.json`` (Pix2Vox split format) and ``taxonomy.json`` (class names).

Synset ids are ``9000000k`` for class k (not real ShapeNet synsets).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import skimage.data

from bench.formats.binvox import write_binvox
from bench.formats.obj import write_obj
from bench.geometry.cameras import Camera, camera_from_metadata
from bench.geometry.grids import cell_centres
from bench.geometry.mesh import mesh_occupancy
from bench.geometry.render import Scene, SceneObject
from bench.registry import EMBEDDED
from bench.synth.shapes import SHAPE_CLASSES, WATERTIGHT, make_shape

CLASSES = [name for name in SHAPE_CLASSES if name in WATERTIGHT]
TRAIN_PER_CLASS = 12
TEST_PER_CLASS = 3
VIEWS = 4
IMAGE_SIZE = 137
FOV_DEG = 50.0
SEED = 2019
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick", "grass",
          "gravel")
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def synset_of(class_index: int) -> str:
    """The pseudo synset id of class ``class_index``."""
    return f"{90000000 + class_index:08d}"


def _photos() -> list[np.ndarray]:
    photos = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(image[..., :3])
    return photos


def _background(photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    size = int(rng.integers(140, min(photo.shape[:2]) + 1))
    y = int(rng.integers(0, photo.shape[0] - size + 1))
    x = int(rng.integers(0, photo.shape[1] - size + 1))
    return photo[y:y + size, x:x + size]


def canonical_mesh(name: str, rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    """A shape of class ``name`` in ShapeNet's y-up frame, centred, bbox diagonal 1."""
    mesh = make_shape(name, rng)
    vertices = np.asarray(mesh.vertices) @ Y_UP.T
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - (lo + hi) / 2.0) / np.linalg.norm(hi - lo)
    mesh.vertices = o3d.utility.Vector3dVector(vertices)
    return mesh


def write_model(root: Path, synset: str, model: str, mesh: o3d.geometry.TriangleMesh,
                photos: list[np.ndarray], rng: np.random.Generator) -> None:
    """Renders + metadata, binvox voxels and the OBJ mesh of one shape."""
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.triangles).astype(np.int64)
    mesh_dir = root / "ShapeNetCore.v2" / synset / model / "models"
    mesh_dir.mkdir(parents=True)
    write_obj(mesh_dir / "model_normalized.obj", vertices, faces)
    voxel_dir = root / "ShapeNetVox32" / synset / model
    voxel_dir.mkdir(parents=True)
    bounds = np.array([[-0.5] * 3, [0.5] * 3])
    inside = mesh_occupancy(vertices, faces, cell_centres(bounds, 32)).reshape(32, 32, 32)
    write_binvox(voxel_dir / "model.binvox", inside, bounds[0], 1.0)

    render_dir = root / "ShapeNetRendering" / synset / model / "rendering"
    render_dir.mkdir(parents=True)
    colour = tuple(float(c) for c in rng.uniform(0.25, 0.95, size=3))
    lines = []
    scene = Scene(light_direction=tuple(rng.uniform(-1, 1, size=3) - [0, 1.5, 0]))
    scene.add(SceneObject(mesh, color=colour))
    for view in range(VIEWS):
        meta = (float(rng.uniform(0, 360)), float(rng.uniform(15, 40)), 0.0,
                float(rng.uniform(0.75, 0.95)), FOV_DEG)
        lines.append(" ".join(f"{v:.6f}" for v in meta))
        K, R, t = camera_from_metadata(*meta, IMAGE_SIZE, IMAGE_SIZE)
        scene.background = _background(photos, rng)
        frame = scene.render(Camera(K, IMAGE_SIZE, IMAGE_SIZE, R, t))
        alpha = np.where(frame.valid, 255, 0).astype(np.uint8)
        bgra = np.dstack([frame.rgb[..., ::-1], alpha])
        cv2.imwrite(str(render_dir / f"{view:02d}.png"), bgra)
    (render_dir / "rendering_metadata.txt").write_text("\n".join(lines) + "\n")


@EMBEDDED.register("synthetic-shapes3d")
def build_synthetic_shapes3d(root: Path) -> None:
    """11 procedural classes x (12 train + 3 test) shapes, 4 views each, R2N2 layout."""
    rng = np.random.default_rng(SEED)
    photos = _photos()
    split = []
    taxonomy = []
    for index, name in enumerate(CLASSES):
        synset = synset_of(index)
        models = {"train": [], "test": []}
        for number in range(TRAIN_PER_CLASS + TEST_PER_CLASS):
            part = "train" if number < TRAIN_PER_CLASS else "test"
            model = f"{name}_{number:03d}"
            write_model(root, synset, model, canonical_mesh(name, rng), photos, rng)
            models[part].append(model)
        split.append({"taxonomy_id": synset, "taxonomy_name": name, "train": models["train"],
                      "val": [], "test": models["test"]})
        taxonomy.append({"synsetId": synset, "name": name, "children": [],
                         "numInstances": TRAIN_PER_CLASS + TEST_PER_CLASS})
    (root / "ShapeNet.json").write_text(json.dumps(split, indent=1))
    (root / "taxonomy.json").write_text(json.dumps(taxonomy, indent=1))
