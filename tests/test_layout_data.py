"""LSUN room layout reading (fixtures in the real MATLAB v5 format), the predictions file,
the embedded synthetic-rooms set and a run end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from bench.adapters.base import ensure_embedded
from bench.adapters.lsun_layout import LsunLayoutDataset
from bench.errors import DataError
from bench.families.layout import LayoutFamily, rasterize_layout
from bench.formats.matfile import write_mat
from bench.runner import evaluate

FIELDS = ("image", "scene", "type", "point", "resolution")


def write_lsun(root: Path, relabelled: bool = False) -> None:
    """Two 40x30 images, types 9 and 10, written as LSUN releases them (1-based points)."""
    (root / "images").mkdir(parents=True)
    (root / "layout_seg").mkdir()
    layouts = {"a": (9, np.array([[1.0, 16.5], [40.0, 16.5]])),
               "b": (10, np.array([[20.5, 1.0], [20.5, 30.0]]))}
    records = np.zeros((1, 2), dtype=[(f, object) for f in FIELDS])
    for index, (name, (kind, points)) in enumerate(layouts.items()):
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), np.full((30, 40, 3), 128, np.uint8))
        labels = rasterize_layout(kind, points - 1, 30, 40)
        savemat(str(root / "layout_seg" / f"{name}.mat"), {"layout": labels})
        if relabelled:
            (root / "layout_seg_images").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "layout_seg_images" / f"{name}.png"), labels)
        records[0, index] = (name, "bedroom", np.array([[kind]], np.uint8), points,
                             np.array([[30, 40]], np.uint16))
    savemat(str(root / "validation.mat"), {"validation": records})


def test_lsun_adapter_reads_the_release_format(tmp_path: Path) -> None:
    write_lsun(tmp_path)
    data = LsunLayoutDataset(tmp_path, "validation")
    assert len(data) == 2 and data.info.split == "validation"
    sample = data[0]
    assert sample["id"] == "a" and sample["type"] == 9
    # 1-based MATLAB points become OpenCV pixel coordinates.
    assert torch.allclose(sample["corners"], torch.tensor([[0.0, 15.5], [39.0, 15.5]]))
    assert (sample["labels"][:16] == 1).all() and (sample["labels"][16:] == 4).all()
    assert sample["K"][0, 2] == pytest.approx(19.5)
    LayoutFamily().check_sample(sample)


def test_lsun_adapter_relabelled_maps(tmp_path: Path) -> None:
    write_lsun(tmp_path, relabelled=True)
    (tmp_path / "layout_seg" / "a.mat").unlink()
    data = LsunLayoutDataset(tmp_path, "val", labels="relabelled")
    assert data.info.meta["labels"] == "relabelled"
    assert (data[1]["labels"][:, 20:] == 3).all()


def test_lsun_adapter_names_the_first_missing_file(tmp_path: Path) -> None:
    write_lsun(tmp_path)
    (tmp_path / "layout_seg" / "b.mat").unlink()
    with pytest.raises(DataError, match=r"layout_seg/b\.mat"):
        LsunLayoutDataset(tmp_path, "validation")
    with pytest.raises(DataError, match="training.mat"):
        LsunLayoutDataset(tmp_path, "train")


def test_lsun_results_file_is_read_as_the_challenge_format(tmp_path: Path) -> None:
    write_lsun(tmp_path / "data")
    data = LsunLayoutDataset(tmp_path / "data", "validation")
    results = np.zeros((1, 2), dtype=[("image", object), ("type", object), ("point", object)])
    results[0, 0] = ("a", 9, np.array([[1.0, 16.5], [40.0, 16.5]]))
    results[0, 1] = ("b", 9, np.array([[1.0, 11.5], [40.0, 11.5]]))
    savemat(str(tmp_path / "results.mat"), {"results": results})
    family = LayoutFamily()
    predictor = family.load_predictions(tmp_path / "results.mat", data)
    batch = family.collate([data[0], data[1]])
    pred = family.check_prediction(predictor(batch), batch, data.info)
    assert pred["type"] == [9, 9]
    assert torch.allclose(pred["corners"][0], torch.tensor([[0.0, 15.5], [39.0, 15.5]],
                                                           dtype=torch.float64))
    # image a is predicted exactly: rasterised labels equal the ground truth.
    assert torch.equal(pred["labels"][0].cpu(), batch["labels"][0])


@pytest.fixture(scope="module")
def rooms() -> LsunLayoutDataset:
    root = ensure_embedded("synthetic-rooms")
    return LsunLayoutDataset(root, "validation")


def test_mat_files_are_written_byte_stably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """scipy stamps the time of writing into a .mat header; the embedded build must not (its
    fingerprint would change with every build), and the file must still load."""
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_mat(tmp_path / "now.mat", {"layout": labels})
    monkeypatch.setattr("time.asctime", lambda *args: "Mon Jan  1 00:00:00 1990")
    write_mat(tmp_path / "then.mat", {"layout": labels})
    assert (tmp_path / "now.mat").read_bytes() == (tmp_path / "then.mat").read_bytes()
    np.testing.assert_array_equal(loadmat(str(tmp_path / "then.mat"))["layout"], labels)


def test_synthetic_rooms_ground_truth_is_consistent(rooms: LsunLayoutDataset) -> None:
    assert len(rooms) == 60
    assert len(LsunLayoutDataset(rooms.root, "training")) == 200
    for index in (0, 17, 42):
        sample = rooms[index]
        labels = sample["labels"].numpy()
        drawn = rasterize_layout(sample["type"], sample["corners"].numpy(), *labels.shape)
        assert (drawn == labels).mean() > 0.98
        # every labelled pixel's layout depth lies on its surface's plane (n . X + d = 0)
        depth, K = sample["layout_depth"].numpy(), sample["K"].numpy()
        rows, cols = np.nonzero(depth > 0)
        points = np.linalg.solve(K, np.stack([cols, rows, np.ones_like(rows)]).astype(float))
        points *= depth[rows, cols]
        planes = sample["planes"].numpy()[labels[rows, cols]]
        residual = np.abs((planes[:, :3] * points.T).sum(1) + planes[:, 3])
        assert np.median(residual) < 2e-3


def test_run_end_to_end(rooms: LsunLayoutDataset, run_dirs: dict[str, Path]) -> None:
    result = evaluate("synthetic-rooms", "mean-layout", limit=8, progress=False, **run_dirs)
    assert 0 < result.metrics["pixel_error"] < 1
    assert 0 < result.metrics["corner_error"] < 1
    assert result.metrics["layout_rmse"] > 0
    assert 0 < result.metrics["plane_iou"] <= 1


def test_scannet_layout_reads_polygons_as_released(tmp_path: Path) -> None:
    from bench.adapters.scannet_layout import ScanNetLayoutDataset

    scene = tmp_path / "scene0000_00"
    for folder in ("color", "labels_json", "layout_depth"):
        (scene / folder).mkdir(parents=True)
    cv2.imwrite(str(scene / "color" / "0.jpg"), np.zeros((968, 1296, 3), np.uint8))
    # two planes split at x = 648 of the 1296-wide colour image -> x = 320 at 640x480;
    # the right one is the smaller and gets index 2.
    shapes = {"shapes": [{"points": [[0, 0], [648, 0], [648, 967], [0, 967]]},
                         {"points": [[648, 0], [1295, 0], [1295, 967], [648, 967]]}]}
    (scene / "labels_json" / "0.json").write_text(__import__("json").dumps(shapes))
    np.save(scene / "layout_depth" / "0.npy", np.full((480, 640), 2.0, np.float32))
    sample = ScanNetLayoutDataset(tmp_path)[0]
    assert sample["id"] == "scene0000_00/0.jpg" and sample["image"].shape == (3, 480, 640)
    plane_map = sample["plane_map"]
    assert (plane_map[:, :320] == 1).all() and (plane_map[:, 321:] == 2).all()
    assert sample["K"][0, 0] == pytest.approx(1169.621094 * 640 / 1296)
    (scene / "layout_depth" / "0.npy").unlink()
    with pytest.raises(DataError, match=r"layout_depth/0\.npy"):
        ScanNetLayoutDataset(tmp_path)


def test_lsun_label_values_are_checked_before_the_uint8_cast(tmp_path: Path) -> None:
    write_lsun(tmp_path)
    labels = loadmat(str(tmp_path / "layout_seg" / "a.mat"))["layout"].astype(np.int32)
    labels[0, 0] = 260  # 260 would wrap to 4 (floor) in uint8
    savemat(str(tmp_path / "layout_seg" / "a.mat"), {"layout": labels})
    data = LsunLayoutDataset(tmp_path, "validation")
    assert data[1]["labels"].dtype == torch.uint8
    with pytest.raises(DataError, match=r"a\.mat holds label 260"):
        data[0]
