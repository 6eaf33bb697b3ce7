"""Matching metrics against hand-computed cases (planted correct and incorrect matches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.errors import ContractError
from bench.metrics.matching import (
    MatchingMetric,
    corner_error,
    correct_counts,
    descriptor_distance,
    match_descriptors,
    match_errors,
    naive_mutual_nearest,
    pair_statistics,
    repeatability,
    warp_points,
)

SHIFT = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 5.0], [0.0, 0.0, 1.0]])


def test_warp_points_translation_and_projective() -> None:
    points = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert np.allclose(warp_points(SHIFT, points), [[10, 5], [13, 9]])
    projective = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0.5, 1.0]])
    # (3, 4) -> (6, 8) / (0.5 * 4 + 1) = (2, 8/3)
    assert np.allclose(warp_points(projective, points[1:]), [[2.0, 8.0 / 3.0]])


def test_mutual_nearest_and_ratio_by_hand() -> None:
    d0 = torch.tensor([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]])
    d1 = torch.tensor([[0.5, 0.0], [10.0, 1.0], [4.0, 5.0], [6.1, 5.0]])
    # nearest of d0: 0->0 (0.5), 1->1 (1), 2->2 (1, second 1.1);
    # nearest of d1: 0->0, 1->1, 2->2, 3->2  => mutual: (0,0), (1,1), (2,2)
    mnn = match_descriptors(d0, d1, matcher="mnn")
    assert mnn.tolist() == [[0, 0], [1, 1], [2, 2]]
    # ratio 0.8: d0[2] has 1 / 1.1 > 0.8 -> rejected; d0[0]: 0.5 / 6.4 passes
    ratio = match_descriptors(d0, d1, matcher="ratio", ratio=0.8)
    assert ratio.tolist() == [[0, 0], [1, 1]]
    both = match_descriptors(d0, d1, matcher="mnn+ratio", ratio=0.8, chunk=2)
    assert both.tolist() == [[0, 0], [1, 1]]


def test_hamming_distance_counts_bits() -> None:
    d0 = torch.tensor([[0b00000000, 0b11111111], [0b10101010, 0b00000001]], dtype=torch.uint8)
    d1 = torch.tensor([[0b00000000, 0b11111111], [0b00000000, 0b00000000]], dtype=torch.uint8)
    assert descriptor_distance(d0, d1, "hamming").tolist() == [[0, 8], [11, 5]]


def test_chunked_torch_matches_naive_numpy() -> None:
    rng = np.random.default_rng(0)
    d0 = rng.normal(size=(300, 16)).astype(np.float32)
    d1 = np.concatenate([d0[:200] + rng.normal(0, 0.1, (200, 16)).astype(np.float32),
                         rng.normal(size=(150, 16)).astype(np.float32)])
    fast = match_descriptors(torch.from_numpy(d0), torch.from_numpy(d1), chunk=64).numpy()
    assert np.array_equal(fast, naive_mutual_nearest(d0, d1))
    assert len(fast) >= 190


def test_correct_counts_threshold_is_inclusive_by_default() -> None:
    errors = np.array([0.0, 1.0, 2.5, 3.0, 7.0])
    assert correct_counts(errors, np.array([1.0, 3.0, 5.0])).tolist() == [2, 4, 4]
    assert correct_counts(errors, np.array([1.0, 3.0, 5.0]), inclusive=False).tolist() == [1, 3, 4]


def _planted_pair() -> dict[str, torch.Tensor]:
    """4 keypoints; their matches in image 1 are off by 0, 2, 4 and 20 pixels."""
    kp0 = torch.tensor([[20.0, 20.0], [40.0, 20.0], [20.0, 40.0], [40.0, 40.0]])
    offsets = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [20.0, 0.0]])
    kp1 = torch.from_numpy(warp_points(SHIFT, kp0.numpy())).float() + offsets
    return {"keypoints0": kp0, "keypoints1": kp1, "descriptors0": torch.eye(4),
            "descriptors1": torch.eye(4)}


def test_pair_statistics_planted_matches() -> None:
    pred = _planted_pair()
    stats = pair_statistics(pred, torch.from_numpy(SHIFT), (100, 100), (100, 100),
                            thresholds=np.array([1.0, 3.0, 5.0]))
    assert stats["matches"] == 4
    assert stats["correct"].tolist() == [1, 2, 3]
    # shared region: every keypoint maps inside the other 100x100 image -> 4 and 4;
    # matching score at 3 px = (2/4 + 2/4) / 2
    assert stats["matching_score"] == pytest.approx(0.5)
    # geometric mutual neighbours within 3 px: offsets 0 and 2 -> 2 / min(4, 4)
    assert stats["repeatability"] == pytest.approx(0.5)


def test_match_errors_and_corner_error() -> None:
    kp0 = np.array([[0.0, 0.0], [10.0, 10.0]])
    kp1 = np.array([[10.0, 5.0], [23.0, 19.0]])
    errors = match_errors(kp0, kp1, np.array([[0, 0], [1, 1]]), SHIFT)
    assert errors.tolist() == pytest.approx([0.0, 5.0])
    off = SHIFT.copy()
    off[0, 2] += 3.0
    off[1, 2] += 4.0
    assert corner_error(off, SHIFT, 48, 64) == pytest.approx(5.0)
    assert corner_error(None, SHIFT, 48, 64) == float("inf")


def test_repeatability_shared_region_and_formulas() -> None:
    kp0 = np.array([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [95.0, 10.0]])
    # under SHIFT, kp0[3] lands at x=105: outside the 100-wide image 1
    kp1 = np.array([[20.0, 15.0], [31.0, 15.0], [40.0, 25.0]])
    # warped kp0: (20,15) (30,15) (40,15) (105,15); kp1 within 3 px: (20,15)->0, (31,15)->1
    # shared: kp0 3 of 4, kp1 all 3 (their inverses lie in image 0)
    shape = (50, 100)
    assert repeatability(kp0, kp1, SHIFT, shape, shape) == pytest.approx(2 / 3)
    assert repeatability(kp0, kp1, SHIFT, shape, shape, formula="superpoint") == \
        pytest.approx((2 + 2) / (3 + 3))
    assert repeatability(kp0, kp1, SHIFT, shape, shape, region="all") == pytest.approx(2 / 3)
    assert repeatability(kp0, kp1, SHIFT, shape, shape, threshold=1.0, inclusive=False) == \
        pytest.approx(1 / 3)
    assert repeatability(kp0[:0], kp1, SHIFT, shape, shape) == 0.0


def _batch(pred_kind: str = "v") -> dict:
    return {"id": ["s/1-2"], "image0": [torch.zeros(3, 100, 100)],
            "image1": [torch.zeros(3, 100, 100)], "H": torch.from_numpy(SHIFT)[None],
            "kind": [pred_kind], "image_ids": [["s/1", "s/2"]]}


def test_metric_shell_pair_average_and_pooled() -> None:
    metric = MatchingMetric(max_keypoints=None)
    good = {"keypoints0": torch.tensor([[20.0, 20.0]]),
            "keypoints1": torch.tensor([[30.0, 25.0]]),
            "descriptors0": torch.ones(1, 4), "descriptors1": torch.ones(1, 4)}
    metric.update([_planted_pair()], _batch("v"))
    per_sample = metric.update([good], _batch("i"))
    assert per_sample["correct@3px"].tolist() == [1.0]
    out = metric.compute()
    assert out["putative_matches"] == pytest.approx(2.5)
    assert out["correct_matches@3px"] == pytest.approx(1.5)
    # per-pair MMA@3: (2/4 + 1/1) / 2 ; pooled: (2 + 1) / (4 + 1)
    assert out["mma@3px"] == pytest.approx(0.75)
    pooled = MatchingMetric(max_keypoints=None, average="pooled")
    pooled.update([_planted_pair()], _batch("v"))
    pooled.update([good], _batch("i"))
    assert pooled.compute()["mma@3px"] == pytest.approx(0.6)
    curves = metric.details()["mma_curve"]
    assert curves["mma_v"][2] == pytest.approx(0.5) and curves["mma_i"][2] == 1.0
    assert per_sample["homography@3px"].tolist() == [0.0]  # fewer than 4 matches: no H


def test_zero_keypoints_give_zero_counts_not_nan() -> None:
    metric = MatchingMetric()
    empty = {"keypoints0": torch.zeros(0, 2), "keypoints1": torch.zeros(0, 2),
             "descriptors0": torch.zeros(0, 128), "descriptors1": torch.zeros(0, 128)}
    metric.update([empty], _batch())
    out = metric.compute()
    assert out["keypoints"] == 0 and out["putative_matches"] == 0
    assert out["mma@1px"] == 0 and out["repeatability"] == 0 and out["matching_score"] == 0
    assert not any(np.isnan(v) for v in out.values())


def test_max_keypoints_keeps_highest_scores_and_remaps_matches() -> None:
    pred = _planted_pair()
    pred["scores0"] = torch.tensor([0.1, 0.9, 0.8, 0.7])
    pred["scores1"] = torch.tensor([0.1, 0.9, 0.8, 0.7])
    stats = pair_statistics(pred, torch.from_numpy(SHIFT), (100, 100), (100, 100),
                            thresholds=np.array([3.0, 5.0]), max_keypoints=3)
    assert stats["keypoints0"] == 3 and stats["matches"] == 3
    assert stats["correct"].tolist() == [1, 2]
    direct = {"keypoints0": pred["keypoints0"], "keypoints1": pred["keypoints1"],
              "scores0": pred["scores0"], "scores1": pred["scores1"],
              "matches": torch.tensor([[0, 0], [1, 1], [2, 2], [3, 3]])}
    stats = pair_statistics(direct, torch.from_numpy(SHIFT), (100, 100), (100, 100),
                            thresholds=np.array([3.0, 5.0]), max_keypoints=3)
    assert stats["matches"] == 3 and stats["correct"].tolist() == [1, 2]


def test_descriptor_dtype_must_fit_the_distance() -> None:
    pred = _planted_pair()
    with pytest.raises(ContractError, match="Hamming distance needs uint8"):
        pair_statistics(pred, torch.from_numpy(SHIFT), (100, 100), (100, 100),
                        thresholds=np.array([3.0]), distance="hamming")
    binary = dict(pred, descriptors0=torch.zeros(4, 32, dtype=torch.uint8),
                  descriptors1=torch.zeros(4, 32, dtype=torch.uint8))
    with pytest.raises(ContractError, match="L2 distance needs float"):
        pair_statistics(binary, torch.from_numpy(SHIFT), (100, 100), (100, 100),
                        thresholds=np.array([3.0]), distance="l2")


def test_bad_metric_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="matcher"):
        MatchingMetric(matcher="nearest")
    with pytest.raises(ValueError, match="ratio"):
        MatchingMetric(ratio=1.5)
