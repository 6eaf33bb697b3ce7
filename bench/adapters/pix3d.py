"""Pix3D (Sun et al., CVPR 2018): real photographs aligned with IKEA furniture models.

Layout under ``root``: ``pix3d.json`` (one entry per image: ``img``, ``mask``, ``model``,
``category``, ``img_size`` [w,h], ``rot_mat`` [3,3], ``trans_mat`` [3], ``focal_length``
(mm, 32 mm sensor), ``bbox`` [x0,y0,x1,y1], ``truncated``, ``occluded``), ``img/``,
``mask/`` and ``model/<category>/<name>/model.obj``.

Splits: with ``split_file`` (a Mesh R-CNN style COCO json whose ``images[].file_name`` are
Pix3D ``img`` paths, ``{split}`` replaced by the split name, e.g. ``pix3d_s1_{split}.json``)
the split's images; without it, every image (test only). ``skip_occluded`` drops truncated
and occluded images, as Pix3D's own evaluation does.

Conventions: the camera is ``K`` with f = focal_length / 32 * max(w, h) pixels at the image
centre and ``x_cam = diag(-1,-1,1) (rot_mat x + trans_mat)`` (Pix3D's camera has x left and
y up; OpenCV's x right and y down). The image is cropped to a square around ``bbox``
(``crop_margin`` of its size added) and resized to ``image_size``, K following. The model is
normalised to the unit cube (bbox centred, longest side 1, as Occupancy Networks does);
its 32^3 voxels are the inside test of that mesh at the cells of [-0.5, 0.5]^3 (Pix3D's
own ``voxel.mat`` is 128^3 in another frame and is not used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.jsonfile import read_json
from bench.formats.obj import read_obj
from bench.geometry.grids import cell_centres
from bench.geometry.mesh import mesh_occupancy, unit_cube_normalisation
from bench.registry import ADAPTERS

HOW_TO_GET = ("download pix3d.zip from pix3d.csail.mit.edu, unpack it and pass "
              "--set dataset.root=DIR (the folder holding pix3d.json)")
OPENCV_FROM_PIX3D = np.diag([-1.0, -1.0, 1.0])
CUBE = np.array([[-0.5] * 3, [0.5] * 3])
ENTRY_KEYS = ("img", "mask", "model", "category", "rot_mat", "trans_mat", "focal_length",
              "bbox")


def crop_square(image: np.ndarray, bbox: np.ndarray, margin: float, size: int,
                interpolation: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop a square around ``bbox`` (x0,y0,x1,y1) grown by ``margin``, resize to ``size``.

    Returns the crop and the 3x3 matrix mapping original pixel coordinates to crop pixels.
    Areas outside the image are filled with zeros.
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    side = max(x1 - x0, y1 - y0) * (1.0 + margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left, top = cx - side / 2.0, cy - side / 2.0
    scale = size / side
    affine = np.array([[scale, 0.0, -left * scale + 0.5 * scale - 0.5],
                       [0.0, scale, -top * scale + 0.5 * scale - 0.5]])
    crop = cv2.warpAffine(image, affine, (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, np.vstack([affine, [0.0, 0.0, 1.0]])


@ADAPTERS.register("pix3d")
class Pix3DDataset(BenchDataset):
    """Pix3D images, masks, cameras and normalised IKEA models (+ 32^3 voxels)."""

    def __init__(self, root: Path, split: str = "test", split_file: str | None = None,
                 image_size: int = 224, crop_margin: float = 0.1,
                 skip_occluded: bool = False, categories: list[str] | None = None) -> None:
        annotation = root / "pix3d.json"
        if not annotation.is_file():
            raise DataError(f"Pix3D: missing {annotation}", HOW_TO_GET)
        try:
            entries = read_json(annotation)
        except ValueError as exc:
            raise DataError(f"{annotation}: not valid JSON ({exc})") from exc
        for number, entry in enumerate(entries):
            missing = [k for k in ENTRY_KEYS if k not in entry]
            if missing:
                raise DataError(f"{annotation}: entry {number} lacks {missing}")
        if split_file:
            split_path = root / split_file.format(split=split)
            if not split_path.is_file():
                raise DataError(f"Pix3D split file {split_path} does not exist",
                                "Mesh R-CNN's pix3d_s1_train.json/pix3d_s1_test.json")
            try:
                wanted = {img["file_name"] for img in read_json(split_path)["images"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{split_path}: not a COCO-style split ({exc!r})") from exc
            entries = [e for e in entries if e["img"] in wanted]
        elif split != "test":
            raise DataError(f"Pix3D has no {split!r} split without a split_file",
                            "set dataset.params.split_file (e.g. pix3d_s1_{split}.json)")
        if skip_occluded:
            entries = [e for e in entries if not (e.get("truncated") or e.get("occluded"))]
        if categories:
            entries = [e for e in entries if e["category"] in categories]
        self.root, self.entries = root, entries
        self.image_size, self.crop_margin = image_size, crop_margin
        self.class_names = sorted({e["category"] for e in entries})
        self.class_of = {name: i for i, name in enumerate(self.class_names)}
        self._meshes: dict[str, dict[str, np.ndarray]] = {}
        models = sorted({root / e["model"] for e in entries})
        self.info = DatasetInfo(
            name="pix3d", root=root, split=split,
            fingerprint=fingerprint_files([annotation, *[m for m in models if m.is_file()]],
                                          root),
            size=len(entries),
            meta={"class_names": self.class_names, "num_classes": len(self.class_names)})

    def sample_ids(self) -> list[str]:
        """Every sample's id (the image path without extension), in index order."""
        return [str(Path(e["img"]).with_suffix("")) for e in self.entries]

    def model(self, relative: str) -> dict[str, np.ndarray]:
        """Normalised mesh, its voxels and the normalising similarity (cached per model)."""
        if relative not in self._meshes:
            vertices, faces = read_obj(self.root / relative)
            if len(faces) == 0:
                raise DataError(f"{self.root / relative}: the model has no faces")
            centre, factor = unit_cube_normalisation(vertices)
            normalised = (vertices - centre) * factor
            voxels = mesh_occupancy(normalised, faces, cell_centres(CUBE, 32)).reshape(32, 32, 32)
            self._meshes[relative] = {"vertices": normalised, "faces": faces, "voxels": voxels,
                                      "centre": centre, "factor": np.array(factor)}
        return self._meshes[relative]

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        image = cv2.imread(str(self.root / entry["img"]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read Pix3D image {self.root / entry['img']}", HOW_TO_GET)
        mask = cv2.imread(str(self.root / entry["mask"]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"cannot read Pix3D mask {self.root / entry['mask']}", HOW_TO_GET)
        height, width = image.shape[:2]
        focal = float(entry["focal_length"]) / 32.0 * max(width, height)
        K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0],
                      [0.0, 0.0, 1.0]])
        crop, to_crop = crop_square(image[..., ::-1].astype(np.float32) / 255.0,
                                    np.asarray(entry["bbox"]), self.crop_margin,
                                    self.image_size, cv2.INTER_AREA)
        mask_crop, _ = crop_square((mask > 127).astype(np.uint8), np.asarray(entry["bbox"]),
                                   self.crop_margin, self.image_size, cv2.INTER_NEAREST)
        model = self.model(entry["model"])
        R = OPENCV_FROM_PIX3D @ np.asarray(entry["rot_mat"], dtype=np.float64)
        t = OPENCV_FROM_PIX3D @ np.asarray(entry["trans_mat"], dtype=np.float64)
        t = (R @ model["centre"] + t) * float(model["factor"])
        return {
            "id": str(Path(entry["img"]).with_suffix("")),
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float(),
            "mask": torch.from_numpy(mask_crop.astype(bool)),
            "K": torch.from_numpy(to_crop @ K).float(), "R": torch.from_numpy(R).float(),
            "t": torch.from_numpy(t).float(),
            "vertices": torch.from_numpy(model["vertices"]).float(),
            "faces": torch.from_numpy(model["faces"]).long(),
            "voxels": torch.from_numpy(model["voxels"]),
            "voxel_bounds": torch.from_numpy(CUBE).float(),
            "class_index": self.class_of[entry["category"]],
            "class_name": entry["category"],
        }
