"""Hand-pose metrics against hand-checked values and FreiHAND's definitions (eval.py,
utils/eval_util.py): inclusive PCK, normalised trapezoid AUC, Procrustes with scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from bench.errors import DataError
from bench.geometry.rotations import random_rotation
from bench.metrics.handpose import (
    Keypoint2D,
    Keypoint3D,
    MeshError,
    auc,
    f_score,
    orthogonal_polar,
    pck_hits,
    procrustes_align,
)
from bench.perf.handpose import random_hands, reference_pa_errors

K = torch.tensor([[200.0, 0.0, 63.5], [0.0, 200.0, 63.5], [0.0, 0.0, 1.0]])


def hand(seed: int = 0, count: int = 1) -> torch.Tensor:
    """Random keypoints [count,21,3] about 0.5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(0.0, 0.04, (count, 21, 3)) + np.array([0.0, 0.0, 0.5]))


def batch_of(gt: torch.Tensor, visibility: torch.Tensor | None = None) -> dict:
    return {"id": [f"s{i}" for i in range(len(gt))], "keypoints": gt,
            "K": K.expand(len(gt), 3, 3).double(),
            "visibility": torch.ones(gt.shape[:2], dtype=torch.bool) if visibility is None
            else visibility}


def test_auc_is_normalised_trapezoid_and_half_for_errors_at_midrange() -> None:
    thresholds = torch.linspace(0.0, 50.0, 100, dtype=torch.float64)
    # Every error 25 mm: PCK is 0 below 25 and 1 from t_50 = 25.25 on; by hand the area is
    # 50 - t_50 + (t_50 - t_49) / 2 = 25, so the normalised AUC is exactly 0.5.
    errors = torch.full((4, 21), 25.0, dtype=torch.float64)
    curve = pck_hits(errors, torch.ones_like(errors, dtype=torch.bool), thresholds)[0] / 4
    assert float(auc(curve, thresholds)) == pytest.approx(0.5, abs=1e-12)
    assert float(auc(torch.ones(100, dtype=torch.float64), thresholds)) == pytest.approx(1.0)


def test_pck_is_inclusive_by_default_and_strict_on_request() -> None:
    thresholds = torch.linspace(0.0, 50.0, 100, dtype=torch.float64)
    errors = thresholds[50].expand(1, 21).clone()
    valid = torch.ones_like(errors, dtype=torch.bool)
    inclusive = pck_hits(errors, valid, thresholds)[0]
    strict = pck_hits(errors, valid, thresholds, inclusive=False)[0]
    assert inclusive[50] == 1 and inclusive[49] == 0
    assert strict[50] == 0 and strict[51] == 1


def test_mean_error_is_mean_over_keypoints_of_visible_means() -> None:
    gt = hand(1, 2)
    pred = gt.clone()
    pred[0, :, 0] += 0.010  # sample 0: every keypoint 10 mm off
    pred[1, :, 0] += 0.030  # sample 1: every keypoint 30 mm off
    visibility = torch.ones(2, 21, dtype=torch.bool)
    visibility[1, :10] = False  # keypoints 0-9 only seen in sample 0
    metric = Keypoint3D("none")
    per_sample = metric.update({"keypoints": pred}, batch_of(gt, visibility))["error_mm"]
    # Keypoints 0-9 have mean 10 mm, keypoints 10-20 mean (10 + 30) / 2 = 20 mm.
    expected = (10 * 10.0 + 11 * 20.0) / 21
    assert metric.compute()["mpjpe_mm"] == pytest.approx(expected)
    assert per_sample.tolist() == pytest.approx([10.0, 30.0])
    # PCK over 0-50 mm: keypoints 0-9 correct from 10 mm, 10-20 half from 10, all from 30.
    assert metric.compute()["auc_0_50"] == pytest.approx(
        (10 * float(auc((torch.linspace(0, 50, 100) >= 10 - 1e-9).double(),
                        torch.linspace(0, 50, 100, dtype=torch.float64)))
         + 11 * float(auc(0.5 * (torch.linspace(0, 50, 100) >= 10 - 1e-9).double()
                          + 0.5 * (torch.linspace(0, 50, 100) >= 30 - 1e-9).double(),
                          torch.linspace(0, 50, 100, dtype=torch.float64)))) / 21, abs=1e-9)


def test_matches_a_direct_eval_util_loop_on_random_data() -> None:
    gt = hand(2, 30)
    pred = gt + torch.from_numpy(np.random.default_rng(3).normal(0, 0.015, gt.shape))
    visibility = torch.from_numpy(np.random.default_rng(4).random((30, 21)) > 0.3)
    metric = Keypoint3D("none")
    for rows in (slice(0, 13), slice(13, 30)):
        metric.update({"keypoints": pred[rows]}, batch_of(gt[rows], visibility[rows]))
    # The reference definition: per keypoint, the list of visible errors; mean of means;
    # per keypoint PCK (<=) curve and np.trapz / range, averaged over keypoints.
    distances = np.linalg.norm((pred - gt).numpy(), axis=2)
    thresholds = np.linspace(0.0, 0.05, 100)
    means, aucs = [], []
    for k in range(21):
        data = distances[visibility[:, k].numpy(), k]
        means.append(data.mean())
        curve = np.array([np.mean(data <= t) for t in thresholds])
        aucs.append(np.trapezoid(curve, thresholds) / np.trapezoid(np.ones(100), thresholds))
    out = metric.compute()
    assert out["mpjpe_mm"] == pytest.approx(np.mean(means) * 1000, rel=1e-12)
    assert out["auc_0_50"] == pytest.approx(np.mean(aucs), abs=1e-9)


