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
