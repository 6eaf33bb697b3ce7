"""Embedded ``synthetic-rooms``: rendered box and L-shaped rooms written in the LSUN room
layout challenge's layout (plus 3D extras in side files).

Each room has textured walls, floor and ceiling (scikit-image's sample photographs) and
2-4 furniture-like boxes that occlude the layout; a camera stands inside at a random
position, height, heading, pitch and roll (60 degree horizontal field of view, 320x240).
Views whose visible layout is not one of LSUN's 11 types (more than three walls, a wall
seen through an L's reflex corner, corners half in view) are redrawn. Ground truth comes
from a second rendering of the empty room: the amodal surface labels, the layout depth and
the planes; the type and corners follow from the room's edges, clipped to the image.

    images/<name>.jpg                   the rendered view (with clutter)
    training.mat, validation.mat        LSUN struct arrays: image, scene, type, point, resolution
    layout_seg/<name>.mat               variable ``layout``: uint8 [H,W] labels 1..5
    layout_depth/<name>.png             uint16 millimetres, empty-room depth
    extras/<name>.json                  {"K": 3x3, "planes": {label: [nx, ny, nz, d]}, "room"}

``point`` is stored 1-based (MATLAB's convention, as in LSUN's files). 200 training views
(50 rooms) and 60 validation views (15 other rooms).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from bench.families.layout import CEILING, FLOOR, level_wall_layout, rasterize_layout
from bench.formats.images import write_depth_png
from bench.formats.matfile import write_mat
from bench.geometry.cameras import (
    Camera,
    clip_segment_to_image,
    intrinsics_from_fov,
    look_at,
    pose_matrix,
)
from bench.geometry.render import Scene, SceneObject
from bench.geometry.rotations import rotation_matrix
from bench.registry import EMBEDDED
from bench.synth.synthetic_depth import textures

WIDTH, HEIGHT = 320, 240
K_ROOMS = intrinsics_from_fov(WIDTH, HEIGHT, 66.0)
TEXTURE_SIZE = 256
VIEWS_PER_ROOM = 4
TRAIN_ROOMS, VALIDATION_ROOMS = 50, 15
TRAIN_SEED, VALIDATION_SEED = 20000, 10000
MIN_WALL_SHARE = 0.015
MIN_AGREEMENT = 0.98
NEAR = 0.05


@functools.lru_cache(maxsize=1)
def small_textures() -> list[np.ndarray]:
    """The renderer's photographs at most TEXTURE_SIZE pixels wide, float32 in [0,1]
    (the renderer converts a texture on every frame; small ones keep the build fast)."""
    out = []
    for image in textures():
        scale = TEXTURE_SIZE / max(image.shape[:2])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(small.astype(np.float32) / 255.0)
    return out


class EmptyRoom:
    """Ray casts against the room's own surfaces only: per pixel the surface index
    (walls in outline order, then floor, ceiling; -1 = none) and the z-depth (m)."""

    def __init__(self, objects: list[SceneObject]) -> None:
        self.scene = o3d.t.geometry.RaycastingScene()
        for obj in objects:
            mesh = o3d.geometry.TriangleMesh(obj.mesh)
            mesh.transform(obj.pose)
            self.scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))

    def cast(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """(surface index [H,W] int64, depth [H,W] float32) seen by ``camera``."""
        k_open3d = camera.K.astype(np.float64).copy()
        k_open3d[:2, 2] += 0.5  # Open3D casts through pixel corners + 0.5 (see render.py)
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            o3d.core.Tensor(k_open3d), o3d.core.Tensor(camera.extrinsic),
            camera.width, camera.height)
        hits = self.scene.cast_rays(rays)
        t_hit = hits["t_hit"].numpy()
        valid = np.isfinite(t_hit)
        ids = np.where(valid, hits["geometry_ids"].numpy().astype(np.int64), -1)
        ray_array = rays.numpy()
        points = ray_array[..., :3] + ray_array[..., 3:] * np.where(valid, t_hit, 0)[..., None]
        depth = np.where(valid, (points @ camera.R.T + camera.t)[..., 2], 0.0)
        return ids, depth.astype(np.float32)


def room_outline(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Floor polygon [V,2] (metres, counter-clockwise seen from above) of a box or L room."""
    w, d = rng.uniform(1.8, 3.2), rng.uniform(1.8, 3.0)
    if rng.random() < 0.6:
        return np.array([(-w, -d), (w, -d), (w, d), (-w, d)]), "box"
    e, c = rng.uniform(-0.2, 0.5) * w, rng.uniform(-0.2, 0.5) * d
    return np.array([(-w, -d), (w, -d), (w, c), (e, c), (e, d), (-w, d)]), "L"


