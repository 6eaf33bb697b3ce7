"""Room layout metrics on hand-made cases; every expected value is worked out in a comment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.errors import ContractError
from bench.families.layout import LayoutFamily, rasterize_layout
from bench.metrics.layout import (
    LsunLayoutMetric,
    PlaneIouMetric,
    corner_error,
    depth_errors,
    pixel_error,
    plane_iou,
)


def t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


def test_pixel_error_uses_the_best_label_correspondence() -> None:
    gt = t([[1, 1, 2], [1, 2, 2]])
    swapped = t([[2, 2, 1], [2, 1, 1]])
    # Labels 1 and 2 swapped: the official toolkit's Hungarian correspondence maps them
    # back (error 0); compared as they are, all 6 pixels differ.
    assert pixel_error(swapped, gt) == 0.0
    assert pixel_error(swapped, gt, "none") == 1.0


def test_pixel_error_partial_overlap() -> None:
    gt = t([[1, 1, 1, 2]])
    pred = t([[3, 3, 2, 2]])
    # contingency: gt 1 -> pred 3 twice, pred 2 once; gt 2 -> pred 2 once.
    # best one-to-one: 1<->3 (2 pixels) + 2<->2 (1 pixel) = 3 of 4 -> error 0.25.
    assert pixel_error(pred, gt) == pytest.approx(0.25)
    # as labelled only the last pixel agrees -> 0.75.
    assert pixel_error(pred, gt, "none") == pytest.approx(0.75)


def test_corner_error_matches_corners_and_normalises_by_the_diagonal() -> None:
    gt = np.array([[0.0, 0.0], [30.0, 40.0]])
    pred = np.array([[30.0, 40.0], [3.0, 4.0]])
    # 30 rows x 40 columns: diagonal 50. Matching (3,4)<->(0,0) at 5 px and (30,40) at 0:
    # (5 / 50) / max(2, 2) = 0.05, whatever order the corners come in.
    assert corner_error(pred, gt, 30, 40) == pytest.approx(0.05)


def test_corner_error_penalises_a_wrong_corner_count() -> None:
    gt = np.array([[0.0, 0.0], [30.0, 40.0]])
    # one corner, matched exactly; one missing: (0 + |1 - 2| / 3) / 2 = 1/6.
    assert corner_error(np.array([[0.0, 0.0]]), gt, 30, 40) == pytest.approx(1 / 6)


def test_plane_iou_as_scannet_layout() -> None:
    gt = t([[1, 1, 2, 2], [1, 1, 2, 2]])
    pred = t([[1, 1, 1, 2], [1, 1, 1, 2]])
    # gt planes 4 px each (kept in order); gt 1 takes pred 1 (IoU 4/6), gt 2 takes pred 2
    # (IoU 2/4). Mean over max(2, 2): (2/3 + 1/2) / 2 = 7/12; 6 of 8 pixels agree.
    iou, error = plane_iou(pred, gt)
    assert iou == pytest.approx(7 / 12)
    assert error == pytest.approx(0.25)


def test_plane_iou_unmatched_ground_truth_plane_counts_zero() -> None:
    gt = t([[1, 1, 2, 2], [1, 1, 2, 2]])
    pred = t([[1, 1, 1, 1], [1, 1, 1, 1]])
    # gt 1 takes the single predicted plane (IoU 4/8 = 0.5 > 0.3), gt 2 finds none left:
    # (0.5 + 0) / max(1, 2) = 0.25; 4 of 8 pixels agree.
    iou, error = plane_iou(pred, gt)
    assert iou == pytest.approx(0.25)
    assert error == pytest.approx(0.5)


def test_plane_iou_threshold() -> None:
    gt = t([[1, 1, 1, 1, 2]])
    pred = t([[1, 2, 2, 2, 2]])
    # gt 1 (4 px): IoU with pred 1 = 1/4, with pred 2 = 3/5 -> pred 2. gt 2: pred 1 has
    # IoU 0 < 0.3 -> unmatched. Planes kept: [pred 2, None] + leftover [pred 1] = 3.
    # mean IoU = (3/5 + 0) / 3 = 0.2; agreeing pixels: 3 -> error 2/5.
    iou, error = plane_iou(pred, gt)
    assert iou == pytest.approx(0.2)
    assert error == pytest.approx(0.4)


def test_layout_depth_errors() -> None:
    pred = torch.full((2, 2), 2.0)
    gt = torch.tensor([[1.0, 2.0], [4.0, 0.0]])
    # 3 pixels with ground truth: errors 1, 0, -2 -> RMSE sqrt(5/3);
    # AbsRel (1/1 + 0/2 + 2/4) / 3 = 0.5.
    rmse, abs_rel = depth_errors(pred, gt)
    assert float(rmse) == pytest.approx(math.sqrt(5 / 3))
    assert float(abs_rel) == pytest.approx(0.5)
    # batched: the second image (perfect) has errors 0 and 0.
    rmse, abs_rel = depth_errors(torch.stack([pred, gt]), torch.stack([gt, gt]))
    assert rmse.tolist() == pytest.approx([math.sqrt(5 / 3), 0.0])
    assert abs_rel.tolist() == pytest.approx([0.5, 0.0])


def test_rasterize_single_line_types() -> None:
    # type 9: a wall above the floor line y = 4.5 across a 10x10 image.
    floor = rasterize_layout(9, np.array([[0.0, 4.5], [9.0, 4.5]]), 10, 10)
    assert (floor[:5] == 1).all() and (floor[5:] == 4).all()
    # type 10: two walls split at x = 4.5; equal areas -> the left one is frontal (1),
    # the other the right wall (3).
    walls = rasterize_layout(10, np.array([[4.5, 0.0], [4.5, 9.0]]), 10, 10)
    assert (walls[:, :5] == 1).all() and (walls[:, 5:] == 3).all()


def test_rasterize_full_box() -> None:
    # type 0 in a 100x100 image: front wall the square [30,70]^2, the room's edges going
    # to the image corners. Its 41x41 pixel centres (30..70) are frontal; the top centre
    # is ceiling, bottom floor, left and right walls at mid height.
    corners = np.array([[30, 30], [0, 0], [30, 70], [0, 99], [70, 70], [99, 99], [70, 30],
                        [99, 0]], dtype=np.float64)
    labels = rasterize_layout(0, corners, 100, 100)
    assert (labels[31:70, 31:70] == 1).all()
    assert labels[5, 50] == 5 and labels[95, 50] == 4
    assert labels[50, 5] == 2 and labels[50, 95] == 3


def _batch() -> dict:
    labels = torch.ones(1, 30, 40, dtype=torch.int64)
    labels[:, 20:] = 4
    return {"id": ["img"], "image": torch.zeros(1, 3, 30, 40), "labels": labels,
            "type": torch.tensor([9]), "corners": [torch.tensor([[0.0, 19.5], [39.0, 19.5]])]}


def test_metric_with_corners_only_prediction() -> None:
    family, batch = LayoutFamily(), _batch()
    # A corners-only prediction is rasterised: the exact layout has pixel error 0 and
    # corner error 0; shifting both corners by 5 rows gives 10 / 50 / 2 = 0.1.
    pred = family.check_prediction(
        {"type": [9], "corners": [torch.tensor([[0.0, 24.5], [39.0, 24.5]])]}, batch, None)
    metric = LsunLayoutMetric(figures=0)
    values = metric.update(pred, batch)
    assert values["corner_error"].item() == pytest.approx(0.1)
    # rows 20..24 are wall instead of floor: 5 x 40 of 1200 pixels.
    assert values["pixel_error"].item() == pytest.approx(200 / 1200)
    assert metric.compute()["pixel_error"] == pytest.approx(200 / 1200)


def test_metric_without_corners_leaves_corner_error_out() -> None:
    family, batch = LayoutFamily(), _batch()
    pred = family.check_prediction({"labels": batch["labels"].clone()}, batch, None)
    metric = LsunLayoutMetric(figures=0)
    values = metric.update(pred, batch)
    assert values["pixel_error"].item() == 0.0
    assert math.isnan(values["corner_error"].item())
    assert math.isnan(metric.compute()["corner_error"])
    plane = PlaneIouMetric()
    assert plane.update(pred, batch)["plane_iou"].item() == pytest.approx(1.0)


@pytest.mark.parametrize(("pred", "message"), [
    ({"labels": torch.full((1, 30, 40), 7)}, "label 7 outside 0..5"),
    ({"type": [9], "corners": [torch.zeros(3, 2)]}, "needs 2 corners"),
    ({"type": [11], "corners": [torch.zeros(2, 2)]}, "not an LSUN type"),
    ({"type": [9], "corners": [torch.tensor([[0.0, float("nan")], [1.0, 1.0]])]}, "NaN"),
    ({"type": [9], "corners": [torch.tensor([[0.0, 500.0], [1.0, 1.0]])]}, "outside"),
    ({"labels": torch.ones(1, 10, 10)}, "expected (30, 40)"),
])
def test_bad_predictions_name_the_image(pred: dict, message: str) -> None:
    with pytest.raises(ContractError, match="img") as info:
        LayoutFamily().check_prediction(pred, _batch(), None)
    assert message in str(info.value)


def test_label_tables_count_pairs_and_are_shared() -> None:
    from bench.metrics.layout import label_tables

    gt = t([[1, 1, 4], [5, 5, 4]])[None]
    pred = [t([[1, 2, 4], [5, 0, 4]])]
    tables = label_tables(pred, gt, ["img"])
    # pairs (g, p): (1,1) (1,2) (4,4) (5,5) (5,0) (4,4)
    expected = np.zeros((6, 6), dtype=np.int64)
    for g, p in ((1, 1), (1, 2), (4, 4), (5, 5), (5, 0), (4, 4)):
        expected[g, p] += 1
    assert tables.shape == (1, 6, 6) and (tables[0] == expected).all()
    # the same prediction and batch objects get the same tables back (one count per batch)
    assert label_tables(pred, gt, ["img"]) is tables
    with pytest.raises(ContractError, match="img2: ground-truth surface labels outside"):
        label_tables([t([[1, 1]])], t([[1, 7]])[None], ["img2"])


def test_batched_predictions_are_checked_in_one_pass_and_name_the_bad_image() -> None:
    from bench.families.layout import best_label, check_label_maps, check_layout_depths

    ids, shapes = ["a", "b", "c"], [(2, 3)] * 3
    labels = torch.tensor([[[0, 1, 2], [3, 4, 5]]] * 3)
    checked = check_label_maps(ids, labels, shapes)
    # one [B,H,W] uint8 tensor (the maps' own type), same values
    assert checked.dtype == torch.uint8 and checked.shape == (3, 2, 3)
    assert torch.equal(checked.long(), labels)
    # scores [B,6,H,W] are arg-maxed over the channels; ties go to the first label, as argmax
    scores = torch.zeros(3, 6, 2, 3)
    scores[:, 4, 0, 0] = 1.0
    scores[1, 2, 1, 2] = scores[1, 5, 1, 2] = 2.0
    checked = check_label_maps(ids, scores, shapes)
    assert checked[0, 0, 0] == 4 and checked[1, 1, 2] == 2 and checked[2, 1, 2] == 0
    assert torch.equal(best_label(scores, 1), scores.argmax(1))
    bad = labels.clone()
    bad[1, 0, 2] = 256  # would wrap to 0 in uint8: the range is checked before the cast
    with pytest.raises(ContractError, match="b: label 256 outside 0..5"):
        check_label_maps(ids, bad, shapes)
    nan_scores = scores.clone()
    nan_scores[2, 0, 0, 0] = float("nan")
    with pytest.raises(ContractError, match="c: label scores hold NaN"):
        check_label_maps(ids, nan_scores, shapes)
    # a list of maps is checked map by map
    assert [m.dtype for m in check_label_maps(ids, list(labels), shapes)] == [torch.uint8] * 3
    depths = torch.ones(3, 1, 2, 3)
    assert check_layout_depths(ids, depths, shapes).shape == (3, 2, 3)
    depths[1, 0, 1, 1] = float("inf")
    with pytest.raises(ContractError, match="b: layout depth holds NaN or infinite"):
        check_layout_depths(ids, depths, shapes)


def test_batched_tables_and_pixel_errors_equal_the_per_image_ones() -> None:
    from bench.metrics.layout import (
        _LAST_TABLES,
        label_tables,
        table_pixel_error,
        tables_pixel_error,
    )

    generator = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 6, (4, 7, 9), generator=generator, dtype=torch.uint8)
    gt = torch.randint(0, 6, (4, 7, 9), generator=generator, dtype=torch.uint8)
    batched = label_tables(pred, gt, list("abcd"))
    _LAST_TABLES.clear()
    per_image = label_tables(list(pred), list(gt), list("abcd"))
    assert (batched == per_image).all() and batched.sum() == 4 * 63
    for correspondence in ("hungarian", "none"):
        expected = [table_pixel_error(table, correspondence) for table in per_image]
        assert tables_pixel_error(batched, correspondence).tolist() == expected
    # hand case: labels 1 and 2 swapped everywhere -> 0 with the correspondence, 1 without
    swapped = np.zeros((1, 6, 6), dtype=np.int64)
    swapped[0, 1, 2], swapped[0, 2, 1] = 3, 5
    assert tables_pixel_error(swapped).tolist() == [0.0]
    assert tables_pixel_error(swapped, "none").tolist() == [1.0]
