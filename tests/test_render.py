"""The scene renderer: exact depth, masks, poses and camera conventions on simple scenes."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from bench.geometry import render
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


def reference_render(scene: Scene, camera: Camera, noise_std: float, seed: int) -> dict:
    """The renderer's formulas written out over the whole frame (float64 shading), as the
    renderer computed them before it shaded hit pixels only: the outputs must be identical."""
    import cv2

    raycaster = o3d.t.geometry.RaycastingScene()
    meshes = []
    for obj in scene.objects:
        mesh = o3d.geometry.TriangleMesh(obj.mesh).transform(obj.pose)
        meshes.append(mesh.compute_vertex_normals())
        raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    k = camera.K.copy()
    k[:2, 2] += 0.5
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        o3d.core.Tensor(k), o3d.core.Tensor(camera.extrinsic), camera.width, camera.height)
    hits = raycaster.cast_rays(rays)
    t_hit, geometry = hits["t_hit"].numpy(), hits["geometry_ids"].numpy().astype(np.int64)
    primitive, uvs, ray = hits["primitive_ids"].numpy(), hits["primitive_uvs"].numpy(), rays.numpy()
    valid = np.isfinite(t_hit)
    points = ray[..., :3] + ray[..., 3:] * np.where(valid, t_hit, 0)[..., None]
    depth = np.where(valid, (points @ camera.R.T + camera.t)[..., 2], 0.0).astype(np.float32)
    normals = np.zeros((*valid.shape, 3), dtype=np.float32)
    albedo = np.zeros_like(normals)
    for index, (obj, mesh) in enumerate(zip(scene.objects, meshes, strict=True)):
        sel = valid & (geometry == index)
        corner = np.asarray(mesh.vertex_normals)[np.asarray(mesh.triangles)[primitive[sel]]]
        u, v = uvs[sel][:, 0:1], uvs[sel][:, 1:2]
        normal = (1 - u - v) * corner[:, 0] + u * corner[:, 1] + v * corner[:, 2]
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
        normals[sel] = normal
        colour = np.broadcast_to(np.asarray(obj.color, dtype=np.float32), normal.shape)
        if obj.texture is not None:
            image = obj.texture.astype(np.float32) / 255.0
            local = (points[sel] - obj.pose[:3, 3]) @ obj.pose[:3, :3] * obj.texture_scale
            axis = np.abs(normal @ obj.pose[:3, :3]).argmax(axis=1)[:, None]
            plane = np.where(axis == 0, local[:, [1, 2]],
                             np.where(axis == 1, local[:, [0, 2]], local[:, [0, 1]]))
            cols = (np.mod(plane[:, 0], 1.0) * (image.shape[1] - 1)).astype(np.int64)
            rows = (np.mod(plane[:, 1], 1.0) * (image.shape[0] - 1)).astype(np.int64)
            colour = colour * image[rows, cols]
        albedo[sel] = colour
    view = ray[..., 3:] / np.linalg.norm(ray[..., 3:], axis=-1, keepdims=True)
    facing = np.where((normals * view).sum(-1, keepdims=True) > 0, -normals, normals)
    diffuse = np.clip((facing * scene.light).sum(-1, keepdims=True), 0.0, 1.0)
    background = cv2.resize(scene.background.astype(np.float32) / 255.0,
                            (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    rgb = np.where(valid[..., None], albedo * (scene.ambient + (1 - scene.ambient) * diffuse),
                   background)
    if noise_std > 0:
        rgb = rgb + np.random.default_rng(seed).normal(0.0, noise_std, rgb.shape)
    rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    instance = np.where(valid, geometry + 1, 0).astype(np.int32)
    return {"rgb": rgb, "depth": depth, "valid": valid, "instance": instance,
            "normals": normals}


@pytest.mark.parametrize("block", [16384, 1000])
@pytest.mark.parametrize("noise_std", [0.0, 0.02])
def test_render_matches_full_frame_reference_bit_for_bit(
        noise_std: float, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Textured axis-aligned walls, a rotated textured box, an untextured sphere, an image
    background seen through a gap: every output equals the whole-frame formulas exactly,
    shaded in one block or in blocks of 1000 hit pixels spread over the thread pool."""
    monkeypatch.setattr(render, "_BLOCK", block)
    rng = np.random.default_rng(4)
    texture = (rng.random((37, 53, 3)) * 255).astype(np.uint8)
    scene = Scene(background=(rng.random((30, 40, 3)) * 255).astype(np.uint8))
    wall = o3d.geometry.TriangleMesh.create_box(4.0, 0.05, 2.0).translate((-2.0, 3.0, 0.0))
    floor = o3d.geometry.TriangleMesh.create_box(4.0, 3.0, 0.05).translate((-2.0, 0.0, -0.05))
    scene.add(SceneObject(wall, color=(0.9, 0.8, 0.7), texture=texture, texture_scale=0.7))
    scene.add(SceneObject(floor, color=(0.6, 0.7, 0.9), texture=texture, texture_scale=1.3))
    scene.add(SceneObject(o3d.geometry.TriangleMesh.create_box(0.5, 0.4, 0.6),
                          pose_matrix(rotation_matrix((0, 0, 1), 33), (0.3, 1.5, 0.0)),
                          color=(1.0, 0.5, 0.2), texture=texture, texture_scale=3.0))
    scene.add(SceneObject(o3d.geometry.TriangleMesh.create_sphere(0.3, resolution=12),
                          pose_matrix(np.eye(3), (-0.8, 1.2, 0.4)), color=(0.2, 0.9, 0.3)))
    for eye in ((0.0, -1.0, 1.2), (1.5, -0.5, 0.3)):
        camera = Camera(intrinsics(70.0, 70.0, 47.5, 35.5), 96, 72,
                        *look_at(eye, (0.0, 2.0, 0.6)))
        frame = scene.render(camera, noise_std=noise_std, seed=11)
        expected = reference_render(scene, camera, noise_std, seed=11)
        assert frame.valid.any() and not frame.valid.all()
        assert set(np.unique(frame.instance)) == {0, 1, 2, 3, 4}
        for name, value in expected.items():
            np.testing.assert_array_equal(getattr(frame, name), value, err_msg=name)


