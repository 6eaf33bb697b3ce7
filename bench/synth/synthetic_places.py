"""Embedded ``synthetic-places``: a rendered street seen from a camera driving along it,
written in the ``geo-retrieval`` layout (``database/``, ``queries/``, ``positions.csv``).

The street (``bench.geometry.render``) runs east along y = 0 for 480 m with building blocks
on both sides, each a box textured with a crop of a scikit-image photograph. Database
frames are taken every 8 m along the road's centre line under the afternoon light;
queries at random positions (up to 3 m off the centre line) under an evening light with a
warmer colour and sensor noise. All cameras are 1.7 m above the ground and look at the
northern facades, 50 degrees left of the driving direction, with a few degrees of random
yaw for the queries. Positions are the camera centres (east, north) in metres.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from bench.geometry.cameras import Camera, intrinsics_from_fov, look_at
from bench.geometry.render import Scene, SceneObject
from bench.registry import EMBEDDED
from bench.synth.synthetic_retrieval import photo, tint

SEED = 0
LENGTH_M = 480.0
DB_STEP_M = 8.0
N_QUERIES = 24
WIDTH, HEIGHT, FOV_DEG = 160, 120, 70.0
EYE_HEIGHT_M = 1.7
HEADING_DEG = 50.0
TEXTURES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
            "immunohistochemistry", "motorcycle", "brick", "colorwheel", "retina")
DAY = {"light_direction": (-0.3, -0.5, -1.0), "ambient": 0.35}
EVENING = {"light_direction": (0.6, 0.3, -0.4), "ambient": 0.5}


def street_objects(rng: np.random.Generator) -> list[SceneObject]:
    """Ground plane and two rows of textured building blocks along y = 0."""
    ground = o3d.geometry.TriangleMesh.create_box(LENGTH_M + 200, 200, 0.1)
    ground.translate((-100, -100, -0.1))
    objects = [SceneObject(ground, color=(0.55, 0.55, 0.55), texture=photo("gravel"),
                           texture_scale=0.25, name="ground")]
    sources = [photo(name) for name in TEXTURES]
    for side in (1.0, -1.0):
        x = -40.0
        while x < LENGTH_M + 40:
            width = rng.uniform(12, 30)
            depth, height = rng.uniform(8, 14), rng.uniform(6, 24)
            box = o3d.geometry.TriangleMesh.create_box(width, depth, height)
            y0 = 9.0 + rng.uniform(0, 4) if side > 0 else -(9.0 + rng.uniform(0, 4)) - depth
            box.translate((x, y0, 0.0))
            source = sources[rng.integers(len(sources))]
            h, w = source.shape[:2]
            size = int(rng.uniform(0.3, 0.6) * min(h, w))
            top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            texture = source[top:top + size, left:left + size]
            if texture.std(axis=2).mean() < 1.0:
                texture = tint(texture, rng)
            objects.append(SceneObject(box, color=tuple(rng.uniform(0.7, 1.0, 3)),
                                       texture=texture, texture_scale=1.0 / rng.uniform(6, 14),
                                       name=f"block{len(objects)}"))
            x += width + rng.uniform(1, 6)
    return objects


def camera_at(east: float, north: float, yaw_deg: float) -> Camera:
    """A camera at (east, north, 1.7 m) looking ``yaw_deg`` left of east, slightly up."""
    eye = np.array([east, north, EYE_HEIGHT_M])
    yaw = np.radians(yaw_deg)
    target = eye + np.array([np.cos(yaw), np.sin(yaw), 0.08])
    rotation, translation = look_at(eye, target)
    return Camera(intrinsics_from_fov(WIDTH, HEIGHT, FOV_DEG), WIDTH, HEIGHT, rotation,
                  translation)


def _write(root: Path, folder: str, name: str, rgb: np.ndarray) -> str:
    path = root / folder / name
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return f"{folder}/{name}"


@EMBEDDED.register("synthetic-places")
def build_synthetic_places(root: Path) -> None:
    """Rendered street, database every 8 m (day) and 24 queries (evening), geo-retrieval."""
    rng = np.random.default_rng(SEED)
    objects = street_objects(rng)
    day, evening = Scene(background=(0.62, 0.75, 0.9), **DAY), Scene(
        background=(0.85, 0.6, 0.45), **EVENING)
    for obj in objects:
        day.add(obj)
        evening.add(obj)
    (root / "database").mkdir(parents=True)
    (root / "queries").mkdir()
    rows: list[tuple[str, float, float]] = []
    for i, east in enumerate(np.arange(0.0, LENGTH_M + 1e-9, DB_STEP_M)):
        frame = day.render(camera_at(east, 0.0, HEADING_DEG))
        rows.append((_write(root, "database", f"{i:04d}.jpg", frame.rgb), float(east), 0.0))
    warm = np.array([1.08, 0.95, 0.8])
    for q in range(N_QUERIES):
        east, north = rng.uniform(0.0, LENGTH_M), rng.uniform(-3.0, 3.0)
        yaw = HEADING_DEG + rng.uniform(-8.0, 8.0)
        frame = evening.render(camera_at(east, north, yaw), noise_std=0.02, seed=SEED + q)
        rgb = np.clip(frame.rgb.astype(np.float32) * warm, 0, 255).astype(np.uint8)
        rows.append((_write(root, "queries", f"q{q:03d}.jpg", rgb), float(east), float(north)))
    with open(root / "positions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "east", "north"])
        writer.writerows((image, f"{e:.3f}", f"{n:.3f}") for image, e, n in rows)
