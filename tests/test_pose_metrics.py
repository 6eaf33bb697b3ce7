"""Pose metrics against hand-computed values and bop_toolkit's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from bench.geometry.rotations import random_rotation, rotation_matrix, symmetry_transformations
from bench.metrics.pose import (
    ModelTree,
    add_error,
    adds_error,
    auc,
    closest_distances,
    mspd_error,
    mssd_error,
    projection_error,
    rotation_error_deg,
    transform_points,
    translation_error,
)
from bench.perf.pose import brute_force, tree_per_pose

K = torch.tensor([[300.0, 0, 160.0], [0, 300.0, 120.0], [0, 0, 1]], dtype=torch.float64)


def ring(count: int = 72, radius: float = 0.05) -> torch.Tensor:
    """Points on a circle about z, every 360/count degrees."""
    angle = torch.arange(count, dtype=torch.float64) * 2 * math.pi / count
    return torch.stack([radius * angle.cos(), radius * angle.sin(), torch.zeros(count,
                        dtype=torch.float64)], dim=1)


def pose(rotation: np.ndarray, t: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(rotation)[None].double(),
            torch.tensor([t], dtype=torch.float64))


def test_ground_truth_has_zero_error() -> None:
    points = torch.randn(50, 3, dtype=torch.float64) * 0.03
    R, t = pose(random_rotation(np.random.default_rng(1)), (0.01, -0.02, 0.5))
    assert float(add_error(R, t, R, t, points)) == 0.0
    assert float(adds_error(R, t, R, t, points)) == pytest.approx(0.0, abs=1e-12)
    assert float(rotation_error_deg(R, R)) == 0.0
    assert float(translation_error(t, t)) == 0.0


def test_five_degrees_about_the_symmetry_axis() -> None:
    # A ring of 72 points every 5 degrees: a 5-degree turn about z maps it onto itself,
    # so ADD-S is 0 while ADD is the chord 2 r sin(2.5 deg) for every point.
    points = ring()
    R_gt, t = pose(np.eye(3), (0.0, 0.0, 0.5))
    R_est = R_gt @ torch.from_numpy(rotation_matrix((0, 0, 1), 5.0))
    assert float(rotation_error_deg(R_est, R_gt)) == pytest.approx(5.0, abs=1e-9)
    chord = 2 * 0.05 * math.sin(math.radians(2.5))
    assert float(add_error(R_est, t, R_gt, t, points)) == pytest.approx(chord, rel=1e-12)
    assert float(adds_error(R_est, t, R_gt, t, points)) == pytest.approx(0.0, abs=1e-12)


def test_translation_shift_in_metres_and_pixels() -> None:
    points = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.01, 0.0], [-0.03, 0.02, 0.0]],
                          dtype=torch.float64)
    R, t_gt = pose(np.eye(3), (0.0, 0.0, 0.6))
    t_est = t_gt + torch.tensor([[0.01, 0.0, 0.0]], dtype=torch.float64)
    assert float(add_error(R, t_est, R, t_gt, points)) == pytest.approx(0.01)
    assert float(translation_error(t_est, t_gt)) == pytest.approx(0.01)
    # Points on the plane z = 0.6 move by f * dx / z = 300 * 0.01 / 0.6 = 5 pixels.
    assert float(projection_error(R, t_est, R, t_gt, K[None], points)) == pytest.approx(5.0)


def test_adds_matches_brute_force_and_per_pose_trees() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3)) * 0.04
    R_gt = np.stack([random_rotation(rng) for _ in range(5)])
    R_est = np.stack([random_rotation(rng) for _ in range(5)])
    t_gt = rng.normal(size=(5, 3)) * 0.05
    t_est = t_gt + rng.normal(size=(5, 3)) * 0.01
    ours = ModelTree(torch.from_numpy(points)).adds(
        *(torch.from_numpy(a) for a in (R_est, t_est, R_gt, t_gt))).numpy()
    np.testing.assert_allclose(ours, brute_force(points, R_gt, t_gt, R_est, t_est), atol=1e-9)
    np.testing.assert_allclose(ours, tree_per_pose(points, R_gt, t_gt, R_est, t_est), atol=1e-12)


def test_leaf_order_queries_give_the_same_means_to_the_bit() -> None:
    # Reference: the mapped points queried in the model's own order, averaged per pose.
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.normal(size=(3000, 3)) * 0.04)
    R_gt = torch.from_numpy(np.stack([random_rotation(rng) for _ in range(70)]))
    R_est = torch.from_numpy(np.stack([random_rotation(rng) for _ in range(70)]))
    t_gt = torch.from_numpy(rng.normal(size=(70, 3)) * 0.05)
    t_est = t_gt + torch.from_numpy(rng.normal(size=(70, 3)) * 0.01)
    tree = ModelTree(points)
    assert not torch.equal(tree.leaf_order, torch.arange(3000))
    relative_R = R_est.transpose(1, 2) @ R_gt
    relative_t = torch.matmul((t_gt - t_est)[:, None], R_est)[:, 0]
    mapped = transform_points(points, relative_R, relative_t)
    distances = cKDTree(points.numpy()).query(mapped.numpy().reshape(-1, 3))[0]
    expected = torch.from_numpy(distances).view(70, 3000).mean(dim=1)
    assert torch.equal(tree.adds(R_est, t_est, R_gt, t_gt), expected)  # 70 poses: 2 groups


def test_matrix_product_search_equals_per_pose_trees() -> None:
    # The GPU path of ADD-S, run here on the CPU: per query point the distance to the
    # closest model point equals a cKDTree's, in pieces smaller than one pose (block 1000 =
    # 2 query rows per piece) as in one piece; the identity pose gives exactly 0.
    rng = np.random.default_rng(2)
    points = rng.normal(size=(500, 3)) * 0.04
    R = np.stack([np.eye(3)] + [random_rotation(rng) for _ in range(3)])
    t = np.concatenate([np.zeros((1, 3)), rng.normal(size=(3, 3)) * 0.01])
    tree = cKDTree(points)
    expected = np.stack([tree.query(points @ r.T + v)[0] for r, v in zip(R, t, strict=True)])
    for block in (1000, 10**9):
        found = closest_distances(torch.from_numpy(points), torch.from_numpy(R),
                                  torch.from_numpy(t), block=block).numpy()
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)
        assert (found[0] == 0.0).all()


def test_symmetry_transformations_follow_bop() -> None:
    continuous = {"symmetries_continuous": [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]}
    assert symmetry_transformations(continuous).shape == (315, 4, 4)  # ceil(pi / 0.01)
    flip = np.eye(4)
    flip[:3, :3] = rotation_matrix((1, 0, 0), 180.0)
    flip[:3, 3] = [0, 0, 10.0]  # mm
    both = dict(continuous, symmetries_discrete=[flip.reshape(-1).tolist()])
    transforms = symmetry_transformations(both, unit=0.001)
    assert transforms.shape == (630, 4, 4)
    np.testing.assert_allclose(transforms[0], np.eye(4), atol=1e-12)
    assert transforms[315, 2, 3] == pytest.approx(0.01)  # identity turn after the flip: t_flip


def test_mssd_and_mspd_use_the_symmetries() -> None:
    points = torch.tensor([[0.045, 0.025, 0.015], [-0.045, 0.01, -0.015], [0.0, -0.025, 0.01]],
                          dtype=torch.float64)
    flip = rotation_matrix((0, 0, 1), 180.0)
    symmetries = torch.from_numpy(np.stack([np.eye(4), np.block([[flip, np.zeros((3, 1))],
                                                                 [np.zeros((1, 3)), 1]])]))
    R_gt, t = pose(random_rotation(np.random.default_rng(2)), (0.0, 0.0, 0.5))
    R_est = R_gt @ torch.from_numpy(flip)
    assert float(mssd_error(R_est, t, R_gt, t, points, symmetries)) == pytest.approx(0, abs=1e-12)
    assert float(mspd_error(R_est, t, R_gt, t, K[None], points, symmetries)) == pytest.approx(
        0, abs=1e-9)
    # Without the symmetry, MSSD is the largest displacement: 2 * |xy| of the farthest point.
    identity = symmetries[:1]
    expected = 2 * float(points[:, :2].norm(dim=1).max())
    assert float(mssd_error(R_est, t, R_gt, t, points, identity)) == pytest.approx(expected)
    assert float(add_error(R_est, t, R_gt, t, points)) > 0


def test_auc_conventions_by_hand() -> None:
    distances = torch.tensor([0.02, 0.05, math.inf, math.inf])
    # Exact step CDF: 0.25 on [0.02, 0.05), 0.5 on [0.05, 0.1] -> 0.0325 / 0.1.
    assert auc(distances, 0.1, "step") == pytest.approx(0.325)
    # VOCap holds each value to its left: 0.02*0.25 + 0.03*0.5 + 0.05*0.5 = 0.045.
    assert auc(distances, 0.1, "vocap") == pytest.approx(0.45)
    # Trapezoid: 0.02*0.125 + 0.03*0.375 + 0.05*0.5 = 0.03875.
    assert auc(distances, 0.1, "trapezoid") == pytest.approx(0.3875)
    assert auc(torch.zeros(3), 0.1, "vocap") == pytest.approx(1.0)
    assert auc(torch.full((3,), math.inf), 0.1, "vocap") == 0.0
    with pytest.raises(ValueError, match="convention"):
        auc(distances, 0.1, "simpson")


def test_rotation_error_equals_the_trace_formula() -> None:
    rng = np.random.default_rng(4)
    R_a = torch.from_numpy(np.stack([random_rotation(rng) for _ in range(20)]))
    R_b = torch.from_numpy(np.stack([random_rotation(rng) for _ in range(20)]))
    trace = torch.einsum("bij,bij->b", R_a, R_b)
    reference = torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1, 1)))
    np.testing.assert_allclose(rotation_error_deg(R_a, R_b), reference, atol=1e-6)
