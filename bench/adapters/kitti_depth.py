"""KITTI depth on the Eigen split, in the layout BTS and Monodepth2-style loaders use.

``ROOT/eigen_test_files_with_gt.txt`` lists one sample per line,
``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377``:
the image relative to the raw data (``ROOT/raw`` by default), the projected ground truth
relative to ``ROOT/data_depth_annotated`` (KITTI's 16-bit PNGs, depth = value / 256, 0 = no
measurement) or ``None`` (skipped, as BTS does), and the focal length in pixels.
"""

from __future__ import annotations

from pathlib import Path

from bench.adapters.nyu_depth import FileListDepthDataset
from bench.errors import DataError
from bench.registry import ADAPTERS

KITTI_HOW = ("download KITTI raw data and the annotated depth maps (data_depth_annotated) "
             "with the Eigen split file list (see docs/depth.md) and pass "
             "--set dataset.root=DIR")


@ADAPTERS.register("kitti-depth")
class KittiDepthDataset(FileListDepthDataset):
    """KITTI Eigen split: raw RGB PNG + annotated uint16 depth PNG (/256), a file list."""

    name = "kitti-depth"
    depth_scale = 256.0
    bts_layout = "kitti"
    how_to_get = KITTI_HOW

    def __init__(self, root: Path, split: str = "test", filenames_file: str | None = None,
                 image_dir: str = "raw", depth_dir: str = "data_depth_annotated",
                 intrinsics: list[float] | None = None) -> None:
        if split not in ("test", "train"):
            raise DataError(f"kitti-depth split must be 'test' or 'train', got {split!r}")
        super().__init__(root, split, filenames_file or f"eigen_{split}_files_with_gt.txt",
                         root / image_dir, root / depth_dir,
                         list(intrinsics) if intrinsics else None)
