"""BOP data sets (LM, LM-O, YCB-V ... and the embedded ``synthetic-pose``) for the pose family.

Layout read (as the BOP toolkit lays it out, https://bop.felk.cvut.cz/datasets/)::

    ROOT/models[_eval]/models_info.json       diameter (mm), symmetries_discrete/continuous
    ROOT/models[_eval]/obj_XXXXXX.ply         model in millimetres
    ROOT/<split>/<scene>/scene_camera.json    cam_K, depth_scale (depth unit in mm)
    ROOT/<split>/<scene>/scene_gt.json        cam_R_m2c, cam_t_m2c (mm), obj_id
    ROOT/<split>/<scene>/scene_gt_info.json   bbox_visib, visib_fract ...
    ROOT/<split>/<scene>/rgb/IMID.png|jpg, depth/IMID.png
    ROOT/test_targets_bop19.json              (optional) the evaluation targets

One sample per target (scene, image, object), with one instance of the object in the image
(LM, LM-O and YCB-V never show two). Millimetres become metres here, at the boundary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import open3d as o3d
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.jsonfile import read_json
from bench.geometry.rotations import symmetry_transformations
from bench.registry import ADAPTERS

HOW_TO_GET = ("download the data set from https://bop.felk.cvut.cz/datasets/ (base archive, "
              "models and test images) and pass --set dataset.root=DIR")
MM = 0.001


def read_bop_json(path: Path) -> Any:
    """Load a JSON file; a missing or malformed file raises DataError naming it."""
    if not path.is_file():
        raise DataError(f"BOP data: missing {path}", HOW_TO_GET)
    return read_json(path)


def read_model_points(path: Path) -> np.ndarray:
    """Vertices [N,3] (file units) of a PLY model; DataError when missing or empty."""
    if not path.is_file():
        raise DataError(f"BOP data: missing model {path}", HOW_TO_GET)
    cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points, dtype=np.float64)
    if points.size == 0:
        raise DataError(f"{path} holds no vertices (not a PLY model, or empty)")
    return points


class BopModels:
    """The object models of a BOP data set, in metres, with diameters and symmetries."""

    def __init__(self, root: Path, symmetric: list[int] | None = None,
                 max_sym_disc_step: float = 0.01, max_points: int | None = None) -> None:
        folder = root / "models_eval" if (root / "models_eval").is_dir() else root / "models"
        self.folder = folder
        self.info_path = folder / "models_info.json"
        raw = read_bop_json(self.info_path)
        if not isinstance(raw, dict) or not raw:
            raise DataError(f"{self.info_path} must map object ids to model information")
        self.ids = sorted(int(key) for key in raw)
        self.points: dict[int, torch.Tensor] = {}
        self.diameter: dict[int, float] = {}
        self.symmetric: dict[int, bool] = {}
        self.symmetries: dict[int, torch.Tensor] = {}
        self.bbox: dict[int, np.ndarray] = {}
        self.paths = [self.info_path]
        for obj_id in self.ids:
            info = raw[str(obj_id)]
            if "diameter" not in info:
                raise DataError(f"{self.info_path}: object {obj_id} has no 'diameter'")
            path = folder / f"obj_{obj_id:06d}.ply"
            points = read_model_points(path) * MM
            if max_points and len(points) > max_points:
                keep = np.linspace(0, len(points) - 1, int(max_points)).round().astype(np.int64)
                points = points[keep]
            self.paths.append(path)
            self.points[obj_id] = torch.from_numpy(points)
            self.diameter[obj_id] = float(info["diameter"]) * MM
            has_symmetry = bool(info.get("symmetries_discrete") or
                                info.get("symmetries_continuous"))
            self.symmetric[obj_id] = (obj_id in symmetric) if symmetric is not None else (
                has_symmetry)
            self.symmetries[obj_id] = torch.from_numpy(
                symmetry_transformations(info, max_sym_disc_step, unit=MM))
            if all(f"min_{a}" in info and f"size_{a}" in info for a in "xyz"):
                low = np.array([info[f"min_{a}"] for a in "xyz"], dtype=np.float64) * MM
                size = np.array([info[f"size_{a}"] for a in "xyz"], dtype=np.float64) * MM
            else:
                low, size = points.min(axis=0), points.max(axis=0) - points.min(axis=0)
            self.bbox[obj_id] = np.stack([low, low + size])

    def corners(self, obj_id: int) -> np.ndarray:
        """The 8 corners [8,3] (metres) of the model's 3D bounding box."""
        low, high = self.bbox[obj_id]
        return np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                         for z in (low[2], high[2])])

    def mesh_path(self, root: Path, obj_id: int) -> Path:
        """The full (rendering) model of an object: models/ when there, else the eval one."""
        path = root / "models" / f"obj_{obj_id:06d}.ply"
        return path if path.is_file() else self.folder / f"obj_{obj_id:06d}.ply"


