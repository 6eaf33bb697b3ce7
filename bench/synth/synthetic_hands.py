"""Embedded ``synthetic-hands``: the procedural capsule hand (``bench.synth.hand_model``)
rendered over scikit-image photographs with random occluders, written in FreiHAND's layout.

Per split (``training`` = train, ``evaluation`` = test, disjoint seeds):
``<split>/rgb/%08d.jpg`` (RGB), ``<split>/mask/%08d.jpg`` (hand mask, 255 = hand),
``<split>/depth/%08d.png`` (uint16 z-depth in millimetres, 0 = background),
``<split>_K.json`` ([N][3][3]), ``<split>_xyz.json`` ([N][21][3], metres, camera frame,
FreiHAND keypoint order), ``<split>_scale.json`` ([N], metres: the middle finger's
MCP-PIP bone, as FreiHAND's scale), and ``<split>_vis.json`` ([N][21], 1 when the keypoint
projects into the image and is not hidden by an occluder or another part of the hand; an
arbench extension FreiHAND does not have). 2D keypoints are the exact projections of xyz by K.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from bench.geometry.cameras import Camera, intrinsics, pose_matrix, project
from bench.geometry.render import Scene, SceneObject
from bench.geometry.rotations import rotation_matrix
from bench.registry import EMBEDDED
from bench.synth import hand_model

IMAGE_SIZE = 128
SPLITS = {"training": (640, 1), "evaluation": (160, 2)}
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.90, 0.70, 0.56], [0.80, 0.60, 0.46], [0.67, 0.48, 0.34],
    [0.52, 0.36, 0.25], [0.36, 0.24, 0.17],
])
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "camera",
          "coins", "immunohistochemistry", "stereo_motorcycle", "hubble_deep_field", "clock")
# A keypoint counts as visible when the surface seen at its pixel is the hand and lies at
# most this far (metres) in front of it (keypoints sit inside capsules of radius < 2 cm).
VISIBILITY_MARGIN = 0.025


def photographs() -> list[np.ndarray]:
    """scikit-image's bundled sample photographs as RGB uint8 arrays."""
    from skimage import data

    photos = []
    for name in PHOTOS:
        image = getattr(data, name)()
        image = image[0] if isinstance(image, tuple) else image
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return photos


