"""The LSUN room layout challenge (2015/2016) in its released layout.

    ROOT/images/<image>.jpg
    ROOT/training.mat, validation.mat   struct array named like the file: image, scene,
                                        type (0..10), point [N,2] (1-based x, y), resolution [h w]
    ROOT/layout_seg/<image>.mat         variable ``layout``: labels 1..5 (frontal, left, right
                                        wall, floor, ceiling)

``labels: relabelled`` reads the corrected label maps many papers use instead, as 8-bit
PNGs ``ROOT/<relabelled_dir>/<image>.png`` (default ``layout_seg_images``; labels 1..5).
Corners are converted to OpenCV pixel coordinates (``point - 1``). Side files written by
the embedded ``synthetic-rooms`` set, when present, add ``K`` (``extras/<image>.json``),
``planes`` and ``layout_depth`` (``layout_depth/<image>.png``, uint16 mm); otherwise K is
a 60 degree horizontal field of view at the image centre (LSUN has no intrinsics).
Splits: ``train`` / ``training`` and ``validation`` / ``val`` (LSUN's test labels were
never released; papers report the validation split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files, require_files
from bench.errors import DataError
from bench.families.layout import CORNER_COUNTS
from bench.formats.images import read_depth_png, read_rgb
from bench.formats.jsonfile import read_json
from bench.registry import ADAPTERS

SPLITS = {"train": "training", "training": "training", "val": "validation",
          "validation": "validation"}
LSUN_HOW = ("get images/, training.mat, validation.mat and layout_seg/ of the LSUN room "
            "layout challenge (see docs/layout.md) and pass --set dataset.root=DIR")
DEFAULT_FOV_DEG = 60.0


def read_split_mat(path: Path) -> list[dict[str, Any]]:
    """Entries of an LSUN split file: image, scene, type, point (0-based [N,2]), resolution."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"cannot read LSUN split file {path} ({exc})") from exc
    if path.stem not in data:
        raise DataError(f"{path} has no variable {path.stem!r}")
    entries = []
    for index, entry in enumerate(np.atleast_1d(data[path.stem])):
        where = f"{path}: entry {index + 1}"
        for field in ("image", "type", "point", "resolution"):
            if not hasattr(entry, field):
                raise DataError(f"{where} has no field {field!r}")
        kind = int(entry.type)
        points = np.atleast_2d(np.asarray(entry.point, dtype=np.float64)) - 1.0
        if not 0 <= kind < len(CORNER_COUNTS) or points.shape != (CORNER_COUNTS[kind], 2):
            raise DataError(f"{where} ({entry.image}): type {kind} with corners of shape "
                            f"{points.shape}")
        entries.append({"image": str(entry.image), "scene": str(getattr(entry, "scene", "")),
                        "type": kind, "corners": points,
                        "resolution": tuple(int(v) for v in np.ravel(entry.resolution))})
    return entries


def read_layout_mat(path: Path) -> np.ndarray:
    """``layout_seg/<image>.mat``'s ``layout`` as uint8 [H,W]."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"cannot read label map {path} ({exc})") from exc
    if "layout" not in data or np.asarray(data["layout"]).ndim != 2:
        raise DataError(f"{path} has no 2-D variable 'layout'")
    return _surface_labels(np.asarray(data["layout"]), path)


def read_label_png(path: Path) -> np.ndarray:
    """An 8-bit single-channel label PNG as uint8 [H,W]."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise DataError(f"cannot read label map {path} (missing, or not a 1-channel PNG)")
    return _surface_labels(labels, path)


def _surface_labels(values: np.ndarray, path: Path) -> np.ndarray:
    """Label values 0..5 as uint8 [H,W] (checked before the cast, so nothing wraps)."""
    if values.size and (values.min() < 0 or values.max() > 5):
        bad = values.max() if values.max() > 5 else values.min()
        raise DataError(f"{path} holds label {bad}; LSUN labels are 0..5")
    return values.astype(np.uint8)


def default_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """K [3,3] for a horizontal field of view, principal point at the image centre."""
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


@ADAPTERS.register("lsun-layout")
class LsunLayoutDataset(BenchDataset):
    """LSUN room layout: JPEG images, split .mat files, label maps (original or relabelled)."""

    def __init__(self, root: Path, split: str = "validation", labels: str = "original",
                 relabelled_dir: str = "layout_seg_images") -> None:
        if split not in SPLITS:
            raise DataError(f"lsun-layout split must be one of {sorted(SPLITS)}, got {split!r}")
        if labels not in ("original", "relabelled"):
            raise DataError(f"lsun-layout labels must be 'original' or 'relabelled', "
                            f"got {labels!r}")
        if not root.exists():
            raise DataError(f"lsun-layout data root {root} does not exist", LSUN_HOW)
        split_file = root / f"{SPLITS[split]}.mat"
        require_files([split_file], "lsun-layout", LSUN_HOW)
        self.root, self.labels_kind = root, labels
        self.entries = read_split_mat(split_file)
        self.label_dir = root / ("layout_seg" if labels == "original" else relabelled_dir)
        files = [split_file]
        for entry in self.entries:
            files += [self.image_path(entry), self.label_path(entry)]
        require_files(files, "lsun-layout", LSUN_HOW)
        self.info = DatasetInfo(
            name="lsun-layout", root=root, split=SPLITS[split],
            fingerprint=fingerprint_files(files, root), size=len(self.entries),
            meta={"labels": labels})

    def image_path(self, entry: dict[str, Any]) -> Path:
        return self.root / "images" / f"{entry['image']}.jpg"

    def label_path(self, entry: dict[str, Any]) -> Path:
        suffix = ".mat" if self.labels_kind == "original" else ".png"
        return self.label_dir / f"{entry['image']}{suffix}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        image = read_rgb(self.image_path(entry))
        path = self.label_path(entry)
        labels = read_layout_mat(path) if path.suffix == ".mat" else read_label_png(path)
        height, width = image.shape[1:]
        if labels.shape != (height, width):
            raise DataError(f"{path} is {labels.shape[1]}x{labels.shape[0]} but its image is "
                            f"{width}x{height}")
        sample: dict[str, Any] = {
            "id": entry["image"], "image": image,
            "labels": torch.from_numpy(labels),
            "type": entry["type"], "corners": torch.from_numpy(entry["corners"]).float(),
        }
        extras = self.root / "extras" / f"{entry['image']}.json"
        K = default_intrinsics(width, height)
        if extras.is_file():
            meta = read_json(extras)
            K = np.asarray(meta["K"], dtype=np.float64)
            planes = np.zeros((6, 4), dtype=np.float32)
            for label, plane in meta.get("planes", {}).items():
                planes[int(label)] = plane
            sample["planes"] = torch.from_numpy(planes)
        sample["K"] = torch.from_numpy(K).float()
        depth = self.root / "layout_depth" / f"{entry['image']}.png"
        if depth.is_file():
            sample["layout_depth"] = torch.from_numpy(read_depth_png(depth, 1000.0))
        return sample