def _quad(corners: np.ndarray) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(corners),
                                     o3d.utility.Vector3iVector([[0, 1, 2], [0, 2, 3]]))
    return mesh


def room_objects(outline: np.ndarray, height: float, rng: np.random.Generator,
                 tex: list[np.ndarray]) -> list[SceneObject]:
    """One quad per wall (in outline order), then a floor and a ceiling quad."""
    objects = []
    count = len(outline)
    for i in range(count):
        a, b = outline[i], outline[(i + 1) % count]
        corners = np.array([[*a, 0.0], [*b, 0.0], [*b, height], [*a, height]])
        objects.append(SceneObject(_quad(corners), color=tuple(rng.uniform(0.55, 1.0, 3)),
                                   texture=tex[int(rng.integers(len(tex)))],
                                   texture_scale=float(rng.uniform(0.3, 0.9)), name=f"wall{i}"))
    (x0, y0), (x1, y1) = outline.min(0), outline.max(0)
    for z, name in ((0.0, "floor"), (height, "ceiling")):
        corners = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
        objects.append(SceneObject(_quad(corners), color=tuple(rng.uniform(0.55, 1.0, 3)),
                                   texture=tex[int(rng.integers(len(tex)))],
                                   texture_scale=float(rng.uniform(0.3, 0.9)), name=name))
    return objects


def inside(outline: np.ndarray, point: np.ndarray, clearance: float) -> bool:
    """Whether ``point`` [2] lies in the polygon at least ``clearance`` from every wall."""
    path_ok = cv2.pointPolygonTest(outline.astype(np.float32), tuple(map(float, point)), True)
    return path_ok >= clearance


def clutter(outline: np.ndarray, rng: np.random.Generator, tex: list[np.ndarray]
            ) -> list[SceneObject]:
    """2-4 furniture-like boxes standing on the floor inside the room."""
    boxes = []
    while len(boxes) < int(rng.integers(2, 5)):
        sx, sy, sz = rng.uniform(0.4, 1.2), rng.uniform(0.4, 0.9), rng.uniform(0.4, 1.1)
        centre = rng.uniform(outline.min(0), outline.max(0))
        if not inside(outline, centre, max(sx, sy) / 2 + 0.05):
            continue
        mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
        mesh.translate((-sx / 2, -sy / 2, 0))
        pose = pose_matrix(rotation_matrix((0, 0, 1), float(rng.uniform(0, 90))),
                           (*centre, 0.0))
        boxes.append(SceneObject(mesh, pose, color=tuple(rng.uniform(0.3, 1.0, 3)),
                                 texture=tex[int(rng.integers(len(tex)))],
                                 texture_scale=float(rng.uniform(1.0, 3.0)),
                                 name=f"box{len(boxes)}"))
    return boxes


def random_camera(outline: np.ndarray, height: float, rng: np.random.Generator) -> Camera:
    """A camera inside the room, 1.1-1.7 m high, heading within 50 degrees of the room's
    centre, pitch +-12 deg, roll +-4 deg."""
    while True:
        eye = rng.uniform(outline.min(0), outline.max(0))
        if inside(outline, eye, 0.5):
            break
    towards = outline.mean(0) - eye
    yaw = np.arctan2(towards[1], towards[0]) + np.radians(rng.uniform(-50, 50))
    pitch = np.radians(rng.uniform(-12, 12))
    position = np.array([*eye, rng.uniform(1.1, min(1.7, height - 0.4))])
    direction = np.array([np.cos(yaw), np.sin(yaw), np.tan(pitch)])
    rotation, _ = look_at(position, position + direction)
    rotation = rotation_matrix((0, 0, 1), float(rng.uniform(-4, 4))) @ rotation
    return Camera(K_ROOMS, WIDTH, HEIGHT, rotation, -rotation @ position)


def clip_segment(camera: Camera, start: np.ndarray, end: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, bool, bool] | None:
    """The image of the world 3D segment start-end clipped to the view (see
    ``clip_segment_to_image``)."""
    return clip_segment_to_image(camera.R @ start + camera.t, camera.R @ end + camera.t,
                                 camera.K, HEIGHT, WIDTH, NEAR)


def _edge_far_end(camera: Camera, outline: np.ndarray, wall: int, shared: int, z: float
                  ) -> np.ndarray | None:
    """Border end of wall ``wall``'s edge at height z, running from its other vertex towards
    vertex ``shared`` (None when it is not clipped at the border, i.e. not LSUN-like)."""
    count = len(outline)
    other = (wall + 1) % count if wall == shared else wall
    seg = clip_segment(camera, np.array([*outline[other], z]), np.array([*outline[shared], z]))
    if seg is None or seg[2]:
        return None
    return seg[0]