def test_procrustes_removes_similarity_and_matches_scipy_reference() -> None:
    gt = hand(5, 1)
    rotation = torch.from_numpy(random_rotation(np.random.default_rng(6)))
    pred = 1.7 * gt @ rotation.T + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    # Exact up to the reference's +1e-8 on both norms (a relative scale error ~1e-8).
    assert float((procrustes_align(pred, gt) - gt).abs().max()) < 1e-7
    gt_np, pred_np = random_hands(50, seed=7)
    ours = (procrustes_align(torch.from_numpy(pred_np), torch.from_numpy(gt_np))
            - torch.from_numpy(gt_np)).norm(dim=-1).numpy()
    np.testing.assert_allclose(ours, reference_pa_errors(gt_np, pred_np), atol=1e-12)


def test_procrustes_allows_reflections_like_scipy_and_rigid_option() -> None:
    gt = hand(8, 1)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    # scipy's orthogonal_procrustes (FreiHAND's align_w_scale) may reflect: error ~ 0.
    assert float((procrustes_align(mirrored, gt) - gt).abs().max()) < 1e-7
    rigid = Keypoint3D("procrustes", procrustes_scale=False)
    rigid.update({"keypoints": 2.0 * gt}, batch_of(gt))
    centred = (gt - gt.mean(dim=1, keepdim=True)).norm(dim=-1) * 1000.0
    assert rigid.compute()["pa_mpjpe_mm"] == pytest.approx(float(centred.mean()), rel=1e-9)


def test_polar_factor_matches_svd_including_singular_matrices() -> None:
    matrices = torch.randn(500, 3, 3, dtype=torch.float64, generator=torch.Generator()
                           .manual_seed(0))
    matrices[0] = 0.0
    matrices[1, 2] = matrices[1, 1]
    rotation, sigma_sum = orthogonal_polar(matrices)
    u, _, vt = torch.linalg.svd(matrices[2:])
    assert float((rotation[2:] - u @ vt).abs().max()) < 1e-12
    assert float((sigma_sum - torch.linalg.svdvals(matrices).sum(1)).abs().max()) < 1e-12
    r, _ = orthogonal_procrustes(np.eye(3), matrices[5].numpy())
    np.testing.assert_allclose(rotation[5].numpy(), r, atol=1e-12)


def test_degenerate_ground_truth_is_a_clear_error_for_procrustes() -> None:
    gt = torch.full((1, 21, 3), 0.5, dtype=torch.float64)
    with pytest.raises(DataError, match="coincide"):
        Keypoint3D("procrustes").update({"keypoints": hand(9, 1)}, batch_of(gt))


def test_nan_predictions_fail_at_every_threshold_and_are_never_dropped() -> None:
    gt = hand(10, 2)
    pred = gt.clone()
    pred[1, 3] = float("nan")
    for alignment in ("none", "procrustes"):
        metric = Keypoint3D(alignment)
        metric.update({"keypoints": pred}, batch_of(gt))
        out = metric.compute()
        prefix = "pa_" if alignment == "procrustes" else ""
        assert math.isinf(out[f"{prefix}mpjpe_mm"])
        # Procrustes fails the whole NaN sample (and the perfect one keeps the reference's
        # ~1e-6 mm residual, so it fails the 0 mm threshold); unaligned only keypoint 3.
        expected = 0.5 - 0.25 / 99 if alignment == "procrustes" else (20 + 0.5) / 21
        assert out[f"{prefix}auc_0_50"] == pytest.approx(expected)


def test_root_relative_ignores_translation_and_2d_ignores_depth_along_rays() -> None:
    gt = hand(11, 3)
    shifted = gt + torch.tensor([0.02, 0.0, 0.0], dtype=torch.float64)
    root, plain = Keypoint3D("root"), Keypoint3D("none")
    for metric in (root, plain):
        metric.update({"keypoints": shifted}, batch_of(gt))
    assert root.compute()["rr_mpjpe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert plain.compute()["mpjpe_mm"] == pytest.approx(20.0)
    metric2d = Keypoint2D()
    metric2d.update({"keypoints": gt * 1.3}, batch_of(gt))  # same rays, other depths
    assert metric2d.compute()["error2d_px"] == pytest.approx(0.0, abs=1e-9)
    metric2d = Keypoint2D(threshold_px=10)
    moved = gt.clone()
    moved[..., 0] += 5.0 * moved[..., 2] / 200.0  # 5 px to the right (fx = 200)
    metric2d.update({"keypoints": moved}, batch_of(gt))
    out = metric2d.compute()
    assert out["error2d_px"] == pytest.approx(5.0)
    assert out["pck2d_10px"] == 1.0


def test_fscore_and_mesh_errors() -> None:
    verts = hand(12, 2)
    assert f_score(verts, verts, 0.005).tolist() == [1.0, 1.0]
    offset = verts + torch.tensor([0.0, 0.0, 0.010], dtype=torch.float64)
    # Every point is exactly 10 mm from its twin; other points of a 4 cm cloud are farther
    # only sometimes, so F@5mm is at most what nearest neighbours allow and F@15mm is 1.
    assert f_score(offset, verts, 0.015).tolist() == [1.0, 1.0]
    metric = MeshError()
    metric.update({"keypoints": offset, "vertices": offset}, {**batch_of(verts),
                                                              "vertices": verts})
    out = metric.compute()
    assert out["mesh_error_mm"] == pytest.approx(10.0)
    assert out["pa_mesh_error_mm"] == pytest.approx(0.0, abs=1e-4)
    assert out["pa_fscore_5mm"] == 1.0 and out["fscore_15mm"] == 1.0
    assert MeshError().compute()["mesh_error_mm"] != MeshError().compute()["mesh_error_mm"]
