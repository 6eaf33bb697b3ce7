"""Deterministic CPU scene renderer on Open3D's ``RaycastingScene`` (no display, no network).

Conventions (DESIGN.md): metres; OpenCV camera frame (x right, y down, z forward); pixel
centres at integer coordinates, so pixel (u, v) looks along K^-1 [u, v, 1]. A camera pose
is world->camera: ``x_cam = R @ x_world + t``. An object pose is object->world (4x4).

Usage::

    scene = Scene(background=photo)                      # or a colour
    scene.add(SceneObject(mesh, pose=np.eye(4), color=(0.8, 0.2, 0.2), texture=img))
    frame = scene.render(Camera(K, 640, 480, *look_at(eye, target)))
    frame.rgb, frame.depth, frame.valid, frame.instance, frame.masks, frame.poses

Per frame the renderer gives an RGB image (Lambertian + ambient shading, optional
triplanar texture from an image, optional sensor noise), metric z-depth, the valid mask,
the instance map and one mask per object, each object's pose in the camera frame, and
the camera itself. ``bench.geometry.cameras.back_project`` turns depth into a point cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bench.geometry.cameras import Camera

if TYPE_CHECKING:
    import open3d as o3d


@dataclass
class SceneObject:
    """A mesh (object frame, metres) placed in the world by ``pose`` (object->world 4x4).

    ``color`` is the RGB albedo in [0,1]; ``texture`` (HxWx3 uint8 or float in [0,1]) is
    multiplied in by triplanar projection in the object frame, ``texture_scale`` texture
    repeats per metre.
    """

    mesh: o3d.geometry.TriangleMesh
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)
    texture: np.ndarray | None = None
    texture_scale: float = 4.0
    name: str = ""


@dataclass
class Frame:
    """One rendered view. Arrays are [H,W] (rgb [H,W,3] uint8); depth in metres, 0 = none."""

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    instance: np.ndarray
    normals: np.ndarray
    camera: Camera
    poses: dict[int, tuple[np.ndarray, np.ndarray]]

    @property
    def masks(self) -> dict[int, np.ndarray]:
        """Visible mask per object id (1-based, as in ``instance``)."""
        return {i: self.instance == i for i in self.poses}


class Scene:
    """Objects, a background and a light; ``render(camera)`` rays every pixel."""

    def __init__(
        self,
        background: np.ndarray | Sequence[float] = (0.5, 0.5, 0.5),
        light_direction: Sequence[float] = (-0.3, -0.5, -1.0),
        ambient: float = 0.35,
    ) -> None:
        self.objects: list[SceneObject] = []
        self.background = background
        light = -np.asarray(light_direction, dtype=np.float64)
        self.light = light / np.linalg.norm(light)
        self.ambient = ambient
        self._raycaster: o3d.t.geometry.RaycastingScene | None = None
        self._world_meshes: list[o3d.geometry.TriangleMesh] = []

    def add(self, obj: SceneObject) -> int:
        """Add an object; returns its 1-based id (its value in ``Frame.instance``)."""
        if len(obj.mesh.triangles) == 0:
            raise ValueError(f"object {obj.name or len(self.objects) + 1} has no triangles")
        self.objects.append(obj)
        self._raycaster = None
        return len(self.objects)

    def _build(self) -> o3d.t.geometry.RaycastingScene:
        import open3d as o3d

        if self._raycaster is None:
            self._raycaster = o3d.t.geometry.RaycastingScene()
            self._world_meshes = []
            for obj in self.objects:
                mesh = o3d.geometry.TriangleMesh(obj.mesh)
                mesh.transform(obj.pose)
                mesh.compute_vertex_normals()
                self._world_meshes.append(mesh)
                self._raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
        return self._raycaster

    def render(
        self, camera: Camera, noise_std: float = 0.0, seed: int | None = None
    ) -> Frame:
        """Render ``camera``'s view. ``noise_std``: Gaussian RGB noise (0..1 units)."""
        import open3d as o3d

        raycaster = self._build()
        # Open3D casts pixel (u, v) through (u + 0.5, v + 0.5); shifting the principal point
        # by half a pixel gives OpenCV's convention (pixel centres at integer coordinates).
        k_open3d = camera.K.astype(np.float64).copy()
        k_open3d[:2, 2] += 0.5
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            o3d.core.Tensor(k_open3d, dtype=o3d.core.Dtype.Float64),
            o3d.core.Tensor(camera.extrinsic, dtype=o3d.core.Dtype.Float64),
            camera.width, camera.height,
        )
        hits = raycaster.cast_rays(rays)
        t_hit = hits["t_hit"].numpy()
        geometry = hits["geometry_ids"].numpy().astype(np.int64)
        primitive = hits["primitive_ids"].numpy().astype(np.int64)
        uvs = hits["primitive_uvs"].numpy()
        ray_array = rays.numpy()
        valid = np.isfinite(t_hit)
        points = ray_array[..., :3] + ray_array[..., 3:] * np.where(valid, t_hit, 0)[..., None]
        cam_points = points @ camera.R.T + camera.t
        depth = np.where(valid, cam_points[..., 2], 0.0).astype(np.float32)
        instance = np.where(valid, geometry + 1, 0).astype(np.int32)

        shape = (camera.height, camera.width)
        normals = np.zeros((*shape, 3), dtype=np.float32)
        albedo = np.zeros((*shape, 3), dtype=np.float32)
        for index, (obj, mesh) in enumerate(zip(self.objects, self._world_meshes, strict=True)):
            sel = valid & (geometry == index)
            if not sel.any():
                continue
            triangles = np.asarray(mesh.triangles)[primitive[sel]]
            vertex_normals = np.asarray(mesh.vertex_normals)
            u, v = uvs[sel][:, 0:1], uvs[sel][:, 1:2]
            normal = ((1 - u - v) * vertex_normals[triangles[:, 0]]
                      + u * vertex_normals[triangles[:, 1]] + v * vertex_normals[triangles[:, 2]])
            normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
            normals[sel] = normal
            colour = np.broadcast_to(np.asarray(obj.color, dtype=np.float32), normal.shape)
            if obj.texture is not None:
                local = (points[sel] - obj.pose[:3, 3]) @ obj.pose[:3, :3]
                local_normal = normal @ obj.pose[:3, :3]
                colour = colour * _triplanar(obj.texture, local * obj.texture_scale, local_normal)
            albedo[sel] = colour

        view = ray_array[..., 3:] / np.linalg.norm(ray_array[..., 3:], axis=-1, keepdims=True)
        facing = np.where((normals * view).sum(-1, keepdims=True) > 0, -normals, normals)
        diffuse = np.clip((facing * self.light).sum(-1, keepdims=True), 0.0, 1.0)
        shaded = albedo * (self.ambient + (1 - self.ambient) * diffuse)
        rgb = np.where(valid[..., None], shaded, self._background(shape))
        if noise_std > 0:
            rng = np.random.default_rng(seed)
            rgb = rgb + rng.normal(0.0, noise_std, rgb.shape)
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)

        poses = {}
        for index, obj in enumerate(self.objects, start=1):
            rotation = camera.R @ obj.pose[:3, :3]
            translation = camera.R @ obj.pose[:3, 3] + camera.t
            poses[index] = (rotation, translation)
        return Frame(rgb, depth, valid, instance, normals, camera, poses)

    def _background(self, shape: tuple[int, int]) -> np.ndarray:
        background = np.asarray(self.background)
        if background.ndim == 1:
            return np.broadcast_to(background.astype(np.float32), (*shape, 3))
        import cv2

        image = background.astype(np.float32)
        if image.max() > 1.0:
            image = image / 255.0
        return cv2.resize(image[..., :3], (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _triplanar(texture: np.ndarray, coords: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Sample ``texture`` at object-frame ``coords`` [N,3] projected along the normal's axis."""
    image = texture.astype(np.float32)
    if image.max() > 1.0:
        image = image / 255.0
    height, width = image.shape[:2]
    axis = np.abs(normals).argmax(axis=1)
    plane = np.where(axis[:, None] == 0, coords[:, [1, 2]],
                     np.where(axis[:, None] == 1, coords[:, [0, 2]], coords[:, [0, 1]]))
    cols = (np.mod(plane[:, 0], 1.0) * (width - 1)).astype(np.int64)
    rows = (np.mod(plane[:, 1], 1.0) * (height - 1)).astype(np.int64)
    return image[rows, cols, :3]
