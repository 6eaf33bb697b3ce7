"""Embedded ``synthetic-davis``: rendered video sequences in the DAVIS 2017 layout + depth.

Each sequence is a random room (``synthetic_depth.make_room``) with two or three props
that slide across the floor while the camera pans slowly; the props are the annotated
objects (ids 1..N, each at least 300 pixels in the first frame), the room is background. Frames are
427x240 (half of DAVIS's 854x480) but stored under ``480p/`` so the ``davis`` adapter reads
the set unchanged:

    ImageSets/2017/val.txt, train.txt
    JPEGImages/480p/<seq>/00000.jpg ...
    Annotations/480p/<seq>/00000.png ...     palette PNGs (the DAVIS palette)
    Depth/480p/<seq>/00000.png ...           uint16 millimetres; intrinsics.txt (fx fy cx cy)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.formats.images import write_depth_png
from bench.formats.palette import davis_palette
from bench.geometry.cameras import Camera, intrinsics_from_fov, look_at, pose_matrix
from bench.geometry.render import Scene, SceneObject
from bench.geometry.rotations import rotation_matrix
from bench.registry import EMBEDDED
from bench.synth.synthetic_depth import make_prop, make_room, textures

WIDTH, HEIGHT, FOV_X = 427, 240, 60.0
FRAMES = 12
MIN_AREA = 300
VAL_SEQUENCES, TRAIN_SEQUENCES = 3, 1
SEED_OFFSET = {"val": 2000, "train": 3000}


def render_sequence(folder_name: str, root: Path, rng: np.random.Generator,
                    tex: list[np.ndarray]) -> None:
    """Render one sequence of ``FRAMES`` frames into the DAVIS folders under ``root``."""
    room, extent = make_room(rng, tex)
    K = intrinsics_from_fov(WIDTH, HEIGHT, FOV_X)
    eye = np.array([0.0, -0.85 * extent[1], rng.uniform(1.3, 1.7)])
    count = int(rng.integers(2, 4))
    meshes = [make_prop(rng, tex) for _ in range(count)]
    colours = [tuple(rng.uniform(0.3, 1.0, 3)) for _ in range(count)]
    textures_ = [tex[int(rng.integers(len(tex)))] for _ in range(count)]
    # Props start spread across the view, 1.5-2.5 m ahead, and move 0.4-0.8 m on the floor.
    starts = np.stack([np.linspace(-0.7, 0.7, count) + rng.uniform(-0.1, 0.1, count),
                       eye[1] + rng.uniform(1.5, 2.5, count), np.zeros(count)], axis=1)
    angles = rng.uniform(0, 2 * np.pi, count)
    steps = rng.uniform(0.4, 0.8, count)[:, None] * np.stack(
        [np.cos(angles), np.sin(angles), np.zeros(count)], axis=1) / FRAMES
    spins = rng.uniform(-8, 8, count)
    pan = rng.uniform(-0.4, 0.4)
    dirs = {kind: root / kind / "480p" / folder_name
            for kind in ("JPEGImages", "Annotations", "Depth")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    (dirs["Depth"] / "intrinsics.txt").write_text(
        f"{K[0, 0]:.6f} {K[1, 1]:.6f} {K[0, 2]:.6f} {K[1, 2]:.6f}\n")
    palette = davis_palette()
    for t in range(FRAMES):
        scene = Scene(background=(0.0, 0.0, 0.0))
        for obj in room:
            scene.add(obj)
        for i in range(count):
            pose = pose_matrix(rotation_matrix((0, 0, 1), spins[i] * t), starts[i] + steps[i] * t)
            scene.add(SceneObject(meshes[i], pose, colours[i], textures_[i], 2.0, f"object{i}"))
        target = (pan * t / FRAMES, eye[1] + 2.0, 0.3)
        frame = scene.render(Camera(K, WIDTH, HEIGHT, *look_at(eye, target)), noise_std=0.01,
                             seed=int(rng.integers(1 << 31)))
        labels = np.where(frame.instance > len(room), frame.instance - len(room), 0)
        name = f"{t:05d}"
        cv2.imwrite(str(dirs["JPEGImages"] / f"{name}.jpg"),
                    cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        mask = Image.fromarray(labels.astype(np.uint8), mode="P")
        mask.putpalette(palette)
        mask.save(dirs["Annotations"] / f"{name}.png")
        write_depth_png(dirs["Depth"] / f"{name}.png", np.where(frame.valid, frame.depth, 0),
                        1000.0)
        if t == 0:
            areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
            if (areas < MIN_AREA).any():
                raise RuntimeError(f"{folder_name}: an object is (nearly) hidden in frame 0")


@EMBEDDED.register("synthetic-davis")
def build_synthetic_davis(root: Path) -> None:
    """Rendered DAVIS 2017-layout videos with moving props and depth: 3 val, 1 train."""
    tex = textures()
    for split, count in (("val", VAL_SEQUENCES), ("train", TRAIN_SEQUENCES)):
        names = []
        seed = SEED_OFFSET[split]
        while len(names) < count:
            name = f"room-{split}-{seed:04d}"
            try:
                render_sequence(name, root, np.random.default_rng(seed), tex)
                names.append(name)
            except RuntimeError:
                for kind in ("JPEGImages", "Annotations", "Depth"):
                    for path in sorted((root / kind / "480p" / name).glob("*")):
                        path.unlink()
                    (root / kind / "480p" / name).rmdir()
            seed += 1
        (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "2017" / f"{split}.txt").write_text("\n".join(names) + "\n")