@pytest.mark.parametrize("noise_std", [0.0, 0.02])
def test_render_with_every_pixel_hit_matches_reference(noise_std: float) -> None:
    """A slanted textured wall filling the view (no background pixel): the outputs, which
    are then written without a zeroed or background-filled start, equal the reference."""
    rng = np.random.default_rng(6)
    texture = (rng.random((29, 41, 3)) * 255).astype(np.uint8)
    scene = Scene(background=(rng.random((30, 40, 3)) * 255).astype(np.uint8))
    wall = o3d.geometry.TriangleMesh.create_box(4.0, 4.0, 0.05).translate((-2.0, -2.0, 0.0))
    scene.add(SceneObject(wall, pose_matrix(rotation_matrix((0, 1, 0), 20), (0.0, 0.0, 1.5)),
                          color=(0.9, 0.6, 0.8), texture=texture, texture_scale=2.0))
    camera = Camera(K, 64, 48)
    frame = scene.render(camera, noise_std=noise_std, seed=3)
    assert frame.valid.all()
    for name, value in reference_render(scene, camera, noise_std, seed=3).items():
        np.testing.assert_array_equal(getattr(frame, name), value, err_msg=name)



def _render_in_child(distance: float, results) -> None:
    scene, camera = plane_scene(distance)
    results.put(float(scene.render(camera).depth.mean()))


def test_a_forked_process_renders_after_the_parent_did() -> None:
    """The shading thread pool is per process: a child forked after the parent rendered
    (as a data build's process pool is) starts its own instead of waiting forever on the
    parent's threads, which it does not have."""
    import multiprocessing
    import queue

    context = multiprocessing.get_context("fork")
    results: queue.Queue = context.Queue()
    _render_in_child(2.0, results)  # the parent's pool exists now
    assert results.get(timeout=5) == pytest.approx(2.0, abs=1e-5)
    child = context.Process(target=_render_in_child, args=(2.5, results))
    child.start()
    child.join(120)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child never finished its frame"
    assert results.get(timeout=5) == pytest.approx(2.5, abs=1e-5)
