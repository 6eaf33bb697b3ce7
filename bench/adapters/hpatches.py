"""HPatches sequences (``hpatches-sequences-release``): ``<seq>/1.ppm .. 6.ppm`` and
``<seq>/H_1_2 .. H_1_6``; ``i_*`` sequences change illumination, ``v_*`` viewpoint.

Each sample is the pair (1, k) of one sequence with the ground-truth homography mapping
pixels of image 1 to pixels of image k. The embedded ``homography-pairs`` set is written in
the same layout and read by this adapter.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.registry import ADAPTERS

HOW_TO_GET = ("download hpatches-sequences-release.tar.gz from "
              "https://github.com/hpatches/hpatches-dataset, extract it and pass "
              "--set dataset.root=DIR (the folder holding i_* and v_* sequences)")
SUBSETS = ("all", "i", "v")
IMAGE_NAMES = re.compile(r"^(\d+)\.(ppm|png|jpg)$")


def read_homography(path: Path) -> np.ndarray:
    """A whitespace-separated 3x3 homography text file -> float64 [3,3]; DataError if not."""
    if not path.is_file():
        raise DataError(f"missing homography file {path}", HOW_TO_GET)
    try:
        values = np.array(path.read_text(encoding="utf-8").split(), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"homography file {path} is not numeric text: {exc}") from exc
    if values.size != 9:
        raise DataError(f"homography file {path} holds {values.size} numbers, expected 3x3 = 9")
    homography = values.reshape(3, 3)
    if not np.isfinite(homography).all() or abs(np.linalg.det(homography)) < 1e-12:
        raise DataError(f"homography file {path} is not a finite invertible 3x3 matrix")
    return homography


def scale_matrix(scale: float) -> np.ndarray:
    """Pixel-centre resize map: x' = (x + 0.5) * scale - 0.5 (OpenCV convention)."""
    offset = 0.5 * scale - 0.5
    return np.array([[scale, 0, offset], [0, scale, offset], [0, 0, 1]], dtype=np.float64)


@lru_cache(maxsize=8)
def _load_image(path: Path, max_side: int | None) -> tuple[torch.Tensor, float]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing or corrupt)", HOW_TO_GET)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    scale = 1.0
    if max_side is not None and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    return tensor, scale


@ADAPTERS.register("hpatches")
class HPatchesDataset(BenchDataset):
    """HPatches sequences: pairs (1, k), k = 2..6, with homographies from image 1 to k.

    Params: ``subset`` all | i | v; ``max_side`` (longest image side after resizing; the
    homographies are rescaled to match, None keeps full resolution); ``exclude``: sequence
    names to leave out (e.g. the 8 high-resolution ones D2-Net drops).
    """

    def __init__(self, root: Path, split: str = "test", subset: str = "all",
                 max_side: int | None = None, exclude: list[str] | None = None) -> None:
        if split != "test":
            raise DataError(f"HPatches has only the 'test' split, got {split!r}")
        if subset not in SUBSETS:
            raise DataError(f"HPatches subset must be one of {SUBSETS}, got {subset!r}")
        if max_side is not None and int(max_side) < 16:
            raise DataError(f"max_side must be >= 16 pixels, got {max_side}")
        if not root.is_dir():
            raise DataError(f"HPatches root {root} does not exist", HOW_TO_GET)
        self.root = root
        self.max_side = None if max_side is None else int(max_side)
        skip = set(exclude or [])
        sequences = sorted(
            p for p in root.iterdir()
            if p.is_dir() and p.name[:2] in ("i_", "v_") and p.name not in skip
            and (subset == "all" or p.name[0] == subset)
        )
        if not sequences:
            raise DataError(f"no i_* or v_* sequence folders in {root}", HOW_TO_GET)
        self.pairs: list[tuple[Path, Path, Path, np.ndarray]] = []
        files: list[Path] = []
        for folder in sequences:
            images = {int(m.group(1)): folder / name for name in sorted(
                p.name for p in folder.iterdir()) if (m := IMAGE_NAMES.match(name))}
            if 1 not in images:
                raise DataError(f"sequence {folder} has no reference image 1.ppm", HOW_TO_GET)
            targets = sorted(k for k in images if k > 1)
            if not targets:
                raise DataError(f"sequence {folder} has no images 2.ppm .. 6.ppm", HOW_TO_GET)
            files.append(images[1])
            for k in targets:
                h_path = folder / f"H_1_{k}"
                homography = read_homography(h_path)
                self.pairs.append((folder, images[1], images[k], homography))
                files += [images[k], h_path]
        kinds = [folder.name[0] for folder, *_ in self.pairs]
        self.info = DatasetInfo(
            name="hpatches", root=root, split=split,
            fingerprint=fingerprint_files(files, root), size=len(self.pairs),
            meta={"sequences": len(sequences), "pairs_i": kinds.count("i"),
                  "pairs_v": kinds.count("v"), "max_side": self.max_side},
        )

    def __getitem__(self, index: int) -> dict:
        folder, path0, path1, homography = self.pairs[index]
        image0, scale0 = _load_image(path0, self.max_side)
        image1, scale1 = _load_image(path1, self.max_side)
        homography = scale_matrix(scale1) @ homography @ np.linalg.inv(scale_matrix(scale0))
        homography = homography / homography[2, 2]
        k = path1.stem
        return {
            "id": f"{folder.name}/1-{k}",
            "image0": image0,
            "image1": image1,
            "H": torch.from_numpy(homography),
            "kind": folder.name[0],
            "image_ids": [f"{folder.name}/1", f"{folder.name}/{k}"],
            "image_scales": [scale0, scale1],
        }
