"""Depth adapters on small fixtures in the real layouts, and depth runs end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.adapters.kitti_depth import KittiDepthDataset
from bench.adapters.nyu_depth import NyuDepthDataset
from bench.errors import DataError
from bench.formats.images import write_depth_png
from bench.runner import evaluate


def write_nyu(root: Path, count: int = 2) -> None:
    folder = root / "official_splits" / "test" / "kitchen"
    folder.mkdir(parents=True)
    lines = []
    for i in range(count):
        cv2.imwrite(str(folder / f"rgb_{i:05d}.jpg"), np.full((6, 8, 3), 100, np.uint8))
        depth = np.full((6, 8), 1.5 + i, np.float32)
        depth[0, 0] = 0
        write_depth_png(folder / f"sync_depth_{i:05d}.png", depth, 1000.0)
        lines.append(f"kitchen/rgb_{i:05d}.jpg kitchen/sync_depth_{i:05d}.png 518.8579")
    (root / "nyudepthv2_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")


def test_nyu_layout_reads_millimetres(tmp_path: Path) -> None:
    write_nyu(tmp_path)
    data = NyuDepthDataset(tmp_path)
    sample = data[1]
    assert len(data) == 2 and sample["id"] == "kitchen/rgb_00001.jpg"
    assert sample["image"].shape == (3, 6, 8) and float(sample["image"].max()) <= 1
    assert float(sample["depth"][1, 1]) == pytest.approx(2.5)
    assert not bool(sample["valid"][0, 0]) and bool(sample["valid"][1, 1])
    assert float(sample["K"][0, 0]) == pytest.approx(518.8579)


def test_nyu_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        NyuDepthDataset(tmp_path / "nowhere")
    write_nyu(tmp_path)
    depth = tmp_path / "official_splits/test/kitchen/sync_depth_00000.png"
    cv2.imwrite(str(depth), np.zeros((6, 8), np.uint8))
    with pytest.raises(DataError, match="16-bit"):
        NyuDepthDataset(tmp_path)[0]
    depth.unlink()
    with pytest.raises(DataError, match="sync_depth_00000.png"):
        NyuDepthDataset(tmp_path)
    (tmp_path / "nyudepthv2_test_files_with_gt.txt").write_text("only_one_field\n")
    with pytest.raises(DataError, match=":1:"):
        NyuDepthDataset(tmp_path)


def test_kitti_layout_divides_by_256_and_skips_none(tmp_path: Path) -> None:
    image = tmp_path / "raw/2011_09_26/drive_0002_sync/image_02/data/0000000069.png"
    gt = (tmp_path / "data_depth_annotated/drive_0002_sync/proj_depth/groundtruth/image_02"
          / "0000000069.png")
    image.parent.mkdir(parents=True)
    gt.parent.mkdir(parents=True)
    cv2.imwrite(str(image), np.zeros((5, 7, 3), np.uint8))
    cv2.imwrite(str(gt), np.full((5, 7), 256 * 20, np.uint16))
    (tmp_path / "eigen_test_files_with_gt.txt").write_text(
        "2011_09_26/drive_0002_sync/image_02/data/0000000069.png "
        "drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n"
        "2011_09_26/drive_0002_sync/image_02/data/0000000070.png None 721.5377\n")
    data = KittiDepthDataset(tmp_path)
    assert len(data) == 1 and data.info.meta["skipped_without_depth"] == 1
    assert float(data[0]["depth"][0, 0]) == pytest.approx(20.0)
    assert float(data[0]["K"][0, 2]) == pytest.approx(3.0)


def test_synthetic_depth_end_to_end(run_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = evaluate("synthetic-depth", "constant-median", limit=4, progress=False, **run_dirs)
    assert result.n_samples == 4 and 0 < result.metrics["abs_rel"] < 2
    assert len(result.figures) == 4 and all(Path(f).is_file() for f in result.figures)
    assert (run_dirs["leaderboard_dir"] / "synthetic-depth.csv").is_file()
    # A predictions file holding the ground truth scores perfectly.
    from bench.runner import build_dataset
    from bench.spec import load_spec

    dataset = build_dataset(load_spec("synthetic-depth"))
    samples = [dataset[i] for i in range(2)]
    path = tmp_path / "pred.npz"
    np.savez(path, ids=np.array([s["id"] for s in samples]),
             depth=torch.stack([s["depth"] for s in samples]).numpy())
    perfect = evaluate("synthetic-depth", predictions=str(path), limit=2, progress=False,
                       **run_dirs)
    assert perfect.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert perfect.metrics["d1"] == 1.0


def test_depth_unet_beats_the_floor(run_dirs: dict[str, Path]) -> None:
    unet = evaluate("synthetic-depth", "depth-unet", limit=4, progress=False, **run_dirs)
    floor = evaluate("synthetic-depth", "constant-median", limit=4, progress=False, **run_dirs)
    assert unet.metrics["abs_rel"] < floor.metrics["abs_rel"]
    assert unet.metrics["d1"] > floor.metrics["d1"]
