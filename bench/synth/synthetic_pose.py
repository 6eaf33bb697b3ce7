"""Embedded ``synthetic-pose``: four objects rendered at random poses, in the BOP layout.

Objects (model frame: origin at the centre of the 3D bounding box, z up, metres here and
millimetres on disk, as BOP stores them):

1. ``box``: a 100x70x50 mm box textured with scikit-image's astronaut (no symmetry);
2. ``cone``: an untextured cone, r 40 mm, h 100 mm (continuous symmetry about z);
3. ``brick``: an untextured 90x50x30 mm box (discrete symmetries: 180 deg about x, y, z);
4. ``hammer``: a cylinder handle and a box head, textured with the cat photo (no symmetry).

Splits, written with the renderer of ``bench.geometry.render`` (OpenCV camera convention):

- ``test/000001``: 24 images of 320x240, each with all four objects at random poses
  0.42-0.62 m in front of the camera, random photo backgrounds, and one or two untextured
  occluders (spheres or boxes) closer to the camera; ``test_targets_bop19.json`` lists
  instances at least 10% visible.
- ``train/00000X``: 48 views per object X (one object per scene, as BOP's LM ``train``),
  on random photo backgrounds with light sensor noise; rgb as JPEG (as BOP's train_pbr).

Every image has rgb/ (PNG), depth/ (uint16 PNG, ``depth_scale`` 0.1 mm), mask/ and
mask_visib/ (``IMID_GTID.png``), scene_camera.json, scene_gt.json and scene_gt_info.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import skimage.data

from bench.geometry.cameras import Camera, intrinsics, pose_matrix
from bench.geometry.render import Scene, SceneObject
from bench.geometry.rotations import random_rotation, rotation_matrix
from bench.registry import EMBEDDED

WIDTH, HEIGHT = 320, 240
K = intrinsics(300.0, 300.0, (WIDTH - 1) / 2.0, (HEIGHT - 1) / 2.0)
DEPTH_SCALE = 0.1  # millimetres per depth unit, as in YCB-V
TEST_IMAGES = 24
TRAIN_VIEWS = 48
MIN_VISIB = 0.1
SEED = 7
BACKGROUNDS = ("rocket", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
               "colorwheel")


@dataclass
class PoseObject:
    """One object of the set: its mesh (metres, bbox-centred), look and BOP symmetries."""

    obj_id: int
    name: str
    mesh: o3d.geometry.TriangleMesh
    color: tuple[float, float, float]
    texture: str | None = None
    symmetries_discrete: list[np.ndarray] = field(default_factory=list)
    symmetries_continuous: list[dict] = field(default_factory=list)


def _centred(mesh: o3d.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    box = mesh.get_axis_aligned_bounding_box()
    mesh.translate(-(box.min_bound + box.max_bound) / 2.0)
    mesh.compute_vertex_normals()
    return mesh


def _box(sx: float, sy: float, sz: float) -> o3d.geometry.TriangleMesh:
    return _centred(o3d.geometry.TriangleMesh.create_box(sx, sy, sz))


def objects() -> list[PoseObject]:
    """The four objects of the set, in obj_id order."""
    cone = _centred(o3d.geometry.TriangleMesh.create_cone(0.04, 0.10, resolution=48, split=4))
    handle = o3d.geometry.TriangleMesh.create_cylinder(0.012, 0.11, resolution=32, split=4)
    head = o3d.geometry.TriangleMesh.create_box(0.07, 0.03, 0.03)
    head.translate((-0.035, -0.015, 0.055))
    hammer = _centred(handle + head)
    flips = [pose_matrix(rotation_matrix(axis, 180.0), (0.0, 0.0, 0.0))
             for axis in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    return [
        PoseObject(1, "box", _box(0.10, 0.07, 0.05), (1.0, 1.0, 1.0), "astronaut"),
        PoseObject(2, "cone", cone, (0.85, 0.25, 0.2),
                   symmetries_continuous=[{"axis": [0, 0, 1], "offset": [0, 0, 0]}]),
        PoseObject(3, "brick", _box(0.09, 0.05, 0.03), (0.2, 0.35, 0.85),
                   symmetries_discrete=flips),
        PoseObject(4, "hammer", hammer, (1.0, 1.0, 1.0), "cat"),
    ]


def _photo(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _background(rng: np.random.Generator, photos: dict[str, np.ndarray]) -> np.ndarray:
    """A random 4:3 crop of a random background photo, resized to the image size."""
    image = photos[BACKGROUNDS[rng.integers(len(BACKGROUNDS))]]
    height, width = image.shape[:2]
    crop_h = int(rng.uniform(0.4, 0.9) * min(height, width * 3 / 4))
    crop_w = crop_h * 4 // 3
    top = rng.integers(0, height - crop_h + 1)
    left = rng.integers(0, width - crop_w + 1)
    crop = image[top:top + crop_h, left:left + crop_w]
    return cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def _models_info(obj: PoseObject) -> dict:
    """BOP models_info entry (millimetres) of one object."""
    vertices = np.asarray(obj.mesh.vertices) * 1000.0
    hull = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vertices)).compute_convex_hull()
    corners = np.asarray(hull[0].vertices)
    diameter = float(np.max(np.linalg.norm(corners[:, None] - corners[None], axis=-1)))
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    info: dict = {"diameter": diameter}
    for axis, name in enumerate("xyz"):
        info[f"min_{name}"] = float(low[axis])
        info[f"size_{name}"] = float(high[axis] - low[axis])
    if obj.symmetries_discrete:
        info["symmetries_discrete"] = [
            [round(float(v), 12) + 0.0 for v in np.asarray(s).reshape(-1)]
            for s in obj.symmetries_discrete]
    if obj.symmetries_continuous:
        info["symmetries_continuous"] = obj.symmetries_continuous
    return info


def _write_models(root: Path, objs: list[PoseObject], rng: np.random.Generator) -> None:
    for folder in ("models", "models_eval"):
        (root / folder).mkdir(parents=True)
    info = {}
    for obj in objs:
        mesh_mm = o3d.geometry.TriangleMesh(obj.mesh)
        mesh_mm.scale(1000.0, center=(0.0, 0.0, 0.0))
        mesh_mm.compute_vertex_normals()
        o3d.io.write_triangle_mesh(str(root / "models" / f"obj_{obj.obj_id:06d}.ply"), mesh_mm,
                                   write_ascii=False)
        # models_eval: points sampled uniformly on the surface, as BOP resamples its models.
        o3d.utility.random.seed(int(rng.integers(1 << 31)))
        cloud = mesh_mm.sample_points_uniformly(1000)
        o3d.io.write_point_cloud(str(root / "models_eval" / f"obj_{obj.obj_id:06d}.ply"), cloud,
                                 write_ascii=False)
        info[str(obj.obj_id)] = _models_info(obj)
    for folder in ("models", "models_eval"):
        (root / folder / "models_info.json").write_text(json.dumps(info, indent=1))


def _scene_object(obj: PoseObject, pose: np.ndarray,
                  textures: dict[str, np.ndarray]) -> SceneObject:
    texture = textures[obj.texture] if obj.texture else None
    return SceneObject(obj.mesh, pose, obj.color, texture=texture, texture_scale=6.0,
                       name=obj.name)


def _occluder(rng: np.random.Generator, target: np.ndarray) -> SceneObject:
    """An untextured sphere or box between the camera and ``target`` (camera frame, m)."""
    size = rng.uniform(0.02, 0.035)
    if rng.random() < 0.5:
        mesh = o3d.geometry.TriangleMesh.create_sphere(size, resolution=20)
    else:
        mesh = _box(2 * size, 1.5 * size, 2 * size)
    fraction = rng.uniform(0.55, 0.75)
    offset = np.append(rng.uniform(-0.03, 0.03, 2), 0.0)
    centre = target * fraction + offset
    colour = tuple(float(c) for c in rng.uniform(0.2, 0.9, 3))
    return SceneObject(mesh, pose_matrix(random_rotation(rng), centre), colour, name="occluder")


def _gt_entries(frame, ids: list[int], masks_all: dict[int, np.ndarray]) -> tuple[list, list]:
    """scene_gt and scene_gt_info entries (millimetres) for the annotated objects."""
    gts, infos = [], []
    for index, obj_id in ids:
        rotation, translation = frame.poses[index]
        gts.append({"cam_R_m2c": [float(v) for v in rotation.reshape(-1)],
                    "cam_t_m2c": [float(v) * 1000.0 for v in translation],
                    "obj_id": obj_id})
        visib = frame.instance == index
        full = masks_all[index]
        infos.append({
            "bbox_obj": _bbox(full), "bbox_visib": _bbox(visib),
            "px_count_all": int(full.sum()), "px_count_valid": int(full.sum()),
            "px_count_visib": int(visib.sum()),
            "visib_fract": float(visib.sum() / full.sum()) if full.any() else 0.0,
        })
    return gts, infos


def _bbox(mask: np.ndarray) -> list[int]:
    """(x, y, width, height) of a mask, [-1, -1, -1, -1] when empty (BOP's convention)."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return [-1, -1, -1, -1]
    return [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
            int(rows.max() - rows.min() + 1)]


class _SceneWriter:
    """Writes one BOP scene folder: images, masks and the three JSON files."""

    def __init__(self, folder: Path, rgb_ext: str = ".png") -> None:
        self.folder = folder
        self.rgb_ext = rgb_ext
        for sub in ("rgb", "depth", "mask", "mask_visib"):
            (folder / sub).mkdir(parents=True)
        self.camera: dict[str, dict] = {}
        self.gt: dict[str, list] = {}
        self.gt_info: dict[str, list] = {}

    def add(self, im_id: int, scene: Scene, annotated: list[tuple[int, int]], seed: int) -> list:
        """Render the scene; ``annotated`` lists (scene index, obj_id) pairs to annotate."""
        camera = Camera(K, WIDTH, HEIGHT)
        frame = scene.render(camera, noise_std=0.015, seed=seed)
        masks_all = {}
        for index, _ in annotated:
            if len(scene.objects) == 1:
                masks_all[index] = frame.valid
                continue
            alone = Scene(background=(0.0, 0.0, 0.0))
            alone.add(scene.objects[index - 1])
            masks_all[index] = alone.render(camera).valid
        gts, infos = _gt_entries(frame, annotated, masks_all)
        cv2.imwrite(str(self.folder / "rgb" / f"{im_id:06d}{self.rgb_ext}"), frame.rgb[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 92] if self.rgb_ext == ".jpg" else [])
        depth = np.round(frame.depth * 1000.0 / DEPTH_SCALE).astype(np.uint16)
        cv2.imwrite(str(self.folder / "depth" / f"{im_id:06d}.png"), depth)
        for gt_id, (index, _) in enumerate(annotated):
            name = f"{im_id:06d}_{gt_id:06d}.png"
            cv2.imwrite(str(self.folder / "mask" / name), masks_all[index].astype(np.uint8) * 255)
            visib = (frame.instance == index).astype(np.uint8) * 255
            cv2.imwrite(str(self.folder / "mask_visib" / name), visib)
        key = str(im_id)
        self.camera[key] = {"cam_K": [float(v) for v in K.reshape(-1)],
                            "depth_scale": DEPTH_SCALE,
                            "cam_R_w2c": [float(v) for v in np.eye(3).reshape(-1)],
                            "cam_t_w2c": [0.0, 0.0, 0.0]}
        self.gt[key] = gts
        self.gt_info[key] = infos
        return infos

    def close(self) -> None:
        for name, data in (("scene_camera", self.camera), ("scene_gt", self.gt),
                           ("scene_gt_info", self.gt_info)):
            (self.folder / f"{name}.json").write_text(json.dumps(data, indent=1))


def _render_test(root: Path, objs: list[PoseObject], rng: np.random.Generator,
                 photos: dict[str, np.ndarray], textures: dict[str, np.ndarray],
                 images: int = TEST_IMAGES) -> None:
    writer = _SceneWriter(root / "test" / "000001")
    targets = []
    grid = [(-0.085, -0.06), (0.085, -0.06), (-0.085, 0.06), (0.085, 0.06)]
    for im_id in range(1, images + 1):
        scene = Scene(background=_background(rng, photos))
        slots = rng.permutation(len(grid))
        annotated = []
        centres = []
        for obj, slot in zip(objs, slots, strict=True):
            x, y = grid[slot]
            centre = np.array([x + rng.uniform(-0.015, 0.015), y + rng.uniform(-0.012, 0.012),
                               rng.uniform(0.42, 0.62)])
            index = scene.add(_scene_object(obj, pose_matrix(random_rotation(rng), centre),
                                            textures))
            annotated.append((index, obj.obj_id))
            centres.append(centre)
        for _ in range(int(rng.integers(1, 3))):
            scene.add(_occluder(rng, centres[int(rng.integers(len(centres)))]))
        infos = writer.add(im_id, scene, annotated, seed=int(rng.integers(1 << 31)))
        for (_, obj_id), info in zip(annotated, infos, strict=True):
            if info["visib_fract"] >= MIN_VISIB:
                targets.append({"im_id": im_id, "inst_count": 1, "obj_id": obj_id,
                                "scene_id": 1})
    writer.close()
    (root / "test_targets_bop19.json").write_text(json.dumps(targets, indent=1))


def _render_train(root: Path, objs: list[PoseObject], rng: np.random.Generator,
                  photos: dict[str, np.ndarray], textures: dict[str, np.ndarray],
                  views: int = TRAIN_VIEWS) -> None:
    for obj in objs:
        writer = _SceneWriter(root / "train" / f"{obj.obj_id:06d}", rgb_ext=".jpg")
        for im_id in range(views):
            scene = Scene(background=_background(rng, photos))
            centre = np.array([rng.uniform(-0.06, 0.06), rng.uniform(-0.045, 0.045),
                               rng.uniform(0.40, 0.65)])
            index = scene.add(_scene_object(obj, pose_matrix(random_rotation(rng), centre),
                                            textures))
            writer.add(im_id, scene, [(index, obj.obj_id)], seed=int(rng.integers(1 << 31)))
        writer.close()


def write_set(root: Path, test_images: int = TEST_IMAGES, train_views: int = TRAIN_VIEWS,
              seed: int = SEED) -> None:
    """Write the set into ``root`` (smaller sizes make test fixtures)."""
    rng = np.random.default_rng(seed)
    objs = objects()
    photos = {name: _photo(name) for name in BACKGROUNDS}
    textures = {name: _photo(name) for name in ("astronaut", "cat")}
    _write_models(root, objs, rng)
    _render_test(root, objs, rng, photos, textures, test_images)
    if train_views:
        _render_train(root, objs, rng, photos, textures, train_views)
    (root / "camera.json").write_text(json.dumps({
        "cx": float(K[0, 2]), "cy": float(K[1, 2]), "fx": float(K[0, 0]), "fy": float(K[1, 1]),
        "depth_scale": DEPTH_SCALE, "width": WIDTH, "height": HEIGHT}, indent=1))


@EMBEDDED.register("synthetic-pose")
def build_synthetic_pose(root: Path) -> None:
    """Four objects (one continuous, one discrete symmetry) in the BOP layout, train/test."""
    write_set(root)
