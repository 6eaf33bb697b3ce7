"""Shape metrics against hand-checked cases (Occupancy Networks / Tatarchenko et al.)."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial import cKDTree

from bench.errors import ContractError
from bench.families.shape import ShapePrediction
from bench.geometry.distances import chunked_cdist, nearest_both_ways, nearest_neighbours
from bench.geometry.grids import grid_occupancy, grid_to_mesh, uniform_cube_points
from bench.geometry.mesh import check_mesh, is_watertight, mesh_occupancy, sample_surface
from bench.metrics.shape import ShapeSurface, VoxelIoU, iou, pointcloud_metrics


def sphere(radius: float) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=60)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles).astype(np.int64)


def cube(side: float, shift: tuple[float, float, float] = (0, 0, 0)):
    mesh = o3d.geometry.TriangleMesh.create_box(side, side, side)
    vertices = np.asarray(mesh.vertices) - side / 2 + np.asarray(shift)
    return vertices, np.asarray(mesh.triangles).astype(np.int64)


def test_pointcloud_metrics_by_hand():
    pred = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    gt = np.array([[0.0, 0, 0], [0.0, 0, 2]])
    out = pointcloud_metrics(pred, gt, thresholds=(1.5,))
    # accuracy: pred -> gt distances 0 and 1; completeness: gt -> pred 0 and 2.
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["completeness"] == pytest.approx(1.0)
    assert out["accuracy2"] == pytest.approx(0.5)
    assert out["completeness2"] == pytest.approx(2.0)
    assert out["chamfer_l1"] == pytest.approx(0.75)
    assert out["chamfer_l2"] == pytest.approx(1.25)
    assert out["precision@1.5"] == pytest.approx(1.0)
    assert out["recall@1.5"] == pytest.approx(0.5)
    assert out["fscore@1.5"] == pytest.approx(2 * 0.5 / 1.5)
    assert math.isnan(out["normal_consistency"])
    summed = pointcloud_metrics(pred, gt, thresholds=(1.5,), chamfer_reduction="sum")
    assert summed["chamfer_l1"] == pytest.approx(1.5)
    assert summed["chamfer_l2"] == pytest.approx(2.5)


def test_fscore_threshold_is_strict_and_normals_are_orientation_free():
    pred = np.array([[0.0, 0, 0]])
    gt = np.array([[0.5, 0, 0]])
    out = pointcloud_metrics(pred, gt, np.array([[0.0, 0, 1]]), np.array([[0.0, 0, -1]]),
                             thresholds=(0.5, 0.51))
    assert out["fscore@0.5"] == 0.0
    assert out["fscore@0.51"] == 1.0
    assert out["normal_consistency"] == pytest.approx(1.0)


def test_concentric_spheres():
    metric = ShapeSurface(n_points=20_000, iou_points=50_000, fscore_thresholds=[0.01, 0.1])
    inner, outer = sphere(0.25), sphere(0.3)
    row = metric.evaluate_one(ShapePrediction("mesh", *inner), *outer, "spheres")
    # every point of one sphere is 0.05 from the other (up to tessellation and sampling)
    assert row["accuracy"] == pytest.approx(0.05, abs=2e-3)
    assert row["completeness"] == pytest.approx(0.05, abs=3e-3)
    assert row["chamfer_l1"] == pytest.approx(0.05, abs=3e-3)
    assert row["chamfer_l2"] == pytest.approx(0.0025, abs=3e-4)
    assert row["fscore@1%"] == 0.0
    assert row["fscore@10%"] == 1.0
    assert row["normal_consistency"] == pytest.approx(1.0, abs=2e-3)
    assert row["iou"] == pytest.approx((0.25 / 0.3) ** 3, abs=0.01)


def test_cube_against_shifted_cube():
    metric = ShapeSurface(n_points=50_000, iou_points=50_000, fscore_thresholds=[0.1])
    row = metric.evaluate_one(ShapePrediction("mesh", *cube(0.5, (0.1, 0, 0))), *cube(0.5),
                              "cubes")
    # overlap 0.4 x 0.5 x 0.5 = 0.1, union 2 x 0.125 - 0.1 = 0.15
    assert row["iou"] == pytest.approx(0.1 / 0.15, abs=0.01)
    assert row["gt_watertight"] == 1.0
    # Of the predicted surface (area 1.5) the outer x face (0.25) and the centre of the inner
    # x face (|y|, |z| < 0.15: 0.09) lie >= 0.1 from the other cube (the F-score's "<" is
    # strict): precision@0.1 = recall@0.1 = (1.5 - 0.25 - 0.09) / 1.5.
    assert row["precision@10%"] == pytest.approx(1.16 / 1.5, abs=0.005)
    assert row["recall@10%"] == pytest.approx(1.16 / 1.5, abs=0.005)
    # Integrated distance to the other cube: outer face 0.25 * 0.1, inner face 0.016333
    # (min(0.1, distance to its border) over the face), side strips 4 * 0.5 * 0.1^2 / 2,
    # the overlapping side faces 0: 0.051333 / 1.5 = 0.03422, plus the mean distance
    # between samples (0.5 / sqrt(density) ~ 0.0027) on the overlapping 8/15 of the surface.
    assert row["accuracy"] == pytest.approx(0.03422 + 0.0014, abs=0.001)
    assert row["completeness"] == pytest.approx(0.03422 + 0.0014, abs=0.001)


def test_identical_meshes_are_perfect_up_to_sampling():
    metric = ShapeSurface(n_points=50_000, iou_points=20_000, fscore_thresholds=[0.02])
    row = metric.evaluate_one(ShapePrediction("mesh", *sphere(0.4)), *sphere(0.4), "same")
    assert row["iou"] == pytest.approx(1.0)
    assert row["fscore@2%"] > 0.99
    assert row["chamfer_l1"] < 0.005


def test_empty_prediction_gets_reference_worst_values():
    metric = ShapeSurface(n_points=1000, iou_points=1000)
    empty = ShapePrediction("mesh", np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    row = metric.evaluate_one(empty, *cube(0.5), "empty")
    assert row["accuracy"] == pytest.approx(math.sqrt(3))
    assert row["completeness"] == pytest.approx(math.sqrt(3))
    assert row["chamfer_l1"] == pytest.approx(math.sqrt(3))
    assert row["chamfer_l2"] == pytest.approx(3.0)
    assert row["fscore@1%"] == 0.0
    assert row["iou"] == 0.0
    assert row["normal_consistency"] == -1.0
    grid = ShapePrediction("grid", grid=np.zeros((8, 8, 8)), bounds=np.array([[-.5] * 3, [.5] * 3]))
    assert metric.evaluate_one(grid, *cube(0.5), "empty-grid")["iou"] == 0.0


def test_non_watertight_ground_truth_reports_nan_iou_but_point_metrics():
    vertices, faces = cube(0.5)
    open_faces = faces[2:]
    assert is_watertight(faces) and not is_watertight(open_faces)
    metric = ShapeSurface(n_points=2000, iou_points=2000)
    row = metric.evaluate_one(ShapePrediction("mesh", vertices, faces), vertices, open_faces,
                              "open")
    assert math.isnan(row["iou"]) and row["gt_watertight"] == 0.0
    assert np.isfinite(row["chamfer_l1"])


def test_point_cloud_prediction_has_no_iou_or_normals():
    metric = ShapeSurface(n_points=5000, iou_points=1000)
    vertices, faces = sphere(0.3)
    points, _ = sample_surface(vertices, faces, 5000, np.random.default_rng(1))
    row = metric.evaluate_one(ShapePrediction("points", points=points), vertices, faces, "pc")
    assert math.isnan(row["iou"]) and math.isnan(row["normal_consistency"])
    assert row["chamfer_l1"] < 0.01


def test_sample_surface_is_area_weighted_and_on_the_surface():
    vertices, faces = cube(1.0)
    points, normals = sample_surface(vertices, faces, 60_000, np.random.default_rng(0))
    assert np.allclose(np.abs(points).max(axis=1), 0.5)
    # each of the 6 faces gets 1/6 of the points
    top = np.isclose(points[:, 2], 0.5).mean()
    assert top == pytest.approx(1 / 6, abs=0.01)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.random((500, 3)), rng.random((400, 3))
    dist, index = nearest_neighbours(a, b)
    brute = np.linalg.norm(a[:, None] - b[None], axis=2)
    assert np.allclose(dist, brute.min(1))
    assert (index == brute.argmin(1)).all()
    ref, _ = cKDTree(b).query(a)
    assert np.allclose(dist, ref, atol=1e-12)
    both = nearest_both_ways(a, b)
    assert np.allclose(both[0], ref, atol=1e-12) and (both[1] == index).all()
    assert np.allclose(both[2], cKDTree(a).query(b)[0], atol=1e-12)
    chunked, chunked_index = chunked_cdist(a, b)
    assert np.allclose(chunked, ref, atol=1e-12) and (chunked_index == index).all()


def test_grid_to_mesh_and_grid_occupancy():
    grid = np.zeros((8, 8, 8), dtype=np.float32)
    grid[2:6, 2:6, 2:6] = 1.0
    bounds = np.array([[-0.5] * 3, [0.5] * 3])
    vertices, faces = grid_to_mesh(grid, bounds)
    assert is_watertight(faces)
    # the 0.5 isosurface lies halfway between occupied and empty cell centres: +-0.25
    assert np.allclose(vertices.min(0), -0.25) and np.allclose(vertices.max(0), 0.25)
    inside = grid_occupancy(grid, bounds, np.array([[0.0, 0, 0], [0.24, 0, 0], [0.26, 0, 0],
                                                    [0.9, 0, 0]]))
    assert inside.tolist() == [True, True, False, False]
    assert grid_to_mesh(np.zeros((4, 4, 4)), bounds)[1].shape == (0, 3)


def test_voxel_iou_by_hand():
    gt = np.zeros((4, 4, 4), dtype=bool)
    gt[:2] = True  # 32 cells
    pred = np.zeros((4, 4, 4), dtype=np.float32)
    pred[1:3] = 0.6  # 32 cells, 16 shared
    bounds = np.array([[-0.5] * 3, [0.5] * 3])
    metric = VoxelIoU(threshold=0.4)
    assert metric.evaluate_one(ShapePrediction("grid", grid=pred, bounds=bounds), gt,
                               bounds) == pytest.approx(16 / 48)
    assert VoxelIoU(threshold=0.7).evaluate_one(
        ShapePrediction("grid", grid=pred, bounds=bounds), gt, bounds) == 0.0
    assert math.isnan(metric.evaluate_one(ShapePrediction("points", points=np.zeros((3, 3))),
                                          gt, bounds))
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 0.0


def test_mesh_occupancy_and_uniform_points():
    vertices, faces = cube(0.5)
    probe = uniform_cube_points(20_000, 1.0, 0.1, seed=0)
    assert np.abs(probe).max() <= 0.55
    assert mesh_occupancy(vertices, faces, probe).mean() == pytest.approx(0.125 / 1.331,
                                                                          abs=0.01)


def test_bad_meshes_are_contract_errors():
    vertices, faces = cube(0.5)
    bad = vertices.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ContractError, match="NaN"):
        check_mesh(bad, faces)
    with pytest.raises(ContractError, match="index vertex 8"):
        check_mesh(vertices, np.array([[0, 1, 8]]))
    with pytest.raises(ContractError, match="no surface area"):
        ShapeSurface(n_points=10).evaluate_one(ShapePrediction("mesh", vertices, faces),
                                               vertices, np.array([[0, 0, 0]]), "degenerate")


def test_metric_state_class_and_instance_means():
    metric = VoxelIoU()
    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3])
    full = np.ones((2, 2, 2), dtype=np.float32)
    gt_full, gt_half = torch.ones(2, 2, 2, dtype=torch.bool), torch.zeros(2, 2, 2, dtype=torch.bool)
    gt_half[0] = True
    batch = {"voxels": [gt_full, gt_half, gt_half], "voxel_bounds": [bounds] * 3,
             "class_index": torch.tensor([0, 1, 1]), "class_name": ["a", "b", "b"]}
    preds = [ShapePrediction("grid", grid=full, bounds=bounds.numpy())] * 3
    per_sample = metric.update(preds, batch)
    assert per_sample["voxel_iou"].tolist() == [1.0, 0.5, 0.5]
    out = metric.compute()
    assert out["voxel_iou"] == pytest.approx(2 / 3)
    assert out["voxel_iou_class_mean"] == pytest.approx(0.75)
    assert metric.details()["voxel_iou_per_class"]["b"] == {"n": 2, "voxel_iou": 0.5}
