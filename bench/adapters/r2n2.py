"""ShapeNet as 3D-R2N2, Pix2Vox and Occupancy Networks use it for single-view reconstruction.

Layout under ``root``::

    ShapeNetRendering/<synset>/<model>/rendering/00.png .. 23.png   RGBA renders
    ShapeNetRendering/<synset>/<model>/rendering/rendering_metadata.txt
        one line per view: azimuth elevation in-plane-rotation distance-ratio fov (degrees)
    ShapeNetVox32/<synset>/<model>/model.binvox                     32^3 voxels
    ShapeNetCore.v2/<synset>/<model>/models/model_normalized.obj    mesh (optional)
    ShapeNet.json      split (Pix2Vox's format: [{taxonomy_id, taxonomy_name, train, val,
                       test}]), or set ``split_file`` to a list file (``{split}.lst``) of
                       ``<synset>/<model>`` lines
    taxonomy.json      optional ShapeNetCore taxonomy ([{synsetId, name}]) for class names

Conventions: the ShapeNet frame is y up. The camera of a view sits at distance
``distance_ratio * 1.75`` (3D-R2N2's maximum camera distance) on the sphere around the
origin at the given azimuth (about +y, from +z towards +x) and elevation, looks at the
origin with y up, and is then rolled by the in-plane rotation about its optical axis; its
horizontal field of view is the metadata's fov. The ground truth is normalised as
Occupancy Networks does: the mesh's bounding box centred at the origin and its longest
side scaled to 1 (the unit cube [-0.5, 0.5]^3); the voxel bounds and the camera are moved
into that frame with the same similarity. Without the mesh, the surface of the voxels
(marching cubes) is the ground-truth mesh. Transparent pixels (alpha 0) are composited on
``background`` (``white``, as 3D-R2N2 tests; ``keep`` leaves the stored RGB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.binvox import read_binvox
from bench.formats.jsonfile import read_json
from bench.formats.obj import read_obj
from bench.geometry.cameras import camera_from_metadata
from bench.geometry.mesh import unit_cube_normalisation
from bench.registry import ADAPTERS

HOW_TO_GET = ("download ShapeNetRendering.tgz and ShapeNetVox32.tgz from the 3D-R2N2 project "
              "page (cvgl.stanford.edu/3d-r2n2), Pix2Vox's ShapeNet.json, optionally "
              "ShapeNetCore.v2, and pass --set dataset.root=DIR")
R2N2_SYNSETS = {
    "02691156": "airplane", "02828884": "bench", "02933112": "cabinet", "02958343": "car",
    "03001627": "chair", "03211117": "display", "03636649": "lamp", "03691459": "loudspeaker",
    "04090263": "rifle", "04256520": "sofa", "04379243": "table", "04401088": "telephone",
    "04530566": "watercraft",
}


# --------------------------------------------------------------------------- cameras


def read_metadata(path: Path) -> np.ndarray:
    """``rendering_metadata.txt`` -> [views, 5]: azimuth, elevation, in-plane, ratio, fov."""
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        table = np.array([[float(v) for v in row[:5]] for row in rows])
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read camera metadata {path}: {exc}", HOW_TO_GET) from exc
    if table.ndim != 2 or table.shape[1] != 5:
        raise DataError(f"{path}: each line needs 5 numbers (azimuth elevation in-plane "
                        "distance-ratio fov)")
    return table


def load_image(path: Path, background: str) -> tuple[np.ndarray, np.ndarray]:
    """RGB float [H,W,3] in [0,1] and mask [H,W] (alpha > 0; all True without alpha)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"cannot read image {path}", HOW_TO_GET)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    rgb = image[..., 2::-1].astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)
    if image.shape[2] == 4:
        alpha = image[..., 3].astype(np.float32) / (65535.0 if image.dtype == np.uint16
                                                    else 255.0)
        mask = alpha > 0
        if background != "keep":
            fill = 1.0 if background == "white" else 0.0
            rgb = rgb * alpha[..., None] + fill * (1.0 - alpha[..., None])
    else:
        mask = np.ones(rgb.shape[:2], dtype=bool)
    return rgb, mask


def class_table(root: Path, synsets: list[str], names: dict[str, str]) -> list[str]:
    """Class names for synsets: taxonomy.json, else the split file's names, else R2N2's table."""
    taxonomy = root / "taxonomy.json"
    known = {**R2N2_SYNSETS, **names}
    if taxonomy.is_file():
        try:
            for entry in read_json(taxonomy):
                known[str(entry["synsetId"])] = str(entry["name"]).split(",")[0]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{taxonomy}: not a ShapeNet taxonomy ({exc!r})") from exc
    return [known.get(s, s) for s in synsets]


