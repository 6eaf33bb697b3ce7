"""Depth metrics: hand-checked values, the reference definitions, protocol options, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.errors import ContractError
from bench.families.depth import DepthFamily
from bench.metrics.depth import (
    DepthMetrics,
    align,
    crop_mask,
    depth_errors,
    masked_median,
    scale_and_shift,
)


def monodepth2_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """A numpy transcription of the reference definitions (Monodepth2 + BTS log10/SILog)."""
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    return {
        "d1": (thresh < 1.25).mean(), "d2": (thresh < 1.25 ** 2).mean(),
        "d3": (thresh < 1.25 ** 3).mean(),
        "rmse": np.sqrt(((gt - pred) ** 2).mean()),
        "rmse_log": np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean()),
        "abs_rel": np.mean(np.abs(gt - pred) / gt), "sq_rel": np.mean((gt - pred) ** 2 / gt),
        "log10": np.mean(np.abs(np.log10(gt) - np.log10(pred))),
        "silog": np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100,
    }


def batch_of(gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict:
    gt = gt.reshape(1, *gt.shape[-2:]) if gt.ndim == 2 else gt
    return {"id": [f"s{i}" for i in range(len(gt))], "depth": gt,
            "valid": gt > 0 if valid is None else valid,
            "image": torch.zeros(len(gt), 3, *gt.shape[-2:])}


def test_hand_checked_values() -> None:
    gt = torch.tensor([[[1.0, 2.0, 4.0]]])
    pred = torch.tensor([[[2.0, 2.0, 2.0]]])
    errors = {k: float(v[0]) for k, v in depth_errors(pred, gt, gt > 0).items()}
    ln2 = math.log(2)
    assert errors["abs_rel"] == pytest.approx(0.5)
    assert errors["sq_rel"] == pytest.approx(2 / 3)
    assert errors["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert errors["rmse_log"] == pytest.approx(ln2 * math.sqrt(2 / 3))
    assert errors["log10"] == pytest.approx(2 * math.log10(2) / 3)
    assert errors["silog"] == pytest.approx(100 * ln2 * math.sqrt(2 / 3))
    assert errors["d1"] == errors["d2"] == errors["d3"] == pytest.approx(1 / 3)


def test_delta_threshold_is_strict() -> None:
    gt = torch.tensor([[[1.25, 1.0]]])
    pred = torch.tensor([[[1.0, 1.0]]])
    assert float(depth_errors(pred, gt, gt > 0)["d1"][0]) == pytest.approx(0.5)


def test_agrees_with_reference_definitions_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10, (2, 30, 40))
    pred = gt * rng.uniform(0.7, 1.4, gt.shape)
    mask = rng.random(gt.shape) > 0.3
    ours = depth_errors(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask))
    for b in range(2):
        ref = monodepth2_errors(gt[b][mask[b]], pred[b][mask[b]])
        for key, value in ref.items():
            assert float(ours[key][b]) == pytest.approx(value, rel=1e-9), key


def test_silog_clipped_at_zero() -> None:
    gt = torch.full((1, 4, 4), 2.0)
    pred = torch.full((1, 4, 4), 3.0)  # a pure scale error: variance of log error is 0
    assert float(depth_errors(pred, gt, gt > 0)["silog"][0]) == pytest.approx(0.0, abs=1e-6)


def test_median_is_numpy_median() -> None:
    values = torch.tensor([[[1.0, 2.0, 3.0, 10.0]]])
    assert float(masked_median(values, values > 0)[0]) == pytest.approx(2.5)


def test_median_alignment_removes_scale() -> None:
    gt = torch.rand(1, 8, 8) * 5 + 1
    depth = align(gt * 3.0, "depth", gt, gt > 0, "median", 1e-3, 80.0).depth
    torch.testing.assert_close(depth, gt, rtol=1e-5, atol=1e-5)


def test_scale_and_shift_in_inverse_depth() -> None:
    gt = torch.rand(2, 8, 8) * 5 + 1
    disparity = 2.0 / gt + 0.5
    scale, shift = scale_and_shift(disparity, 1 / gt, gt > 0)
    torch.testing.assert_close(scale, torch.tensor([0.5, 0.5]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shift, torch.tensor([-0.25, -0.25]), rtol=1e-5, atol=1e-5)
    depth = align(disparity, "disparity", gt, gt > 0, "scale_shift", 1e-3, 10.0).depth
    torch.testing.assert_close(depth, gt, rtol=1e-4, atol=1e-4)


def test_invalid_pixels_never_count_and_empty_images_are_reported() -> None:
    metric = DepthMetrics()
    gt = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    pred = {"kind": "depth", "value": torch.tensor([[[1.0, 99.0]], [[1.0, 1.0]]])}
    valid = torch.tensor([[[True, False]], [[False, False]]])
    per_sample = metric.update(pred, batch_of(gt, valid))
    assert per_sample["abs_rel"][0] == 0 and math.isnan(float(per_sample["abs_rel"][1]))
    assert metric.compute()["abs_rel"] == 0.0
    assert metric.details()["depth_protocol"]["images_without_valid_pixels"] == 1


def test_image_vs_pixel_averaging() -> None:
    gt = torch.tensor([[[1.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]])
    pred = {"kind": "depth", "value": torch.tensor([[[1.0, 1.0, 1.0]], [[2.0, 1.0, 1.0]]])}
    per_image, pooled = DepthMetrics(average="image"), DepthMetrics(average="pixel")
    per_image.update(pred, batch_of(gt))
    pooled.update(pred, batch_of(gt))
    assert per_image.compute()["abs_rel"] == pytest.approx(0.5)  # (0 + 1) / 2 images
    assert pooled.compute()["abs_rel"] == pytest.approx(0.25)  # 1 / 4 pixels


def test_caps_and_crops() -> None:
    assert int(crop_mask(480, 640, "eigen_nyu").sum()) == (471 - 45) * (601 - 41)
    metric = DepthMetrics(max_depth=5.0)
    gt = torch.tensor([[[1.0, 50.0]]])
    metric.update({"kind": "depth", "value": torch.tensor([[[1.0, 1.0]]])}, batch_of(gt))
    assert metric.compute()["abs_rel"] == 0.0  # the 50 m pixel is beyond the cap


def test_wrong_size_errors_or_resizes() -> None:
    gt = torch.ones(1, 4, 6)
    pred = {"kind": "depth", "value": torch.ones(1, 2, 3)}
    with pytest.raises(ContractError, match="resize_prediction"):
        DepthMetrics().update(pred, batch_of(gt))
    metric = DepthMetrics(resize_prediction=True)
    metric.update(pred, batch_of(gt))
    assert metric.compute()["abs_rel"] == pytest.approx(0.0)


def test_bad_predictions() -> None:
    family = DepthFamily()
    batch = batch_of(torch.ones(1, 2, 2))
    with pytest.raises(ContractError, match="NaN"):
        family.check_prediction(torch.full((1, 2, 2), float("nan")), batch, None)
    with pytest.raises(ContractError, match="infinite"):
        family.check_prediction({"disparity": torch.full((1, 2, 2), float("inf"))}, batch, None)
    far = family.check_prediction(torch.tensor([[[float("inf"), -1.0], [0.0, 1.0]]]), batch, None)
    metric = DepthMetrics(max_depth=4.0)  # infinite and non-positive depth are clamped
    metric.update(far, batch)
    assert metric.details()["depth_protocol"]["clamped_pixels"] == {"to_min_depth": 2,
                                                                    "to_max_depth": 1}
    assert metric.compute()["abs_rel"] == pytest.approx((3.0 + 0.999 + 0.999) / 4)
    with pytest.raises(ContractError, match="no metric scale"):
        DepthMetrics().update(family.check_prediction({"disparity": torch.ones(1, 2, 2)},
                                                      batch, None), batch)
    with pytest.raises(ContractError, match="exactly one key"):
        family.check_prediction({"depth": torch.ones(1, 2, 2), "x": 1, "disparity": 2}, batch,
                                None)
    inverse = family.check_prediction({"inverse_depth": torch.full((1, 1, 2, 2), 0.5)}, batch,
                                      None)
    metric = DepthMetrics()
    metric.update(inverse, batch_of(torch.full((1, 2, 2), 2.0)))
    assert metric.compute()["abs_rel"] == pytest.approx(0.0)


# Reference evaluation paths written out from the reference code (not arbench's functions).
# BTS utils/eval_with_pngs.py (no alignment): clamp the prediction, inf -> max, then errors.
def bts_reference(gt: np.ndarray, pred: np.ndarray, lo: float, hi: float) -> dict[str, float]:
    pred = pred.copy()
    pred[pred < lo] = lo
    pred[pred > hi] = hi
    pred[np.isinf(pred)] = hi
    valid = np.logical_and(gt > lo, gt < hi)
    return monodepth2_errors(gt[valid], pred[valid])


# Monodepth2 evaluate_depth.py: depth = 1 / disp, mask, median scaling, then clamp.
def monodepth2_reference(gt: np.ndarray, pred_depth: np.ndarray, lo: float, hi: float
                         ) -> dict[str, float]:
    mask = np.logical_and(gt > lo, gt < hi)
    pred, gt = pred_depth[mask], gt[mask]
    pred = pred * (np.median(gt) / np.median(pred))
    pred[pred < lo] = lo
    pred[pred > hi] = hi
    return monodepth2_errors(gt, pred)


# MiDaS evaluation (ranftlr's validation gist): depth <= 0 -> disparity 0, least squares in
# disparity on the ground truth's mask, disparity capped below at 1 / depth_cap, inverted.
def midas_reference(gt: np.ndarray, pred: np.ndarray, kind: str, lo: float, cap: float
                    ) -> dict[str, float]:
    mask = np.logical_and(gt > lo, gt < cap).astype(np.float64)
    if kind == "depth":
        disparity = np.zeros_like(pred)
        disparity[pred > 0] = 1.0 / pred[pred > 0]
    else:
        disparity = pred.copy()
    target = np.zeros_like(gt)
    target[mask == 1] = 1.0 / gt[mask == 1]
    a_00 = np.sum(mask * disparity * disparity)
    a_01 = np.sum(mask * disparity)
    a_11 = np.sum(mask)
    b_0 = np.sum(mask * disparity * target)
    b_1 = np.sum(mask * target)
    det = a_00 * a_11 - a_01 * a_01
    scale = (a_11 * b_0 - a_01 * b_1) / det if det > 0 else 0.0
    shift = (-a_01 * b_0 + a_00 * b_1) / det if det > 0 else 0.0
    aligned = scale * disparity + shift
    aligned[aligned < 1.0 / cap] = 1.0 / cap
    depth = 1.0 / aligned
    return monodepth2_errors(gt[mask == 1], depth[mask == 1])


GT_BAD = np.array([[1.0, 2.0, 3.0, 4.0],
                   [5.0, 6.0, 7.0, 0.0],     # 0: no measurement
                   [1.5, 2.5, 3.5, 12.0]])   # 12 m: beyond max_depth 10
# A noisy prediction with a zero, a negative, an infinite and a too-far pixel on evaluated
# ground truth, and a negative one where there is no ground truth.
PRED_BAD = np.array([[1.2, 0.0, 2.7, 4.4],
                     [-3.0, 6.5, np.inf, -1.0],
                     [1.4, 2.2, 30.0, 11.0]])


def run_depth_metric(pred: np.ndarray, kind: str, alignment: str) -> tuple[dict, dict]:
    metric = DepthMetrics(alignment=alignment, min_depth=1e-3, max_depth=10.0)
    gt = torch.from_numpy(GT_BAD).float()[None]
    value = torch.from_numpy(pred).float()[None]
    per_sample = metric.update({"kind": kind, "value": value}, batch_of(gt))
    return {k: float(v[0]) for k, v in per_sample.items()}, metric.details()["depth_protocol"]


@pytest.mark.parametrize("alignment", ["none", "median", "scale_shift"])
def test_zero_negative_and_infinite_depth_match_the_references(alignment: str) -> None:
    ours, details = run_depth_metric(PRED_BAD, "depth", alignment)
    gt, pred = GT_BAD.astype(np.float64), PRED_BAD.astype(np.float64)
    reference = {"none": lambda: bts_reference(gt, pred, 1e-3, 10.0),
                 "median": lambda: monodepth2_reference(gt, pred, 1e-3, 10.0),
                 "scale_shift": lambda: midas_reference(gt, pred, "depth", 1e-3, 10.0)}
    for key, value in reference[alignment]().items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert details["evaluated_pixels"] == 10 and ours["valid_pixels"] == 10
    clamped = details["clamped_pixels"]
    assert ours["clamped_pixels"] == clamped["to_min_depth"] + clamped["to_max_depth"]
    if alignment == "none":  # 0 and -3 raised to 1 mm; inf and 30 m lowered to 10 m
        assert clamped == {"to_min_depth": 2, "to_max_depth": 2}


@pytest.mark.parametrize("alignment", ["none", "median"])
def test_zero_and_negative_inverse_depth_match_monodepth2(alignment: str) -> None:
    inverse = np.where(PRED_BAD > 0, 1.0 / np.where(PRED_BAD > 0, PRED_BAD, 1.0), PRED_BAD)
    inverse[np.isinf(PRED_BAD)] = 0.0  # inverse depth 0: infinitely far
    ours, details = run_depth_metric(inverse, "inverse_depth", alignment)
    with np.errstate(divide="ignore"):
        depth = 1.0 / inverse.astype(np.float32).astype(np.float64)  # monodepth2: 1 / disp
    reference = (bts_reference(GT_BAD, depth, 1e-3, 10.0) if alignment == "none"
                 else monodepth2_reference(GT_BAD, depth, 1e-3, 10.0))
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert details["clamped_pixels"]["to_min_depth"] >= 1  # 1 / -3 is negative depth


def test_disparity_scale_and_shift_matches_midas() -> None:
    disparity = np.where(np.isfinite(PRED_BAD), 0.3 - 0.05 * PRED_BAD, 0.0)
    ours, _ = run_depth_metric(disparity, "disparity", "scale_shift")
    reference = midas_reference(GT_BAD, disparity.astype(np.float32).astype(np.float64),
                                "disparity", 1e-3, 10.0)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_zero_depth_is_inverse_depth_zero_in_the_scale_and_shift_fit() -> None:
    # arbench used to turn depth 0 into inverse depth 1e12 before the fit; MiDaS uses 0.
    gt = np.linspace(1.0, 5.0, 12).reshape(3, 4)
    pred = gt.copy()
    pred[0, 0] = 0.0
    metric = DepthMetrics(alignment="scale_shift")
    batch = batch_of(torch.from_numpy(gt).float()[None])
    metric.update({"kind": "depth", "value": torch.from_numpy(pred).float()[None]}, batch)
    reference = midas_reference(gt, pred, "depth", 1e-3, 10.0)["abs_rel"]
    old_convention = midas_reference(gt, np.where(pred > 0, 1 / np.maximum(pred, 1e-12), 1e12),
                                     "disparity", 1e-3, 10.0)["abs_rel"]
    assert metric.compute()["abs_rel"] == pytest.approx(reference, rel=1e-6)
    assert reference == pytest.approx(0.425954245, rel=1e-6)
    assert abs(old_convention - reference) > 0.05


def test_masked_median_is_numpys_median_to_the_bit() -> None:
    """Odd and even counts (mean of the middle two in float32), NaN, empty masks."""
    rng = np.random.default_rng(5)
    values = torch.from_numpy(rng.uniform(0.1, 9.0, (5, 7, 9)).astype(np.float32))
    mask = torch.from_numpy(rng.random((5, 7, 9)) < 0.6)
    mask[3] = False
    values[4, 0, 0], mask[4, 0, 0] = float("nan"), True
    medians = masked_median(values, mask)
    for index in range(3):
        expected = np.median(values[index].numpy()[mask[index].numpy()])
        assert medians[index].item() == expected
    assert torch.isnan(medians[3]) and torch.isnan(medians[4])
    assert masked_median(torch.tensor([[[1.0, 4.0]]]), torch.ones(1, 1, 2, dtype=torch.bool)
                         ).item() == 2.5


@pytest.mark.parametrize("alignment", ["none", "median"])
@pytest.mark.parametrize("partial", [False, True])
def test_update_leaves_the_batch_and_prediction_unchanged(alignment: str, partial: bool) -> None:
    """Whole batch tensors are used without copies: the metric must not write into them,
    NaN, infinite and out-of-range predictions included, nor keep views of them."""
    rng = np.random.default_rng(2)
    gt = torch.from_numpy(rng.uniform(0.5, 9.5, (3, 12, 16)).astype(np.float32))
    value = gt * torch.from_numpy(rng.uniform(0.5, 2.0, gt.shape).astype(np.float32))
    value[0, 0, :3] = torch.tensor([float("nan"), float("inf"), 1e-6])
    valid = torch.from_numpy(rng.random(gt.shape) > 0.2) if partial else gt > 0
    batch, pred = batch_of(gt, valid), {"kind": "depth", "value": value}
    before = {"gt": gt.clone(), "value": value.clone(), "valid": valid.clone()}
    metric = DepthMetrics(alignment=alignment, figures=1)
    metric.update(pred, batch)
    assert torch.equal(gt, before["gt"]) and torch.equal(valid, before["valid"])
    assert torch.equal(value.nan_to_num(), before["value"].nan_to_num())
    assert torch.isnan(value).sum() == 1
    gt.zero_()
    assert metric.state("figure_samples")[0]["gt"].max() > 0


def test_cpu_compares_and_counts_equal_torchs_own() -> None:
    from bench.metrics.depth import above, all_true, below, count_below, count_per_item

    # values on both sides of bounds that float32 cannot hold exactly (1e-3, 0.1), the bound
    # itself as float32 rounds it, NaN and infinities: numpy's compare in the values' dtype
    # gives what torch's gives
    edge = [np.nextafter(np.float32(1e-3), np.float32(0)), np.float32(1e-3),
            np.nextafter(np.float32(1e-3), np.float32(1)), np.float32(0.1), np.nan, np.inf,
            -np.inf, 1.25, np.nextafter(np.float32(1.25), np.float32(2))]
    values = torch.tensor(np.array(edge * 4, dtype=np.float32).reshape(2, 3, 6))
    for bound in (1e-3, 0.1, 1.25, 1.25 ** 3):
        assert torch.equal(below(values, bound), values < bound)
        assert torch.equal(above(values, bound), values > bound)
        expected = torch.count_nonzero(values < bound, dim=(1, 2)).double()
        assert torch.equal(count_below(values, bound), expected)
        assert torch.equal(below(values.double(), bound), values.double() < bound)
    mask = values > 0.01
    assert count_per_item(mask).tolist() == [float(m.sum()) for m in mask]
    assert not all_true(mask) and all_true(torch.ones(2, 3, dtype=torch.bool))