def _background(rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    size = int(rng.integers(min(96, height, width), min(height, width) + 1))
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    crop = photo[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def _global_rotation(rng: np.random.Generator) -> np.ndarray:
    """Hand->camera rotation: fingers up in the image, palm or back to the camera, then a
    tilt of up to 60 degrees about a random in-plane axis and a full roll about the view."""
    base = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    if rng.random() < 0.5:
        base = rotation_matrix((0.0, 1.0, 0.0), 180.0) @ base
    angle = rng.uniform(0.0, 2 * np.pi)
    tilt = rotation_matrix((np.cos(angle), np.sin(angle), 0.0), rng.uniform(0.0, 60.0))
    roll = rotation_matrix((0.0, 0.0, 1.0), rng.uniform(-180.0, 180.0))
    return roll @ tilt @ base


def _occluder(rng: np.random.Generator, target: np.ndarray) -> tuple[o3d.geometry.TriangleMesh,
                                                                     np.ndarray]:
    """A small box, sphere or cylinder on the line of sight to ``target`` (camera frame)."""
    kind = rng.integers(3)
    size = rng.uniform(0.02, 0.045)
    if kind == 0:
        mesh = o3d.geometry.TriangleMesh.create_box(size, size * rng.uniform(0.5, 2.5), size)
        mesh.translate(-mesh.get_center())
    elif kind == 1:
        mesh = o3d.geometry.TriangleMesh.create_sphere(size / 2, 10)
    else:
        mesh = o3d.geometry.TriangleMesh.create_cylinder(size / 3, size * 3, 12, 1)
    distance = target[2] - rng.uniform(0.04, 0.12)
    position = target / target[2] * distance + rng.normal(0.0, 0.01, 3)
    pose = pose_matrix(rotation_matrix(rng.normal(size=3), rng.uniform(0, 180)), position)
    return mesh, pose


def render_sample(rng: np.random.Generator, photos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One random hand image: rgb, mask, depth, K, xyz [21,3] (camera frame), vis [21]."""
    focal = rng.uniform(240.0, 300.0)
    centre = (IMAGE_SIZE - 1) / 2.0
    K = intrinsics(focal, focal, centre + rng.uniform(-3, 3), centre + rng.uniform(-3, 3))
    pose = hand_model.random_pose(rng)
    local = hand_model.forward_kinematics(pose)
    rotation = _global_rotation(rng)
    depth = rng.uniform(0.42, 0.62)
    pixel = np.array([centre, centre]) + rng.normal(0.0, 6.0, 2)
    target = np.array([(pixel[0] - K[0, 2]) / focal, (pixel[1] - K[1, 2]) / focal, 1.0]) * depth
    translation = target - rotation @ local.mean(axis=0)
    xyz = local @ rotation.T + translation

    scene = Scene(background=_background(rng, photos),
                  light_direction=(rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0),
                  ambient=rng.uniform(0.3, 0.5))
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 0.03, 3), 0, 1)
    hand_id = scene.add(SceneObject(hand_model.hand_mesh(local, pose.scale),
                                    pose_matrix(rotation, translation), tuple(skin), name="hand"))
    for _ in range(rng.choice(3, p=[0.45, 0.4, 0.15])):
        mesh, occluder_pose = _occluder(rng, xyz[rng.integers(21)])
        colour = tuple(rng.uniform(0.1, 0.9, 3))
        scene.add(SceneObject(mesh, occluder_pose, colour, texture=_background(rng, photos)))
    frame = scene.render(Camera(K, IMAGE_SIZE, IMAGE_SIZE), noise_std=rng.uniform(0.0, 0.03),
                         seed=int(rng.integers(2**31)))

    uv = project(xyz, K)
    cols, rows = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < IMAGE_SIZE) & (rows >= 0) & (rows < IMAGE_SIZE)
    rows_c, cols_c = rows.clip(0, IMAGE_SIZE - 1), cols.clip(0, IMAGE_SIZE - 1)
    seen = (frame.instance[rows_c, cols_c] == hand_id) & (
        frame.depth[rows_c, cols_c] >= xyz[:, 2] - VISIBILITY_MARGIN)
    return {
        "rgb": frame.rgb, "mask": frame.instance == hand_id, "depth": frame.depth, "K": K,
        "xyz": xyz, "vis": (inside & seen).astype(np.int64), "scale": np.linalg.norm(
            xyz[10] - xyz[9]),
    }


def write_split(root: Path, split: str, count: int, seed: int) -> None:
    """Render ``count`` samples with ``seed`` into ``root`` in FreiHAND's layout."""
    rng = np.random.default_rng(seed)
    photos = photographs()
    for folder in ("rgb", "mask", "depth"):
        (root / split / folder).mkdir(parents=True, exist_ok=True)
    Ks, xyzs, vis, scales = [], [], [], []
    for index in range(count):
        sample = render_sample(rng, photos)
        name = f"{index:08d}"
        cv2.imwrite(str(root / split / "rgb" / f"{name}.jpg"),
                    cv2.cvtColor(sample["rgb"], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(root / split / "mask" / f"{name}.jpg"),
                    sample["mask"].astype(np.uint8) * 255)
        depth_mm = np.rint(sample["depth"] * 1000.0).clip(0, 65535).astype(np.uint16)
        cv2.imwrite(str(root / split / "depth" / f"{name}.png"), depth_mm)
        Ks.append(np.round(sample["K"], 6).tolist())
        xyzs.append(np.round(sample["xyz"], 7).tolist())
        vis.append(sample["vis"].tolist())
        scales.append(round(float(sample["scale"]), 7))
    for suffix, payload in (("K", Ks), ("xyz", xyzs), ("vis", vis), ("scale", scales)):
        (root / f"{split}_{suffix}.json").write_text(json.dumps(payload))


@EMBEDDED.register("synthetic-hands")
def build_synthetic_hands(root: Path, sizes: dict[str, int] | None = None) -> None:
    """Capsule hands over photographs, FreiHAND layout: 640 training / 160 evaluation."""
    for split, (count, seed) in SPLITS.items():
        write_split(root, split, (sizes or {}).get(split, count), seed)