def read_split(root: Path, split_file: str, split: str) -> tuple[list[tuple[str, str]],
                                                                 dict[str, str]]:
    """(synset, model) pairs of ``split`` and synset names from a Pix2Vox JSON or list file."""
    path = root / split_file.format(split=split)
    if not path.is_file():
        raise DataError(f"split file {path} does not exist", HOW_TO_GET)
    names: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    if path.suffix == ".json":
        try:
            entries = read_json(path)
            for entry in entries:
                synset = str(entry["taxonomy_id"])
                names[synset] = str(entry.get("taxonomy_name", synset)).split(",")[0]
                pairs += [(synset, str(m)) for m in entry.get(split, [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a Pix2Vox split file ([{{taxonomy_id, taxonomy_name, "
                            f"train, val, test}}]): {exc!r}") from exc
    else:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split("/")
            if len(parts) != 2:
                raise DataError(f"{path}:{number}: expected '<synset>/<model>', got {line!r}")
            pairs.append((parts[0], parts[1]))
    return pairs, names


@ADAPTERS.register("r2n2")
class R2N2Dataset(BenchDataset):
    """ShapeNet renderings (3D-R2N2) + 32^3 binvox voxels (+ ShapeNetCore meshes)."""

    def __init__(self, root: Path, split: str = "test", split_file: str = "ShapeNet.json",
                 views: list[int] | str = (0,), background: str = "white",
                 mesh_dir: str = "ShapeNetCore.v2", mesh: str = "auto",
                 image_size: int | None = None) -> None:
        if background not in ("white", "black", "keep"):
            raise DataError(f"r2n2: background must be white, black or keep, got {background!r}")
        if mesh not in ("auto", "obj", "voxels"):
            raise DataError(f"r2n2: mesh must be auto, obj or voxels, got {mesh!r}")
        if not root.is_dir():
            raise DataError(f"ShapeNet R2N2 root {root} does not exist", HOW_TO_GET)
        self.root, self.background, self.image_size = root, background, image_size
        self.mesh_dir, self.mesh_mode = root / mesh_dir, mesh
        pairs, names = read_split(root, split_file, split)
        synsets = sorted({s for s, _ in pairs})
        self.class_names = class_table(root, synsets, names)
        self.class_of = {s: i for i, s in enumerate(synsets)}
        self.models = pairs
        self.items: list[tuple[int, int]] = []
        files: list[Path] = []
        self.metadata: list[np.ndarray] = []
        for index, (synset, model) in enumerate(pairs):
            folder = root / "ShapeNetRendering" / synset / model / "rendering"
            meta_path = folder / "rendering_metadata.txt"
            voxel_path = root / "ShapeNetVox32" / synset / model / "model.binvox"
            for needed in (meta_path, voxel_path):
                if not needed.is_file():
                    raise DataError(f"ShapeNet R2N2: missing {needed} (model {synset}/{model} "
                                    f"of split {split!r})", HOW_TO_GET)
            table = read_metadata(meta_path)
            self.metadata.append(table)
            chosen = range(len(table)) if views == "all" else [int(v) for v in views]
            for view in chosen:
                if not 0 <= view < len(table):
                    raise DataError(f"{meta_path} has {len(table)} views; view {view} requested")
                self.items.append((index, view))
            files += [meta_path, voxel_path]
        self.info = DatasetInfo(
            name="shapenet-r2n2", root=root, split=split,
            fingerprint=fingerprint_files(files, root), size=len(self.items),
            meta={"class_names": self.class_names, "synsets": synsets,
                  "num_classes": len(synsets)})

    def sample_ids(self) -> list[str]:
        """Every sample's id, in index order (without reading images)."""
        return [f"{self.models[i][0]}/{self.models[i][1]}/{view:02d}" for i, view in self.items]

    def ground_truth(self, index: int) -> dict[str, Any]:
        """Normalised mesh, voxels and their bounds of model ``index`` (+ the similarity)."""
        synset, model = self.models[index]
        voxel_path = self.root / "ShapeNetVox32" / synset / model / "model.binvox"
        voxels, translate, scale = read_binvox(voxel_path)
        if voxels.shape != (32, 32, 32):
            raise DataError(f"{voxel_path}: voxel grid is {list(voxels.shape)}, expected "
                            "32^3 (ShapeNetVox32)")
        bounds = np.stack([translate, translate + scale])
        obj = self.mesh_dir / synset / model / "models" / "model_normalized.obj"
        if self.mesh_mode == "obj" or (self.mesh_mode == "auto" and obj.is_file()):
            vertices, faces = read_obj(obj)
            if len(faces) == 0:
                raise DataError(f"{obj}: the ground-truth mesh has no faces")
        else:
            from bench.geometry.grids import grid_to_mesh

            vertices, faces = grid_to_mesh(voxels.astype(np.float32), bounds)
            if len(faces) == 0:
                raise DataError(f"{voxel_path}: no occupied voxels, so no ground-truth surface")
        centre, factor = unit_cube_normalisation(vertices)
        return {"vertices": (vertices - centre) * factor, "faces": faces, "voxels": voxels,
                "voxel_bounds": (bounds - centre) * factor, "centre": centre, "factor": factor}

    def __getitem__(self, item: int) -> dict[str, Any]:
        index, view = self.items[item]
        synset, model = self.models[index]
        path = (self.root / "ShapeNetRendering" / synset / model / "rendering"
                / f"{view:02d}.png")
        rgb, mask = load_image(path, self.background)
        gt = self.ground_truth(index)
        height, width = mask.shape
        K, R, t = camera_from_metadata(*self.metadata[index][view], width, height)
        t = (R @ gt["centre"] + t) * gt["factor"]
        if self.image_size and (height, width) != (self.image_size, self.image_size):
            rgb, mask, K = resize_view(rgb, mask, K, self.image_size)
        return {
            "id": f"{synset}/{model}/{view:02d}",
            "image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float(),
            "mask": torch.from_numpy(mask),
            "K": torch.from_numpy(K).float(), "R": torch.from_numpy(R).float(),
            "t": torch.from_numpy(t).float(),
            "vertices": torch.from_numpy(gt["vertices"]).float(),
            "faces": torch.from_numpy(gt["faces"]).long(),
            "voxels": torch.from_numpy(gt["voxels"]),
            "voxel_bounds": torch.from_numpy(gt["voxel_bounds"]).float(),
            "class_index": self.class_of[synset],
            "class_name": self.class_names[self.class_of[synset]],
        }


def resize_view(rgb: np.ndarray, mask: np.ndarray, K: np.ndarray,
                size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize image and mask to size x size and scale K to match (OpenCV pixel centres)."""
    height, width = mask.shape
    sx, sy = size / width, size / height
    rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.astype(np.uint8), (size, size),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return rgb, mask, scale @ K