@ADAPTERS.register("bop")
class BopDataset(BenchDataset):
    """BOP-format 6D pose targets: image, K, object, GT pose, model points, (depth, box)."""

    def __init__(self, root: Path, split: str = "test", name: str = "bop",
                 targets: str | None = "test_targets_bop19.json", min_visib: float = 0.1,
                 symmetric: list[int] | None = None, max_sym_disc_step: float = 0.01,
                 max_model_points: int | None = None, scenes: list[int] | None = None,
                 depth: bool = True, project_rotations: bool = False) -> None:
        if not root.is_dir():
            raise DataError(f"BOP data root {root} does not exist", HOW_TO_GET)
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"BOP data: no split folder {split_dir}", HOW_TO_GET)
        self.root = root
        self.split_dir = split_dir
        self.load_depth = depth
        self.models = BopModels(root, symmetric, max_sym_disc_step, max_model_points)
        scene_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if scenes is not None:
            scene_dirs = [p for p in scene_dirs if int(p.name) in set(scenes)]
        if not scene_dirs:
            raise DataError(f"BOP data: no scene folders in {split_dir}", HOW_TO_GET)
        self.cameras: dict[int, dict] = {}
        self.gts: dict[int, dict] = {}
        self.gt_infos: dict[int, dict] = {}
        files = list(self.models.paths)
        for scene_dir in scene_dirs:
            scene_id = int(scene_dir.name)
            for attr, file_name in (("cameras", "scene_camera.json"), ("gts", "scene_gt.json"),
                                    ("gt_infos", "scene_gt_info.json")):
                path = scene_dir / file_name
                if file_name == "scene_gt_info.json" and not path.is_file():
                    getattr(self, attr)[scene_id] = {}
                    continue
                getattr(self, attr)[scene_id] = read_bop_json(path)
                files.append(path)
        targets_path = root / targets if targets else None
        if targets_path is not None and targets_path.is_file() and split.startswith("test"):
            files.append(targets_path)
            wanted = self._targets_from_file(targets_path)
        else:
            wanted = self._all_instances(min_visib)
        self.samples = self._resolve(wanted)
        width, height = self._image_size(self.samples[0]) if self.samples else (0, 0)
        self.info = DatasetInfo(
            name=name, root=root, split=split, fingerprint=fingerprint_files(files, root),
            size=len(self.samples),
            meta={"models": self.models, "image_size": (width, height),
                  "project_rotations": bool(project_rotations),
                  "objects": self.models.ids},
        )

    def _targets_from_file(self, path: Path) -> list[tuple[int, int, int]]:
        raw = read_bop_json(path)
        if not isinstance(raw, list):
            raise DataError(f"{path} must be a list of targets")
        wanted = []
        for index, target in enumerate(raw):
            try:
                scene_id, im_id, obj_id = (int(target[k]) for k in ("scene_id", "im_id",
                                                                      "obj_id"))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}: target {index} lacks scene_id/im_id/obj_id") from exc
            if int(target.get("inst_count", 1)) != 1:
                raise DataError(f"{path}: target {index} has {target['inst_count']} instances "
                                f"of object {obj_id}; the pose family scores one instance per "
                                f"object and image (LM, LM-O, YCB-V)")
            if scene_id in self.gts:
                wanted.append((scene_id, im_id, obj_id))
        return wanted

    def _all_instances(self, min_visib: float) -> list[tuple[int, int, int]]:
        wanted = []
        for scene_id, scene_gt in self.gts.items():
            for im_key in sorted(scene_gt, key=int):
                infos = self.gt_infos[scene_id].get(im_key, [])
                for gt_id, gt in enumerate(scene_gt[im_key]):
                    visib = infos[gt_id].get("visib_fract", 1.0) if gt_id < len(infos) else 1.0
                    if visib >= min_visib:
                        wanted.append((scene_id, int(im_key), int(gt["obj_id"])))
        return wanted

    def _resolve(self, wanted: list[tuple[int, int, int]]) -> list[dict]:
        samples = []
        for scene_id, im_id, obj_id in wanted:
            where = self.split_dir / f"{scene_id:06d}" / "scene_gt.json"
            entries = self.gts[scene_id].get(str(im_id))
            if entries is None:
                raise DataError(f"{where} has no image {im_id} (named by the targets)")
            matches = [i for i, gt in enumerate(entries) if int(gt["obj_id"]) == obj_id]
            if len(matches) != 1:
                raise DataError(f"{where}: image {im_id} has {len(matches)} instances of object "
                                f"{obj_id}; expected exactly one")
            if obj_id not in self.models.points:
                raise DataError(f"{where}: object {obj_id} has no model in "
                                f"{self.models.info_path}")
            if str(im_id) not in self.cameras[scene_id]:
                raise DataError(f"{self.split_dir / f'{scene_id:06d}' / 'scene_camera.json'} "
                                f"has no image {im_id}")
            samples.append({"scene_id": scene_id, "im_id": im_id, "obj_id": obj_id,
                            "gt_id": matches[0]})
        return samples

    def _image_path(self, scene_id: int, im_id: int, folder: str = "rgb") -> Path:
        base = self.split_dir / f"{scene_id:06d}" / folder
        for ext in (".png", ".jpg", ".tif"):
            path = base / f"{im_id:06d}{ext}"
            if path.is_file():
                return path
        if folder == "rgb":
            gray = self.split_dir / f"{scene_id:06d}" / "gray" / f"{im_id:06d}.tif"
            if gray.is_file():
                return gray
        raise DataError(f"BOP data: missing image {base / f'{im_id:06d}.png'} (or .jpg)",
                        HOW_TO_GET)

    def _image_size(self, sample: dict) -> tuple[int, int]:
        path = self._image_path(sample["scene_id"], sample["im_id"])
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"cannot decode image {path}")
        return image.shape[1], image.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.samples[index]
        scene_id, im_id, obj_id, gt_id = (entry[k] for k in ("scene_id", "im_id", "obj_id",
                                                            "gt_id"))
        path = self._image_path(scene_id, im_id)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot decode image {path}")
        camera = self.cameras[scene_id][str(im_id)]
        gt = self.gts[scene_id][str(im_id)][gt_id]
        info = self.gt_infos[scene_id].get(str(im_id), [])
        box = info[gt_id].get("bbox_visib", [-1, -1, -1, -1]) if gt_id < len(info) else [-1] * 4
        try:
            K = torch.tensor(camera["cam_K"], dtype=torch.float64).view(3, 3)
            R = torch.tensor(gt["cam_R_m2c"], dtype=torch.float64).view(3, 3)
            t = torch.tensor(gt["cam_t_m2c"], dtype=torch.float64).view(3) * MM
        except (KeyError, RuntimeError) as exc:
            raise DataError(f"{self.split_dir / f'{scene_id:06d}'}: image {im_id}: bad camera or "
                            f"pose entry ({exc})") from exc
        sample = {
            "id": f"{scene_id:06d}/{im_id:06d}/{obj_id:06d}",
            "image": torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1)
            .float().div_(255.0),
            "K": K, "R": R, "t": t,
            "scene_id": scene_id, "im_id": im_id, "obj_id": obj_id,
            "model_points": self.models.points[obj_id],
            "diameter": self.models.diameter[obj_id],
            "symmetric": self.models.symmetric[obj_id],
            "symmetries": self.models.symmetries[obj_id],
            "bbox": torch.tensor(box, dtype=torch.float64),
        }
        if self.load_depth:
            depth_path = self._image_path(scene_id, im_id, "depth")
            raw = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise DataError(f"cannot decode depth image {depth_path}")
            scale = float(camera.get("depth_scale", 1.0))
            sample["depth"] = torch.from_numpy(raw.astype(np.float32) * scale * MM)
        return sample