def layout_from_view(camera: Camera, outline: np.ndarray, height: float,
                     walls: list[int]) -> tuple[int, np.ndarray] | None:
    """LSUN type and corners [N,2] of a view whose visible walls are ``walls`` (left to
    right); None when the view is not one of LSUN's layouts."""
    count = len(outline)
    shared = []
    for a, b in itertools.pairwise(walls):
        if b == (a + 1) % count:
            vertex = b
        elif a == (b + 1) % count:
            vertex = a
        else:
            return None
        prev, here, nxt = outline[vertex - 1], outline[vertex], outline[(vertex + 1) % count]
        turn = np.cross(here - prev, nxt - here)
        if turn <= 0:  # reflex vertex of the L: an occluding edge, not a room corner
            return None
        shared.append(vertex)
    edges = []
    for vertex in shared:
        seg = clip_segment(camera, np.array([*outline[vertex], height]),
                           np.array([*outline[vertex], 0.0]))
        if seg is None:
            return None
        edges.append(seg)
    if len(walls) == 1:
        return _single_wall(camera, outline, height, walls[0])
    top_in = [e[2] for e in edges]
    bottom_in = [e[3] for e in edges]
    first, last = walls[0], walls[-1]

    def far(wall: int, vertex: int, z: float) -> np.ndarray | None:
        return _edge_far_end(camera, outline, wall, vertex, z)

    v0, v1 = shared[0], shared[-1]
    if len(walls) == 3:
        (ab, bc) = edges
        if all(top_in) and all(bottom_in):
            kind = 0
            points = [ab[0], far(first, v0, height), ab[1], far(first, v0, 0.0), bc[1],
                      far(last, v1, 0.0), bc[0], far(last, v1, height)]
        elif all(bottom_in) and not any(top_in):
            kind = 1
            points = [ab[1], ab[0], far(first, v0, 0.0), bc[1], bc[0], far(last, v1, 0.0)]
        elif all(top_in) and not any(bottom_in):
            kind = 2
            points = [ab[0], far(first, v0, height), ab[1], bc[0], far(last, v1, height), bc[1]]
        elif not any(top_in) and not any(bottom_in):
            kind = 7
            points = [ab[0], ab[1], bc[0], bc[1]]
        else:
            return None
    elif len(walls) == 2:
        (ab,) = edges
        if top_in[0] and bottom_in[0]:
            kind = 5
            points = [ab[0], far(first, v0, height), far(last, v0, height), ab[1],
                      far(first, v0, 0.0), far(last, v0, 0.0)]
        elif top_in[0]:
            kind = 3
            points = [ab[0], far(first, v0, height), ab[1], far(last, v0, height)]
        elif bottom_in[0]:
            kind = 4
            points = [ab[1], far(first, v0, 0.0), ab[0], far(last, v0, 0.0)]
        else:
            kind = 10
            points = [ab[0], ab[1]]
    else:
        return None
    if any(p is None for p in points):
        return None
    return kind, np.array(points, dtype=np.float64)


def _single_wall(camera: Camera, outline: np.ndarray, height: float, wall: int
                 ) -> tuple[int, np.ndarray] | None:
    a, b = outline[wall], outline[(wall + 1) % len(outline)]
    return level_wall_layout(*(clip_segment(camera, np.array([*a, z]), np.array([*b, z]))
                               for z in (height, 0.0)))


def world_planes(outline: np.ndarray, height: float) -> list[np.ndarray]:
    """World planes [4] (n, d with n . X + d = 0, n into the room) of walls, floor, ceiling."""
    planes = []
    count = len(outline)
    for i in range(count):
        a, b = outline[i], outline[(i + 1) % count]
        edge = (b - a) / np.linalg.norm(b - a)
        normal = np.array([-edge[1], edge[0], 0.0])  # left of a counter-clockwise edge
        planes.append(np.array([*normal, -normal[:2] @ a]))
    planes.append(np.array([0.0, 0.0, 1.0, 0.0]))
    planes.append(np.array([0.0, 0.0, -1.0, height]))
    return planes


