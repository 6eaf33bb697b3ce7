"""Embedded ``synthetic-depth``: rendered rooms written in the NYU v2 (BTS) layout.

Each scene is a random room (floor, walls, ceiling textured with scikit-image's sample
photographs) holding a few textured primitives, rendered by ``bench.geometry.render`` from
several camera positions inside it: exact metric z-depth, no missing pixels. Images are
320x240 with the NYU Kinect intrinsics halved, depth as uint16 millimetre PNGs:

    official_splits/test/room_000/rgb_00000.jpg, sync_depth_00000.png, ...
    nyudepthv2_test_files_with_gt.txt      (room_000/rgb_00000.jpg room_000/sync_... f)
    sync/room_1000/rgb_00000.jpg, ...      the train split, disjoint rooms (other seeds)
    nyudepthv2_train_files_with_gt.txt

The room and prop builders here are reused by ``synthetic_davis``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from bench.formats.images import write_depth_png
from bench.geometry.cameras import NYU_INTRINSICS, Camera, intrinsics, look_at, pose_matrix
from bench.geometry.render import Scene, SceneObject
from bench.registry import EMBEDDED

WIDTH, HEIGHT = 320, 240
SCALE = WIDTH / 640
K_HALF = intrinsics(*(v * SCALE for v in NYU_INTRINSICS))
TEST_ROOMS, TRAIN_ROOMS, VIEWS_PER_ROOM = 8, 30, 4
TRAIN_SEED_OFFSET = 1000
TEXTURE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel",
                 "camera", "moon", "colorwheel", "immunohistochemistry", "coins", "clock")


def textures() -> list[np.ndarray]:
    """scikit-image's bundled sample photographs as uint8 RGB [H,W,3] textures."""
    from skimage import data

    out = []
    for name in TEXTURE_NAMES:
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return out


def _slab(size: tuple[float, float, float], corner: tuple[float, float, float]
          ) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(corner)
    return mesh


def make_room(rng: np.random.Generator, tex: list[np.ndarray]
              ) -> tuple[list[SceneObject], np.ndarray]:
    """Floor, four walls and a ceiling of a random room; returns (objects, half extents).

    The room spans x in [-w, w], y in [-d, d], z in [0, h] (metres, z up).
    """
    w, d, h = rng.uniform(2.0, 3.5), rng.uniform(2.0, 3.0), rng.uniform(2.5, 3.2)
    t = 0.05
    parts = [
        ((2 * w, 2 * d, t), (-w, -d, -t)),          # floor
        ((2 * w, 2 * d, t), (-w, -d, h)),           # ceiling
        ((2 * w, t, h), (-w, -d - t, 0)),           # walls
        ((2 * w, t, h), (-w, d, 0)),
        ((t, 2 * d, h), (-w - t, -d, 0)),
        ((t, 2 * d, h), (w, -d, 0)),
    ]
    objects = []
    for index, (size, corner) in enumerate(parts):
        colour = tuple(rng.uniform(0.5, 1.0, 3))
        objects.append(SceneObject(_slab(size, corner), color=colour,
                                   texture=tex[int(rng.integers(len(tex)))],
                                   texture_scale=float(rng.uniform(0.3, 1.0)),
                                   name=f"room{index}"))
    return objects, np.array([w, d, h])


def make_prop(rng: np.random.Generator, tex: list[np.ndarray]) -> o3d.geometry.TriangleMesh:
    """A random primitive (box, sphere, cylinder, cone, torus) 0.3-1.0 m in size, its base
    at z = 0 and centred on the z axis."""
    kind = int(rng.integers(5))
    size = float(rng.uniform(0.3, 1.0))
    if kind == 0:
        sx, sy, sz = (size * rng.uniform(0.5, 1.0, 3))
        mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
        mesh.translate((-sx / 2, -sy / 2, 0))
    elif kind == 1:
        mesh = o3d.geometry.TriangleMesh.create_sphere(size / 2, resolution=16)
        mesh.translate((0, 0, size / 2))
    elif kind == 2:
        mesh = o3d.geometry.TriangleMesh.create_cylinder(size / 3, size, resolution=24)
        mesh.translate((0, 0, size / 2))
    elif kind == 3:
        mesh = o3d.geometry.TriangleMesh.create_cone(size / 2.5, size, resolution=24)
    else:
        mesh = o3d.geometry.TriangleMesh.create_torus(size / 3, size / 8, 24, 12)
        mesh.translate((0, 0, size / 8))
    return mesh


