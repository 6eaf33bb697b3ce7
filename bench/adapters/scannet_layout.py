"""ScanNet-Layout (Stekovic et al., ECCV 2020) as released:

    ROOT/<scene>/color/<frame>.jpg          ScanNet colour images
    ROOT/<scene>/labels_json/<frame>.json   {"shapes": [{"points": [[x, y], ...]}, ...]}:
                                            one 2D polygon per layout plane (labelme style)
    ROOT/<scene>/layout_depth/<frame>.npy   layout depth (m, clipped to 10 m) at 640x480
    ROOT/<scene>/depth, valid_masks, ...    not used

Conventions chosen here (the release leaves them open):
- everything is evaluated at 640x480, as the release's ``evaluate_3d_layouts.py`` does:
  the image is resized, polygon points are scaled by 640 / image width and 480 / image
  height and rasterised with ``cv2.fillPoly`` on integer points, in order of decreasing
  area, later (smaller) polygons winning overlaps, into ``plane_map`` (0 none, k = k-th
  plane by area);
- ``labels`` (the family's surface map) is the plane map clipped to 1..5, since the
  release names no surfaces: use the ``plane_iou`` and ``layout_depth`` metrics on this set;
- ``K``: the release has no intrinsics; ``ROOT/<scene>/intrinsic_color.txt`` (ScanNet's 4x4
  file) is used when present, else the ``intrinsics`` parameter (fx, fy, cx, cy at the
  colour image's size; default ScanNet's typical 1296x968 colour camera), scaled to 640x480;
- ``type`` is -1 and ``corners`` empty: ScanNet-Layout's general layouts have no LSUN type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files, require_files
from bench.errors import DataError
from bench.formats.images import read_rgb
from bench.formats.jsonfile import read_json
from bench.registry import ADAPTERS

EVAL_WIDTH, EVAL_HEIGHT = 640, 480
SCANNET_COLOR_INTRINSICS = (1169.621094, 1167.105103, 646.295044, 489.927032)
HOW = ("download ScanNet-Layout (github.com/vevenom/ScanNet-Layout) and pass "
       "--set dataset.root=DIR (the folder holding the scene folders)")


def read_polygons(path: Path, scale: tuple[float, float]) -> list[np.ndarray]:
    """The polygons [M,2] (scaled to 640x480) of a labels_json file."""
    try:
        data = read_json(path)
        shapes = data["shapes"]
        polygons = [np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2) * scale
                    for shape in shapes]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"malformed ScanNet-Layout polygon file {path} ({exc})") from exc
    return polygons


def plane_map_from_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Plane index map [H,W] int64: polygons sorted by decreasing filled area, k = k-th."""
    masks = []
    for polygon in polygons:
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [polygon.astype(np.int32).reshape(-1, 1, 2)], 1)
        masks.append(mask)
    masks.sort(key=lambda m: -int(m.sum()))
    out = np.zeros((height, width), dtype=np.int64)
    for index, mask in enumerate(masks, start=1):
        out = np.maximum(out, mask.astype(np.int64) * index)
    return out


@ADAPTERS.register("scannet-layout")
class ScanNetLayoutDataset(BenchDataset):
    """ScanNet-Layout: colour frames, 2D layout polygons and layout depth per frame."""

    def __init__(self, root: Path, split: str = "test",
                 intrinsics: list[float] | None = SCANNET_COLOR_INTRINSICS) -> None:
        if split != "test":
            raise DataError(f"scannet-layout has one split, 'test'; got {split!r}")
        if not root.is_dir():
            raise DataError(f"scannet-layout data root {root} does not exist", HOW)
        self.root, self.intrinsics = root, intrinsics
        self.frames = sorted((scene.name, image.stem) for scene in root.iterdir()
                             if (scene / "color").is_dir()
                             for image in (scene / "color").glob("*.jpg"))
        if not self.frames:
            raise DataError(f"scannet-layout: no <scene>/color/*.jpg under {root}", HOW)
        files = [p for scene, frame in self.frames for p in self._files(scene, frame)]
        require_files(files, "scannet-layout", HOW)
        self.info = DatasetInfo(name="scannet-layout", root=root, split=split,
                                fingerprint=fingerprint_files(files, root),
                                size=len(self.frames))

    def _files(self, scene: str, frame: str) -> list[Path]:
        folder = self.root / scene
        return [folder / "color" / f"{frame}.jpg", folder / "labels_json" / f"{frame}.json",
                folder / "layout_depth" / f"{frame}.npy"]

    def _camera(self, scene: str, width: int, height: int) -> np.ndarray:
        file = self.root / scene / "intrinsic_color.txt"
        if file.is_file():
            K = np.loadtxt(file)[:3, :3]
        elif self.intrinsics is not None:
            fx, fy, cx, cy = (float(v) for v in self.intrinsics)
            K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        else:
            raise DataError(f"scannet-layout: no intrinsics for scene {scene} ({file} is "
                            "missing and dataset.params.intrinsics is null)")
        scale = np.diag([EVAL_WIDTH / width, EVAL_HEIGHT / height, 1.0])
        return scale @ K

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, frame = self.frames[index]
        color, polygons_file, depth_file = self._files(scene, frame)
        image = read_rgb(color)
        height, width = image.shape[1:]
        if (height, width) != (EVAL_HEIGHT, EVAL_WIDTH):
            image = torch.nn.functional.interpolate(
                image[None], size=(EVAL_HEIGHT, EVAL_WIDTH), mode="bilinear",
                align_corners=False, antialias=True)[0]
        scale = (EVAL_WIDTH / width, EVAL_HEIGHT / height)
        plane_map = plane_map_from_polygons(read_polygons(polygons_file, scale),
                                            EVAL_HEIGHT, EVAL_WIDTH)
        depth = np.load(depth_file, allow_pickle=False).astype(np.float32)
        if depth.shape != (EVAL_HEIGHT, EVAL_WIDTH):
            depth = cv2.resize(depth, (EVAL_WIDTH, EVAL_HEIGHT), interpolation=cv2.INTER_NEAREST)
        return {
            "id": f"{scene}/{frame}.jpg", "image": image.clamp(0, 1),
            "K": torch.from_numpy(self._camera(scene, width, height)).float(),
            "labels": torch.from_numpy(np.clip(plane_map, 0, 5).astype(np.uint8)),
            "plane_map": torch.from_numpy(plane_map),
            "type": -1, "corners": torch.zeros(0, 2),
            "layout_depth": torch.from_numpy(depth),
        }
