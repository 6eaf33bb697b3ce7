"""DAVIS 2017 (semi-supervised) in its release layout, plus optional per-frame depth.

    ImageSets/2017/{train,val}.txt            one sequence name per line
    JPEGImages/<res>/<seq>/00000.jpg ...      <res>: 480p or Full-Resolution
    Annotations/<res>/<seq>/00000.png ...     palette PNGs, pixel = object id (0 background,
                                              255 = void, read as background like davis2017)
    Depth/<res>/<seq>/00000.png ...           optional: uint16 depth in millimetres (0 = none)
    Depth/<res>/<seq>/intrinsics.txt         optional: "fx fy cx cy" in pixels

``unit: sequence`` gives one sample per sequence for the ``video`` family (VOS);
``unit: frame`` gives one sample per frame for the ``depth`` family (frames carry
``sequence``, ``sequence_index`` and ``frame_index``; without a Depth folder the depth is
0 / invalid everywhere and K assumes fx = fy = the image width).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo, fingerprint_files
from bench.errors import DataError
from bench.formats.images import read_depth_png, read_index_png, read_rgb
from bench.registry import ADAPTERS

HOW_TO_GET = ("download DAVIS-2017-trainval-480p.zip (or Full-Resolution) from "
              "https://davischallenge.org/davis2017/code.html, unzip it and pass "
              "--set dataset.root=DIR/DAVIS")
RESOLUTIONS = ("480p", "Full-Resolution")


def frame_names(folder: Path, suffix: str) -> list[str]:
    """Sorted frame stems in ``folder``; a gap in 00000, 00001, ... raises DataError."""
    names = sorted(p.stem for p in folder.glob(f"*{suffix}"))
    for index, name in enumerate(names):
        if name != f"{index:05d}":
            raise DataError(f"sequence {folder}: frame {index:05d}{suffix} is missing "
                            f"(found {name}{suffix} in its place)", HOW_TO_GET)
    return names


@ADAPTERS.register("davis")
class DavisDataset(BenchDataset):
    """DAVIS 2017 sequences (VOS) or frames (depth), 480p or Full-Resolution."""

    def __init__(self, root: Path, split: str = "val", resolution: str = "480p",
                 unit: str = "sequence", sequences: list[str] | None = None) -> None:
        if resolution not in RESOLUTIONS:
            raise DataError(f"davis resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        if unit not in ("sequence", "frame"):
            raise DataError(f"davis unit must be 'sequence' or 'frame', got {unit!r}")
        if not root.exists():
            raise DataError(f"DAVIS root {root} does not exist", HOW_TO_GET)
        list_path = root / "ImageSets" / "2017" / f"{split}.txt"
        if not list_path.is_file():
            raise DataError(f"DAVIS: missing sequence list {list_path}", HOW_TO_GET)
        names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        if sequences is not None:
            unknown = sorted(set(sequences) - set(names))
            if unknown:
                raise DataError(f"DAVIS {split}: no sequence {unknown[0]!r} in {list_path}")
            names = [n for n in names if n in set(sequences)]
        self.root, self.resolution, self.unit = root, resolution, unit
        self.sequences: list[dict[str, Any]] = []
        files: list[Path] = [list_path]
        for name in names:
            seq = self._scan(name)
            self.sequences.append(seq)
            files += seq["images"] + seq["masks"] + seq["depths"] + seq["extra"]
        self.frames = [(s, t) for s, seq in enumerate(self.sequences)
                       for t in range(len(seq["images"]))]
        has_depth = bool(self.sequences) and all(s["depths"] for s in self.sequences)
        self.info = DatasetInfo(
            name="davis", root=root, split=split, fingerprint=fingerprint_files(files, root),
            size=len(self.sequences) if unit == "sequence" else len(self.frames),
            meta={"sequences": names, "resolution": resolution, "has_depth": has_depth},
        )

    def _scan(self, name: str) -> dict[str, Any]:
        image_dir = self.root / "JPEGImages" / self.resolution / name
        if not image_dir.is_dir():
            raise DataError(f"DAVIS: missing frames folder {image_dir}", HOW_TO_GET)
        stems = frame_names(image_dir, ".jpg")
        if not stems:
            raise DataError(f"DAVIS: no frames in {image_dir}", HOW_TO_GET)
        mask_dir = self.root / "Annotations" / self.resolution / name
        masks = [mask_dir / f"{s}.png" for s in stems]
        if self.unit == "sequence":
            for path in masks:
                if not path.is_file():
                    raise DataError(f"DAVIS: missing annotation {path}", HOW_TO_GET)
        else:
            masks = [p for p in masks if p.is_file()]
        depth_dir = self.root / "Depth" / self.resolution / name
        depths: list[Path] = []
        extra: list[Path] = []
        intrinsics = None
        if depth_dir.is_dir():
            depths = [depth_dir / f"{s}.png" for s in stems]
            for path in depths:
                if not path.is_file():
                    raise DataError(f"DAVIS: missing depth map {path}")
            k_path = depth_dir / "intrinsics.txt"
            if k_path.is_file():
                try:
                    intrinsics = [float(v) for v in k_path.read_text().split()]
                except ValueError as exc:
                    raise DataError(f"{k_path}: expected 'fx fy cx cy'") from exc
                if len(intrinsics) != 4:
                    raise DataError(f"{k_path}: expected 4 numbers 'fx fy cx cy'")
                extra.append(k_path)
        return {"name": name, "images": [image_dir / f"{s}.jpg" for s in stems],
                "masks": masks, "depths": depths, "extra": extra, "intrinsics": intrinsics}

    def read_annotations(self, seq: dict[str, Any]) -> tuple[torch.Tensor, int]:
        """Label maps int64 [T,H,W] (255 read as 0) and the number of objects of frame 0."""
        labels = np.stack([read_index_png(p, str(p), DataError) for p in seq["masks"]])
        labels[labels == 255] = 0
        first = labels[0]
        num_objects = int(first.max())
        missing = sorted(set(range(1, num_objects + 1)) - set(np.unique(first).tolist()))
        if missing:
            raise DataError(f"{seq['masks'][0]}: object id {missing[0]} does not exist in the "
                            f"first frame (ids must be 1..{num_objects})")
        return torch.from_numpy(labels.astype(np.int64)), num_objects

    def __len__(self) -> int:
        return self.info.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.unit == "frame":
            return self._frame(*self.frames[index])
        seq = self.sequences[index]
        frames = []
        for path in seq["images"]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise DataError(f"cannot read image {path}")
            frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
        labels, num_objects = self.read_annotations(seq)
        frames_t = torch.from_numpy(np.stack(frames))
        if tuple(labels.shape[1:]) != tuple(frames_t.shape[2:]):
            raise DataError(f"{seq['masks'][0]} is {labels.shape[2]}x{labels.shape[1]}, its "
                            f"frames {frames_t.shape[3]}x{frames_t.shape[2]}")
        return {"id": seq["name"], "frames": frames_t, "first_mask": labels[0].clone(),
                "num_objects": num_objects, "annotations": labels, "sequence_index": index}

    def _frame(self, seq_index: int, t: int) -> dict[str, Any]:
        seq = self.sequences[seq_index]
        image = read_rgb(seq["images"][t])
        height, width = image.shape[1:]
        if seq["depths"]:
            depth = torch.from_numpy(read_depth_png(seq["depths"][t], 1000.0))
            if tuple(depth.shape) != (height, width):
                raise DataError(f"{seq['depths'][t]} is {depth.shape[1]}x{depth.shape[0]}, "
                                f"its frame {width}x{height}")
        else:
            depth = torch.zeros(height, width)
        fx, fy, cx, cy = seq["intrinsics"] or (width, width, (width - 1) / 2, (height - 1) / 2)
        return {
            "id": f"{seq['name']}/{t:05d}", "image": image, "depth": depth, "valid": depth > 0,
            "K": torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32),
            "sequence": seq["name"], "sequence_index": seq_index, "frame_index": t,
        }