def place_props(rng: np.random.Generator, tex: list[np.ndarray], extent: np.ndarray,
                count: int) -> list[SceneObject]:
    """``count`` props standing on the floor at random positions and headings."""
    from bench.geometry.rotations import rotation_matrix

    props = []
    for index in range(count):
        position = (rng.uniform(-0.7, 0.7) * extent[0], rng.uniform(-0.7, 0.7) * extent[1], 0)
        rotation = rotation_matrix((0, 0, 1), float(rng.uniform(0, 360)))
        props.append(SceneObject(
            make_prop(rng, tex), pose_matrix(rotation, position),
            color=tuple(rng.uniform(0.3, 1.0, 3)),
            texture=tex[int(rng.integers(len(tex)))] if rng.random() < 0.7 else None,
            texture_scale=float(rng.uniform(1.0, 4.0)), name=f"prop{index}"))
    return props


def random_view(rng: np.random.Generator, extent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A world->camera pose inside the room at eye height, looking across it."""
    eye = (rng.uniform(-0.8, 0.8) * extent[0], rng.uniform(-0.8, 0.8) * extent[1],
           rng.uniform(1.0, 1.8))
    angle = rng.uniform(0, 2 * np.pi)
    target = (eye[0] + np.cos(angle), eye[1] + np.sin(angle), eye[2] - rng.uniform(0.1, 0.6))
    return look_at(eye, target)


def write_room_views(folder: Path, rng: np.random.Generator, tex: list[np.ndarray],
                     views: int) -> list[tuple[str, str]]:
    """Render ``views`` views of one random room into ``folder`` (rgb_*.jpg, sync_depth_*.png);
    returns (image, depth) names relative to ``folder``'s parent."""
    room, extent = make_room(rng, tex)
    scene = Scene(background=(0.0, 0.0, 0.0))
    for obj in room + place_props(rng, tex, extent, int(rng.integers(3, 7))):
        scene.add(obj)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for view in range(views):
        frame = scene.render(Camera(K_HALF, WIDTH, HEIGHT, *random_view(rng, extent)),
                             noise_std=0.01, seed=int(rng.integers(1 << 31)))
        rgb_name, depth_name = f"rgb_{view:05d}.jpg", f"sync_depth_{view:05d}.png"
        cv2.imwrite(str(folder / rgb_name), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_depth_png(folder / depth_name, np.where(frame.valid, frame.depth, 0), 1000.0)
        entries.append((f"{folder.name}/{rgb_name}", f"{folder.name}/{depth_name}"))
    return entries


def build_split(root: Path, folder: str, list_name: str, rooms: int, seed_offset: int,
                prefix: str = "") -> None:
    """Render ``rooms`` rooms into ``root/folder`` and write the BTS file list."""
    tex = textures()
    lines = []
    for room in range(rooms):
        rng = np.random.default_rng(seed_offset + room)
        name = f"room_{seed_offset + room:04d}"
        for image, depth in write_room_views(root / folder / name, rng, tex, VIEWS_PER_ROOM):
            lines.append(f"{prefix}{image} {prefix}{depth} {K_HALF[0, 0]:.4f}")
    (root / list_name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@EMBEDDED.register("synthetic-depth")
def build_synthetic_depth(root: Path) -> None:
    """Rendered rooms, NYU v2 (BTS) layout, 320x240: 32 test views, 120 train (disjoint)."""
    build_split(root, "official_splits/test", "nyudepthv2_test_files_with_gt.txt",
                TEST_ROOMS, 0)
    build_split(root, "sync", "nyudepthv2_train_files_with_gt.txt", TRAIN_ROOMS,
                TRAIN_SEED_OFFSET, prefix="/")
