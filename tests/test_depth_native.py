"""Depth predictions in the field's own layouts: BTS's 16-bit PNG folders (NYU millimetres,
KITTI x256), per-image .npy folders in metres, and .zip archives of either."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from bench.adapters.base import DatasetInfo
from bench.adapters.kitti_depth import KittiDepthDataset
from bench.adapters.nyu_depth import NyuDepthDataset
from bench.errors import ContractError, ModelError
from bench.families.depth import DepthFamily, bts_png_name, npy_name
from bench.formats.images import write_depth_png
from bench.runner import evaluate

SCENES = ("kitchen", "office")


def write_nyu(root: Path) -> list[np.ndarray]:
    """Two NYU-layout samples (6x8) with depth 1.5 m and 2.5 m; returns the depth maps."""
    lines, depths = [], []
    for i, scene in enumerate(SCENES):
        folder = root / "official_splits" / "test" / scene
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / f"rgb_{i:05d}.jpg"), np.full((6, 8, 3), 100, np.uint8))
        depth = np.full((6, 8), 1.5 + i, np.float32)
        write_depth_png(folder / f"sync_depth_{i:05d}.png", depth, 1000.0)
        lines.append(f"{scene}/rgb_{i:05d}.jpg {scene}/sync_depth_{i:05d}.png 518.8579")
        depths.append(depth)
    (root / "nyudepthv2_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return depths


def tree_digest(folder: Path) -> str:
    """Names, sizes and modification times of everything under ``folder``."""
    entries = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in folder.rglob("*"))
    return hashlib.sha256(repr(entries).encode()).hexdigest()


def test_file_names_follow_bts_and_sample_ids() -> None:
    assert bts_png_name("bathroom/rgb_00045.jpg", "nyu") == "bathroom_rgb_00045.png"
    kitti_id = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    assert bts_png_name(kitti_id, "kitti") == "2011_09_26_drive_0002_sync_0000000069.png"
    assert npy_name("bathroom/rgb_00045.jpg") == "bathroom/rgb_00045.npy"
    assert npy_name("bear/00003") == "bear/00003.npy"


def test_bts_png_folder_in_millimetres_for_nyu(tmp_path: Path,
                                               run_dirs: dict[str, Path]) -> None:
    root = tmp_path / "nyu"
    depths = write_nyu(root)
    preds = tmp_path / "result_bts" / "raw"
    preds.mkdir(parents=True)
    # kitchen exact; office predicted 2.0 m where the truth is 2.5 m (AbsRel 0.2)
    cv2.imwrite(str(preds / "kitchen_rgb_00000.png"), np.full((6, 8), 1500, np.uint16))
    cv2.imwrite(str(preds / "office_rgb_00001.png"), np.full((6, 8), 2000, np.uint16))
    before = tree_digest(preds.parent)
    result = evaluate("nyu-depth", predictions=str(preds), overrides=[f"dataset.root={root}"],
                      progress=False, **run_dirs)
    assert result.n_samples == 2 and len(depths) == 2
    assert result.metrics["abs_rel"] == pytest.approx((0.0 + 0.5 / 2.5) / 2, rel=1e-6)
    assert result.metrics["d1"] == pytest.approx(0.5)  # 2.5 / 2.0 = 1.25 is not < 1.25
    assert tree_digest(preds.parent) == before  # read, never written


def test_bts_png_folder_x256_for_kitti(tmp_path: Path) -> None:
    image = tmp_path / "raw/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    gt = (tmp_path / "data_depth_annotated/2011_09_26_drive_0002_sync/proj_depth/groundtruth"
          / "image_02/0000000069.png")
    for path in (image, gt):
        path.parent.mkdir(parents=True)
    cv2.imwrite(str(image), np.zeros((5, 7, 3), np.uint8))
    cv2.imwrite(str(gt), np.full((5, 7), 256 * 20, np.uint16))
    (tmp_path / "eigen_test_files_with_gt.txt").write_text(
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n")
    dataset = KittiDepthDataset(tmp_path)
    preds = tmp_path / "preds"
    preds.mkdir()
    cv2.imwrite(str(preds / "2011_09_26_drive_0002_sync_0000000069.png"),
                np.full((5, 7), 256 * 19 + 128, np.uint16))
    predictor = DepthFamily().load_predictions(preds, dataset)
    depth = predictor({"id": [dataset[0]["id"]], "image": torch.zeros(1, 3, 5, 7)})["depth"]
    assert len(depth) == 1 and depth[0].shape == (5, 7)
    assert float(depth[0][0, 0]) == pytest.approx(19.5)  # (256 * 19 + 128) / 256


@pytest.mark.parametrize("archive", [False, True])
def test_npy_folder_in_metres_and_its_zip(tmp_path: Path, run_dirs: dict[str, Path],
                                          archive: bool) -> None:
    root = tmp_path / "nyu"
    depths = write_nyu(root)
    preds = tmp_path / "npy"
    for scene, index, depth in zip(SCENES, range(2), depths, strict=True):
        (preds / scene).mkdir(parents=True)
        np.save(preds / scene / f"rgb_{index:05d}.npy", depth * 1.1)  # 10% too far
    given = preds
    if archive:  # a zip of the folder, members under one top folder as `zip -r` makes them
        given = tmp_path / "npy.zip"
        with zipfile.ZipFile(given, "w") as out:
            for path in sorted(preds.rglob("*.npy")):
                out.write(path, f"npy/{path.relative_to(preds).as_posix()}")
    before = tree_digest(tmp_path / "npy")
    result = evaluate("nyu-depth", predictions=str(given), overrides=[f"dataset.root={root}"],
                      progress=False, **run_dirs)
    assert result.metrics["abs_rel"] == pytest.approx(0.1, rel=1e-6)
    assert result.metrics["rmse"] == pytest.approx((0.15 + 0.25) / 2, rel=1e-5)
    assert tree_digest(tmp_path / "npy") == before


def test_missing_and_malformed_files_are_named(tmp_path: Path) -> None:
    root = tmp_path / "nyu"
    write_nyu(root)
    dataset = NyuDepthDataset(root)
    batch = {"id": [dataset[0]["id"], dataset[1]["id"]], "image": torch.zeros(2, 3, 6, 8)}
    family = DepthFamily()
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    cv2.imwrite(str(pngs / "kitchen_rgb_00000.png"), np.full((6, 8), 1500, np.uint16))
    with pytest.raises(ModelError, match="office_rgb_00001.png"):
        family.load_predictions(pngs, dataset)(batch)
    cv2.imwrite(str(pngs / "office_rgb_00001.png"), np.full((6, 8), 15, np.uint8))
    with pytest.raises(ContractError, match="office_rgb_00001.png.*16-bit"):
        family.load_predictions(pngs, dataset)(batch)
    (pngs / "office_rgb_00001.png").write_bytes(b"")
    with pytest.raises(ContractError, match="office_rgb_00001.png is not a readable PNG"):
        family.load_predictions(pngs, dataset)(batch)
    npys = tmp_path / "npys"
    (npys / "kitchen").mkdir(parents=True)
    np.save(npys / "kitchen" / "rgb_00000.npy", np.ones((6, 8), np.int32))
    with pytest.raises(ContractError, match="kitchen/rgb_00000.npy holds int32"):
        family.load_predictions(npys, dataset)(batch)
    (npys / "kitchen" / "rgb_00000.npy").write_bytes(b"not an array")
    with pytest.raises(ContractError, match="kitchen/rgb_00000.npy is not a readable"):
        family.load_predictions(npys, dataset)(batch)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ContractError, match="no .npy or .png"):
        family.load_predictions(empty, dataset)
    text = tmp_path / "preds.txt"
    text.write_text("1.5")
    with pytest.raises(ContractError, match="preds.txt"):
        family.load_predictions(text, dataset)


def test_png_folder_needs_a_data_set_with_a_png_scale(tmp_path: Path) -> None:
    davis_like = SimpleNamespace(info=DatasetInfo("davis", tmp_path, "val", "0", 1))
    (tmp_path / "bear_00000.png").write_bytes(b"")
    with pytest.raises(ContractError, match="no BTS PNG layout"):
        DepthFamily().load_predictions(tmp_path, davis_like)
