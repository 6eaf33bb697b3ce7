"""NYU Depth v2 in the layout BTS and NeWCRFs evaluate on: a file list and RGB + 16-bit depth.

``ROOT/nyudepthv2_test_files_with_gt.txt`` lists one sample per line,
``<scene>/rgb_00045.jpg <scene>/sync_depth_00045.png 518.8579`` (image, depth, focal in
pixels), paths relative to ``ROOT/official_splits/test/`` (the train list,
``nyudepthv2_train_files_with_gt.txt``, is relative to ``ROOT/sync/``). Depth PNGs are
uint16 millimetres, 0 = no measurement. The embedded ``synthetic-depth`` set is written in
this layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files, leaves_root
from bench.errors import DataError
from bench.formats.images import read_depth_png, read_rgb
from bench.geometry.cameras import NYU_INTRINSICS
from bench.registry import ADAPTERS

NYU_HOW = ("get the BTS/NeWCRFs NYU v2 test set (official_splits/test and "
           "nyudepthv2_test_files_with_gt.txt, see docs/depth.md) and pass "
           "--set dataset.root=DIR")


def parse_file_list(path: Path) -> list[tuple[str, str | None, float | None]]:
    """Lines ``image depth [focal]`` -> (image, depth or None, focal or None); DataError
    naming the line when malformed."""
    entries = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"{path}:{line_no}: expected 'image depth [focal]', got {line!r}")
        depth = None if fields[1] == "None" else fields[1].lstrip("/")
        try:
            focal = float(fields[2]) if len(fields) > 2 else None
        except ValueError as exc:
            raise DataError(f"{path}:{line_no}: focal {fields[2]!r} is not a number") from exc
        for entry in (fields[0], depth):
            if entry is not None and leaves_root(entry):
                raise DataError(f"{path}:{line_no}: {entry!r} leads outside the data root",
                                "file-list entries are paths relative to the data root")
        entries.append((fields[0].lstrip("/"), depth, focal))
    return entries


class FileListDepthDataset(BenchDataset):
    """A depth data set described by a BTS-style file list (shared by NYU and KITTI)."""

    name = ""
    depth_scale = 1000.0
    bts_layout = "nyu"  # how BTS names prediction PNGs (bench.families.depth.bts_png_name)
    how_to_get = ""

    def __init__(self, root: Path, split: str, filenames_file: str, image_dir: Path,
                 depth_dir: Path, intrinsics: list[float] | None) -> None:
        list_path = root / filenames_file
        if not root.exists():
            raise DataError(f"{self.name} data root {root} does not exist", self.how_to_get)
        if not list_path.is_file():
            raise DataError(f"{self.name}: missing file list {list_path}", self.how_to_get)
        entries = parse_file_list(list_path)
        self.entries = [(image_dir / image, depth_dir / depth, focal)
                        for image, depth, focal in entries if depth is not None]
        self.skipped = len(entries) - len(self.entries)
        for image, depth, _ in self.entries:
            for path in (image, depth):
                if not path.is_file():
                    raise DataError(f"{self.name}: {list_path.name} lists {path}, which is "
                                    "missing", self.how_to_get)
        self.intrinsics = intrinsics
        self.image_dir = image_dir
        files = [list_path] + [p for image, depth, _ in self.entries for p in (image, depth)]
        self.info = DatasetInfo(
            name=self.name, root=root, split=split, fingerprint=fingerprint_files(files, root),
            size=len(self.entries),
            meta={"depth_scale": self.depth_scale, "bts_layout": self.bts_layout,
                  "skipped_without_depth": self.skipped},
        )

    def camera(self, focal: float | None, width: int, height: int) -> torch.Tensor:
        """K [3,3]: the ``intrinsics`` param, else focal from the list at the image centre."""
        if self.intrinsics is not None:
            fx, fy, cx, cy = (float(v) for v in self.intrinsics)
        else:
            f = focal if focal is not None else float(width)
            fx, fy, cx, cy = f, f, (width - 1) / 2, (height - 1) / 2
        return torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, depth_path, focal = self.entries[index]
        image = read_rgb(image_path)
        depth = read_depth_png(depth_path, self.depth_scale)
        if depth.shape != tuple(image.shape[1:]):
            raise DataError(f"{depth_path} is {depth.shape[1]}x{depth.shape[0]} but its image "
                            f"{image_path} is {image.shape[2]}x{image.shape[1]}")
        depth_t = torch.from_numpy(depth)
        return {
            "id": str(image_path.relative_to(self.image_dir)),
            "image": image,
            "depth": depth_t,
            "valid": depth_t > 0,
            "K": self.camera(focal, image.shape[2], image.shape[1]),
        }


@ADAPTERS.register("nyu-depth")
class NyuDepthDataset(FileListDepthDataset):
    """NYU Depth v2 (BTS layout): RGB JPEG + uint16 millimetre depth PNG, a file list."""

    name = "nyu-depth"
    depth_scale = 1000.0
    how_to_get = NYU_HOW

    def __init__(self, root: Path, split: str = "test", filenames_file: str | None = None,
                 data_dir: str | None = None,
                 intrinsics: list[float] | None = NYU_INTRINSICS) -> None:
        if split not in ("test", "train"):
            raise DataError(f"nyu-depth split must be 'test' or 'train', got {split!r}")
        folder = root / (data_dir or ("official_splits/test" if split == "test" else "sync"))
        super().__init__(root, split, filenames_file or f"nyudepthv2_{split}_files_with_gt.txt",
                         folder, folder, list(intrinsics) if intrinsics else None)
