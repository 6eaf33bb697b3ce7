"""FreiHAND's layout (Zimmermann et al., ICCV 2019), also used by the embedded synthetic-hands.

``root/<split>/rgb/%08d.jpg``, ``root/<split>_K.json`` ([N][3][3]),
``root/<split>_xyz.json`` ([N][21][3], metres, camera frame), optional
``root/<split>_verts.json`` ([N][V][3]) and ``root/<split>_vis.json`` ([N][21], arbench's
extension; without it every keypoint counts as visible, as FreiHAND's evaluation feeds
ones). ``<split>`` is ``training`` (split ``train``) or ``evaluation`` (split ``test``).
FreiHAND's training folder holds 4 renderings of each of its N annotated images
(image ``version * N + i``; version 0 is the green-screen original).

Keypoint order: FreiHAND's (wrist, then thumb, index, middle, ring, little, each from base
to tip). ``keypoint_order="rhd"`` or ``"mano"`` reads annotation files written in RHD's order
(wrist, then each finger from tip to base) or MANO's joint order with the five fingertips
appended (manopth's 21 joints) and maps them onto FreiHAND's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo
from bench.errors import DataError
from bench.formats.jsonfile import read_json
from bench.geometry.hand import KEYPOINT_NAMES
from bench.registry import ADAPTERS

HOW_TO_GET = ("download FreiHAND_pub_v2.zip (and FreiHAND_pub_v2_eval.zip) from "
              "https://lmb.informatik.uni-freiburg.de/projects/freihand/, unzip them into one "
              "folder and pass --set dataset.root=DIR")
SPLITS = {"train": "training", "training": "training", "test": "evaluation",
          "evaluation": "evaluation"}
# FREIHAND_FROM[order][i] = index, in that order, of FreiHAND's keypoint i.
FREIHAND_FROM = {
    "freihand": list(range(21)),
    "rhd": [0] + [1 + 4 * finger + 3 - joint for finger in range(5) for joint in range(4)],
    "mano": [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20],
}


def to_freihand_order(keypoints: np.ndarray | torch.Tensor, order: str) -> Any:
    """Reorder keypoints [..., 21, D] given in ``order`` (freihand, rhd, mano) to FreiHAND's."""
    if order not in FREIHAND_FROM:
        raise DataError(f"unknown keypoint_order {order!r} (valid: {', '.join(FREIHAND_FROM)})")
    return keypoints[..., FREIHAND_FROM[order], :]


def read_json_array(path: Path, shape: tuple[int | None, ...], what: str) -> np.ndarray:
    """Load a JSON list as a float64 array of ``shape`` (None = any); DataError when not."""
    if not path.is_file():
        raise DataError(f"FreiHAND {what}: missing {path}", HOW_TO_GET)
    try:
        array = np.asarray(read_json(path), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a JSON array of numbers of shape "
                        f"{list(shape)}: {exc}") from exc
    pairs = zip(shape, array.shape, strict=False)
    if array.ndim != len(shape) or any(want is not None and want != got for want, got in pairs):
        raise DataError(f"{path} holds an array of shape {list(array.shape)}, expected "
                        f"{['N' if s is None else s for s in shape]}")
    return array


@ADAPTERS.register("freihand")
class FreiHandDataset(BenchDataset):
    """FreiHAND-layout hand images with K, 21 3D keypoints (m), visibility, optional vertices."""

    def __init__(self, root: Path, split: str = "test", keypoint_order: str = "freihand",
                 version: int = 0) -> None:
        if split not in SPLITS:
            raise DataError(f"FreiHAND split must be one of {sorted(SPLITS)}, got {split!r}")
        if not root.is_dir():
            raise DataError(f"FreiHAND data root {root} does not exist", HOW_TO_GET)
        name = SPLITS[split]
        self.root, self.name, self.version = root, name, int(version)
        self.K = read_json_array(root / f"{name}_K.json", (None, 3, 3), "intrinsics")
        xyz = read_json_array(root / f"{name}_xyz.json", (None, 21, 3), "3D keypoints")
        self.xyz = to_freihand_order(xyz, keypoint_order)
        n = len(self.xyz)
        if len(self.K) != n:
            raise DataError(f"{root / f'{name}_K.json'} has {len(self.K)} entries but "
                            f"{root / f'{name}_xyz.json'} has {n}")
        self.vis = np.ones((n, 21))
        vis_path = root / f"{name}_vis.json"
        if vis_path.is_file():
            vis = read_json_array(vis_path, (n, 21), "visibility")
            self.vis = to_freihand_order(vis[..., None], keypoint_order)[..., 0]
        self.verts: np.ndarray | None = None
        verts_path = root / f"{name}_verts.json"
        if verts_path.is_file():
            self.verts = read_json_array(verts_path, (n, None, 3), "mesh vertices")
        self.image_dir = root / name / "rgb"
        if not self.image_dir.is_dir():
            raise DataError(f"FreiHAND images: missing folder {self.image_dir}", HOW_TO_GET)
        images = sorted(entry for entry in os.listdir(self.image_dir) if entry.endswith(".jpg"))
        if len(images) < (self.version + 1) * n:
            raise DataError(f"{self.image_dir} holds {len(images)} images; version "
                            f"{self.version} of {n} annotated samples needs "
                            f"{(self.version + 1) * n}", HOW_TO_GET)
        self.info = DatasetInfo(
            name="freihand", root=root, split=split, fingerprint=self._fingerprint(images),
            size=n,
            meta={"num_keypoints": 21, "keypoint_names": KEYPOINT_NAMES,
                  "keypoint_order": keypoint_order, "has_vertices": self.verts is not None,
                  "folder": name},
        )

    def _fingerprint(self, images: list[str]) -> str:
        import hashlib

        digest = hashlib.sha256()
        for suffix in ("K", "xyz", "vis", "verts"):
            path = self.root / f"{self.name}_{suffix}.json"
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        for image in images:
            digest.update(f"{image}:{(self.image_dir / image).stat().st_size}".encode())
        return digest.hexdigest()[:16]

    def sample_id(self, index: int) -> str:
        """The sample id of annotation ``index`` (``<folder>/%08d``)."""
        return f"{self.name}/{index:08d}"

    def image_path(self, index: int) -> Path:
        """The JPEG of annotation ``index`` for this dataset's version."""
        return self.image_dir / f"{self.version * len(self.xyz) + index:08d}.jpg"

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.image_path(index)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"cannot read FreiHAND image {path}", HOW_TO_GET)
        image = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)
        sample = {
            "id": self.sample_id(index),
            "image": image.float().div_(255.0),
            "K": torch.from_numpy(self.K[index]),
            "keypoints": torch.from_numpy(self.xyz[index]),
            "visibility": torch.from_numpy(self.vis[index] > 0),
        }
        if self.verts is not None:
            sample["vertices"] = torch.from_numpy(self.verts[index])
        return sample
