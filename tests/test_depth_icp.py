"""depth-icp's registration in numpy: exact on known motions, and the same bits on every
run (Open3D's multi-threaded RANSAC and ICP were not, which made `make demo` dirty)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from baselines.pose import (
    _squared_residuals,
    feature_ransac,
    point_to_plane_icp,
    rigid_transforms,
)


def motion() -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    transform[:3, 3] = [0.1, -0.05, 0.3]
    return transform


def test_kabsch_recovers_a_known_motion_and_never_a_reflection() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2, 5, 3))
    expected = motion()
    moved = points @ expected[:3, :3].T + expected[:3, 3]
    np.testing.assert_allclose(rigid_transforms(points, moved), [expected, expected], atol=1e-12)
    mirrored = points * np.array([1.0, 1.0, -1.0])
    rotation = rigid_transforms(points, mirrored)[:, :3, :3]
    np.testing.assert_allclose(np.linalg.det(rotation), [1.0, 1.0])


def test_squared_residuals_of_many_hypotheses_are_the_moved_points_distances() -> None:
    rng = np.random.default_rng(2)
    source, target = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    transforms = rigid_transforms(rng.normal(size=(500, 3, 3)), rng.normal(size=(500, 3, 3)))
    moved = np.einsum("kij,pj->kpi", transforms[:, :3, :3], source) + transforms[:, None, :3, 3]
    expected = np.linalg.norm(moved - target, axis=2) ** 2
    np.testing.assert_allclose(_squared_residuals(transforms, source, target), expected,
                               rtol=1e-13, atol=0)


def test_ransac_then_icp_register_a_cloud_the_same_way_every_time() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(-0.05, 0.05, size=(300, 3))
    features = rng.normal(size=(300, 8))  # distinctive: every point matches itself
    expected = motion()
    target = source @ expected[:3, :3].T + expected[:3, 3]
    coarse = feature_ransac(source, target, features, features, 0.002,
                            np.random.default_rng(0), iterations=500)
    np.testing.assert_allclose(coarse, expected, atol=1e-9)
    again = feature_ransac(source, target, features, features, 0.002,
                           np.random.default_rng(0), iterations=500)
    assert np.array_equal(coarse, again)
    # Point-to-plane ICP from a nearby start on a plane-rich target: a box's faces.
    box = np.concatenate([np.c_[rng.uniform(-1, 1, (400, 2)), np.full(400, s)][:, np.roll(
        [0, 1, 2], axis)] for axis in range(3) for s in (-1.0, 1.0)]) * 0.05
    normals = np.zeros_like(box)
    for index in range(3):
        on_face = np.isclose(np.abs(box[:, index]), 0.05)
        normals[on_face, index] = np.sign(box[on_face, index])
    start = np.eye(4)
    start[:3, 3] = [0.004, -0.003, 0.002]
    found = point_to_plane_icp(box, box, normals, 0.02, start)
    np.testing.assert_allclose(found, np.eye(4), atol=1e-6)
    assert np.array_equal(found, point_to_plane_icp(box, box, normals, 0.02, start))
