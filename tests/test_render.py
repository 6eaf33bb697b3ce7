"""The scene renderer: exact depth, masks, poses and camera conventions on simple scenes."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from bench.geometry.cameras import (
    Camera,
    back_project,
    intrinsics,
    look_at,
    orbit_path,
    pose_matrix,
    project,
)
from bench.geometry.render import Scene, SceneObject
from bench.geometry.rotations import random_rotation, rotation_matrix

K = intrinsics(100.0, 100.0, 31.5, 23.5)


def plane_scene(distance: float) -> tuple[Scene, Camera]:
    """A 4 m square facing the camera at ``distance`` metres along +z."""
    plane = o3d.geometry.TriangleMesh.create_box(4.0, 4.0, 0.01)
    plane.translate((-2.0, -2.0, 0.0))
    scene = Scene(background=(0.0, 0.0, 0.0))
    scene.add(SceneObject(plane, pose_matrix(np.eye(3), (0.0, 0.0, distance)), (1.0, 1.0, 1.0)))
    return scene, Camera(K, 64, 48)


def test_fronto_parallel_plane_has_constant_z_depth() -> None:
    scene, camera = plane_scene(2.5)
    frame = scene.render(camera)
    assert frame.valid.all()
    np.testing.assert_allclose(frame.depth, 2.5, atol=1e-5)
    assert (frame.instance == 1).all()
    assert frame.rgb.shape == (48, 64, 3) and frame.rgb.dtype == np.uint8


def test_sphere_depth_mask_and_pose() -> None:
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.5, resolution=60)
    scene = Scene()
    centre = np.array([0.3, -0.2, 4.0])
    object_id = scene.add(SceneObject(sphere, pose_matrix(np.eye(3), centre)))
    frame = scene.render(Camera(K, 64, 48))
    u, v = project(centre[None], K)[0]
    assert (u, v) == pytest.approx((31.5 + 100 * 0.3 / 4.0, 23.5 - 100 * 0.2 / 4.0))
    # The ray through the sphere's projected centre hits it near depth 4 - 0.5.
    assert frame.depth[round(v), round(u)] == pytest.approx(3.5, abs=0.01)
    assert frame.masks[object_id].sum() == (frame.instance == 1).sum() > 0
    rotation, translation = frame.poses[object_id]
    np.testing.assert_allclose(rotation, np.eye(3))
    np.testing.assert_allclose(translation, centre)
    points = back_project(frame.depth, K, frame.masks[object_id])
    radii = np.linalg.norm(points - centre, axis=1)
    np.testing.assert_allclose(radii, 0.5, atol=0.01)


def test_look_at_puts_target_on_principal_point() -> None:
    rotation, translation = look_at((2.0, 1.0, 1.5), (0.1, 0.2, 0.3))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    in_camera = rotation @ np.array([0.1, 0.2, 0.3]) + translation
    assert in_camera[:2] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert in_camera[2] > 0
    # Image y points away from the world's up (z): a point above the target has v < cy.
    above = rotation @ np.array([0.1, 0.2, 1.3]) + translation
    assert project(above[None], K)[0, 1] < K[1, 2]


def test_camera_pose_moves_object_in_camera_frame() -> None:
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.2)
    scene = Scene()
    scene.add(SceneObject(sphere, pose_matrix(rotation_matrix((0, 0, 1), 30), (1.0, 2.0, 0.5))))
    poses = orbit_path((1.0, 2.0, 0.5), radius=3.0, height=1.0, frames=4)
    for rotation, translation in poses:
        frame = scene.render(Camera(K, 64, 48, rotation, translation))
        object_rotation, object_translation = frame.poses[1]
        assert np.linalg.norm(object_translation) == pytest.approx(np.hypot(3.0, 1.0))
        np.testing.assert_allclose(object_rotation, rotation @ rotation_matrix((0, 0, 1), 30))
        assert frame.masks[1].any()


def test_random_rotation_is_a_rotation() -> None:
    rotation = random_rotation(np.random.default_rng(3))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_rendering_is_deterministic_and_noise_is_seeded() -> None:
    scene, camera = plane_scene(1.0)
    first = scene.render(camera, noise_std=0.05, seed=7).rgb
    again = scene.render(camera, noise_std=0.05, seed=7).rgb
    other = scene.render(camera, noise_std=0.05, seed=8).rgb
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


def test_empty_mesh_is_refused() -> None:
    with pytest.raises(ValueError, match="no triangles"):
        Scene().add(SceneObject(o3d.geometry.TriangleMesh()))
