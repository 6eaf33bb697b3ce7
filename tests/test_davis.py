"""DAVIS: J and F against hand-checked cases and the reference definitions, statistics,
the adapter on small fixtures in the real layout, and runs end to end."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from bench.adapters.davis import DavisDataset
from bench.errors import ContractError, DataError
from bench.formats.palette import davis_palette
from bench.metrics.segmentation import (
    boundary_counts_in_windows,
    boundary_radius,
    dilate,
    disk,
    f_measure,
    jaccard,
    seg2bmap,
    statistics,
)
from bench.runner import build_dataset, evaluate
from bench.spec import load_spec


def reference_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """The davis2017-evaluation definition, pixel by pixel."""
    h, w = seg.shape
    b = np.zeros_like(seg)
    for y in range(h):
        for x in range(w):
            e = seg[y, x + 1] if x + 1 < w else False
            s = seg[y + 1, x] if y + 1 < h else False
            se = seg[y + 1, x + 1] if (x + 1 < w and y + 1 < h) else False
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = seg[y, x] ^ e
            elif x == w - 1:
                b[y, x] = seg[y, x] ^ s
            else:
                b[y, x] = (seg[y, x] ^ e) | (seg[y, x] ^ s) | (seg[y, x] ^ se)
    return b


def test_jaccard_hand_checked() -> None:
    gt = torch.zeros(2, 4, 4, dtype=torch.bool)
    gt[0, :2, :2] = True
    pred = torch.zeros_like(gt)
    pred[0, :1, :2] = True
    torch.testing.assert_close(jaccard(gt, pred), torch.tensor([0.5, 1.0], dtype=torch.float64))


def test_seg2bmap_matches_reference() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((3, 9, 11)) > 0.5
    ours = seg2bmap(torch.from_numpy(masks)).numpy()
    for mask, mine in zip(masks, ours, strict=True):
        np.testing.assert_array_equal(mine, reference_seg2bmap(mask))


def test_f_measure_cases() -> None:
    assert boundary_radius(480, 854) == 8  # ceil(0.008 * 979.7)
    gt = torch.zeros(4, 40, 40, dtype=torch.bool)
    gt[:, 10:30, 10:30] = True
    pred = gt.clone()
    pred[1] = False  # prediction empty, ground truth not: P = 1, R = 0 -> F = 0
    pred[2] = torch.roll(gt[2], 1, dims=1)  # one pixel off: within the tolerance
    pred[3] = torch.roll(gt[3], 5, dims=1)  # five pixels off at 40x40 (tolerance 1 pixel)
    f = f_measure(gt, pred)
    assert f[0] == 1 and f[1] == 0 and f[2] == 1 and 0 < f[3] < 1
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert float(f_measure(empty, empty)[0]) == 1.0
    square = torch.zeros(1, 8, 8, dtype=torch.bool)
    square[0, 2:6, 2:6] = True
    assert float(f_measure(empty, square)[0]) == 0.0  # only the prediction has a boundary


def test_statistics_and_long_sequence_decay() -> None:
    mean, recall, decay = statistics(torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)
    values = torch.linspace(1, 0, 300, dtype=torch.float64)
    _, _, decay = statistics(values)
    array = values.numpy()
    expected = array[0:76].mean() - array[224:300].mean()  # edges 0, 75, 150, 224, 299
    assert decay == pytest.approx(expected)


def write_davis(root: Path, sequences: dict[str, np.ndarray]) -> None:
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("\n".join(sequences) + "\n")
    for name, labels in sequences.items():
        images = root / "JPEGImages/480p" / name
        annotations = root / "Annotations/480p" / name
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for t, label in enumerate(labels):
            cv2.imwrite(str(images / f"{t:05d}.jpg"), np.full((*label.shape, 3), 80, np.uint8))
            mask = Image.fromarray(label.astype(np.uint8), mode="P")
            mask.putpalette(davis_palette())
            mask.save(annotations / f"{t:05d}.png")


def labels(frames: int = 4) -> np.ndarray:
    out = np.zeros((frames, 8, 10), np.uint8)
    out[:, 1:4, 1:4] = 1
    out[:, 5:7, 5:9] = 2
    out[1, 0, 0] = 255  # void reads as background
    return out


def test_davis_adapter_reads_layout(tmp_path: Path) -> None:
    write_davis(tmp_path, {"bear": labels(), "cows": labels(3)})
    data = DavisDataset(tmp_path)
    sample = data[0]
    assert len(data) == 2 and sample["id"] == "bear" and sample["num_objects"] == 2
    assert sample["frames"].shape == (4, 3, 8, 10) and sample["frames"].dtype == torch.uint8
    assert int(sample["annotations"][1, 0, 0]) == 0
    frames = DavisDataset(tmp_path, unit="frame")
    assert len(frames) == 7 and frames[4]["id"] == "cows/00000"
    assert not bool(frames[0]["valid"].any())


def test_davis_adapter_bad_data(tmp_path: Path) -> None:
    gap = labels()
    gap[0][gap[0] == 1] = 0  # object 1 absent from the first frame, object 2 present
    write_davis(tmp_path, {"bear": labels(), "gap": gap})
    with pytest.raises(DataError, match="object id 1 does not exist in the first frame"):
        DavisDataset(tmp_path)[1]
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(
        tmp_path / "Annotations/480p/bear/00001.png")
    with pytest.raises(DataError, match="palette"):
        DavisDataset(tmp_path)[0]
    (tmp_path / "JPEGImages/480p/bear/00002.jpg").unlink()
    with pytest.raises(DataError, match="frame 00002.jpg is missing"):
        DavisDataset(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        DavisDataset(tmp_path / "nowhere")


def zip_masks(path: Path, sequences: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, label_maps in sequences.items():
            for t, label in enumerate(label_maps):
                target = path.parent / f"{name}_{t}.png"
                mask = Image.fromarray(label.astype(np.uint8), mode="P")
                mask.putpalette(davis_palette())
                mask.save(target)
                archive.write(target, f"results/{name}/{t:05d}.png")


def test_davis_vos_end_to_end(run_dirs: dict[str, Path], tmp_path: Path) -> None:
    floor = evaluate("synthetic-davis-vos", "first-frame", limit=2, progress=False, **run_dirs)
    assert 0 <= floor.metrics["J&F-Mean"] < 1
    assert floor.metrics["J&F-Mean"] == pytest.approx(
        (floor.metrics["J-Mean"] + floor.metrics["F-Mean"]) / 2)
    names = {Path(f).name for f in floor.figures}
    assert {"global_results.csv", "per-sequence_results.csv"} <= names
    dataset = build_dataset(load_spec("synthetic-davis-vos"))
    sample = dataset[0]
    truth = {sample["id"]: sample["annotations"].numpy()}
    zip_masks(tmp_path / "perfect.zip", truth)
    perfect = evaluate("synthetic-davis-vos", predictions=str(tmp_path / "perfect.zip"), limit=1,
                       progress=False, **run_dirs)
    assert perfect.metrics["J&F-Mean"] == 1.0 and perfect.metrics["J-Decay"] == 0.0
    first = next(iter(truth))
    bad = {first: truth[first].copy()}
    bad[first][0, 0, 0] = 9
    zip_masks(tmp_path / "bad.zip", bad)
    with pytest.raises(ContractError, match="outside 0.."):
        evaluate("synthetic-davis-vos", predictions=str(tmp_path / "bad.zip"), limit=1,
                 progress=False, **run_dirs)


def test_davis_depth_end_to_end(run_dirs: dict[str, Path]) -> None:
    result = evaluate("synthetic-davis-depth", "constant-median", limit=12, progress=False,
                      **run_dirs)
    assert result.metrics["temporal_change"] == 0.0  # a constant is perfectly steady
    assert result.metrics["temporal_change_gt"] > 0  # the true depth changes as things move
    assert result.metrics["abs_rel"] > 0
    names = [Path(f).name for f in result.figures]
    assert any(n.startswith("depth_room-val") and n.endswith(".png") for n in names)


def test_windowed_boundary_counts_equal_whole_frame_counts() -> None:
    """The CPU path counts boundaries in a window around the masks; on masks touching every
    image edge, scattered noise, an empty frame and a lone pixel it equals whole frames."""
    rng = np.random.default_rng(2)
    gt = torch.from_numpy(rng.random((5, 31, 43)) < 0.2)
    pred = torch.from_numpy(rng.random((5, 31, 43)) < 0.2)
    gt[1], pred[1] = False, False
    gt[2], pred[2] = False, False
    gt[2, 30, 42] = True
    gt[3, :, -3:], pred[3, -2:, :] = True, True
    gt[4], pred[4] = False, False
    pred[4, 10:20, 5:9] = True
    kernel = disk(3)
    gt_b, pred_b = seg2bmap(gt), seg2bmap(pred)
    expected = [(pred_b & dilate(gt_b, kernel)).sum((1, 2)),
                (gt_b & dilate(pred_b, kernel)).sum((1, 2)),
                pred_b.sum((1, 2)), gt_b.sum((1, 2))]
    for got, want in zip(boundary_counts_in_windows(gt, pred, kernel), expected, strict=True):
        assert got.tolist() == want.double().tolist()