def render_view(scene: Scene, room: EmptyRoom, outline: np.ndarray, height: float,
                rng: np.random.Generator, tries: int = 200) -> dict:
    """Draw cameras until one sees an LSUN layout; return its image and ground truth."""
    count = len(outline)
    pixels = WIDTH * HEIGHT
    for _ in range(tries):
        camera = random_camera(outline, height, rng)
        ids, depth = room.cast(camera)
        if (ids < 0).any():
            continue
        shares = np.bincount(ids.ravel(), minlength=count + 2) / pixels
        wall_shares = shares[:count]
        if ((wall_shares > 0) & (wall_shares < MIN_WALL_SHARE)).any():
            continue
        walls = [int(w) for w in np.nonzero(wall_shares)[0]]
        columns = [float(np.nonzero(ids == w)[1].mean()) for w in walls]
        walls = [w for _, w in sorted(zip(columns, walls, strict=True))]
        layout = layout_from_view(camera, outline, height, walls)
        if layout is None:
            continue
        kind, corners = layout
        drawn = rasterize_layout(kind, corners, HEIGHT, WIDTH)
        labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        surface_label = {count: FLOOR, count + 1: CEILING}
        for wall in walls:
            votes = np.bincount(drawn[ids == wall], minlength=6)
            surface_label[wall] = int(votes.argmax())
        for surface, label in surface_label.items():
            labels[ids == surface] = label
        if (labels == drawn).mean() < MIN_AGREEMENT or len(set(surface_label.values())) != len(
                surface_label):
            continue
        frame = scene.render(camera, noise_std=0.01, seed=int(rng.integers(1 << 31)))
        planes = {}
        for surface, plane in enumerate(world_planes(outline, height)):
            if surface in surface_label and (ids == surface).any():
                normal = camera.R @ plane[:3]
                planes[str(surface_label[surface])] = [*normal, plane[3] - normal @ camera.t]
        return {"rgb": frame.rgb, "labels": labels, "type": kind, "corners": corners,
                "depth": depth, "planes": planes}
    raise RuntimeError("no LSUN-like view found in a synthetic room")


def render_room(root: Path, seed: int) -> list[tuple[str, str, int, np.ndarray]]:
    """Render VIEWS_PER_ROOM views of the room drawn from ``seed`` into ``root``; returns
    (image name, room shape, type, corners 1-based) per view."""
    tex = small_textures()
    rng = np.random.default_rng(seed)
    outline, shape = room_outline(rng)
    height = float(rng.uniform(2.5, 3.1))
    walls = room_objects(outline, height, rng, tex)
    room, scene = EmptyRoom(walls), Scene(background=(0, 0, 0))
    for obj in walls + clutter(outline, rng, tex):
        scene.add(obj)
    entries = []
    for view in range(VIEWS_PER_ROOM):
        name = f"sr{seed:05d}_{view}"
        sample = render_view(scene, room, outline, height, rng)
        _write_view(root, name, sample, shape)
        entries.append((name, shape, sample["type"], sample["corners"] + 1.0))
    return entries


def build_split(root: Path, split: str, rooms: int, seed: int) -> None:
    """Render ``rooms`` rooms x VIEWS_PER_ROOM views and write ``<split>.mat`` (rooms are
    rendered in parallel processes; every room has its own seed, so the result does not
    depend on the number of processes)."""
    seeds = [seed + index for index in range(rooms)]
    with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        entries = [e for room in pool.map(render_room, [root] * rooms, seeds) for e in room]
    records = np.zeros((1, len(entries)), dtype=[(f, object) for f in
                                                  ("image", "scene", "type", "point",
                                                   "resolution")])
    for index, (name, shape, kind, points) in enumerate(entries):
        records[0, index] = (name, f"{shape} room", np.array([[kind]], dtype=np.uint8),
                             points, np.array([[HEIGHT, WIDTH]], dtype=np.uint16))
    write_mat(root / f"{split}.mat", {split: records})


def _write_view(root: Path, name: str, sample: dict, shape: str) -> None:
    for folder in ("images", "layout_seg", "layout_depth", "extras"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / f"{name}.jpg"),
                cv2.cvtColor(sample["rgb"], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    write_mat(root / "layout_seg" / f"{name}.mat", {"layout": sample["labels"]})
    write_depth_png(root / "layout_depth" / f"{name}.png", sample["depth"], 1000.0)
    extras = {"K": K_ROOMS.tolist(), "room": shape,
              "planes": {k: [round(float(v), 6) for v in p] for k, p in sample["planes"].items()}}
    (root / "extras" / f"{name}.json").write_text(json.dumps(extras), encoding="utf-8")


@EMBEDDED.register("synthetic-rooms")
def build_synthetic_rooms(root: Path) -> None:
    """Rendered box and L rooms with clutter, LSUN layout: 200 training, 60 validation."""
    build_split(root, "training", TRAIN_ROOMS, TRAIN_SEED)
    build_split(root, "validation", VALIDATION_ROOMS, VALIDATION_SEED)


# 2: corners rasterised at pixel centres; 3: byte-stable .mat headers (no time of writing).
# An arbench build of an older version is rebuilt.
build_synthetic_rooms.version = "3"
