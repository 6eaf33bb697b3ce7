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

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bench.geometry.cameras import Camera
from bench.geometry.threads import core_pool

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
    """Objects, a background and a light; ``render(camera)`` rays every pixel.

    Only the pixels a ray hits are shaded, in blocks of ``_BLOCK`` pixels spread over one
    thread per core (the outputs do not depend on the blocks); a camera's rays are made once
    and reused (``_camera_rays``), and each object's per-corner normals and texture are
    prepared once.
    """

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
        self._corner_normals = np.empty((9, 0))
        self._first_triangle = np.zeros(1, dtype=np.int64)
        self._colours = np.empty((3, 0), dtype=np.float32)
        self._textures: _Textures | None = None
        self._backgrounds: tuple[object, dict] = (None, {})

    def add(self, obj: SceneObject) -> int:
        """Add an object; returns its 1-based id (its value in ``Frame.instance``)."""
        if len(obj.mesh.triangles) == 0:
            raise ValueError(f"object {obj.name or len(self.objects) + 1} has no triangles")
        self.objects.append(obj)
        self._raycaster = None
        return len(self.objects)

    def _build(self) -> o3d.t.geometry.RaycastingScene:
        """The ray-casting scene (world-frame meshes), the world normals of every triangle's
        three corners ([9,T], all objects' triangles in turn) and each object's texture."""
        import open3d as o3d

        if self._raycaster is None:
            self._raycaster = o3d.t.geometry.RaycastingScene()
            corner_normals = [np.empty((0, 9))]
            for obj in self.objects:
                mesh = o3d.geometry.TriangleMesh(obj.mesh)
                mesh.transform(obj.pose)
                mesh.compute_vertex_normals()
                corner_normals.append(np.asarray(mesh.vertex_normals)[
                    np.asarray(mesh.triangles)].reshape(-1, 9))
                self._raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
            self._corner_normals = np.ascontiguousarray(np.concatenate(corner_normals).T)
            self._first_triangle = np.cumsum([len(c) for c in corner_normals])
            self._colours = np.array([obj.color for obj in self.objects],
                                     dtype=np.float32).reshape(-1, 3).T.copy()
            self._textures = _Textures.of(self.objects)
        return self._raycaster

    def render(
        self, camera: Camera, noise_std: float = 0.0, seed: int | None = None
    ) -> Frame:
        """Render ``camera``'s view. ``noise_std``: Gaussian RGB noise (0..1 units)."""
        raycaster = self._build()
        rays = _camera_rays(camera.K.astype(np.float64).tobytes(),
                            camera.extrinsic.astype(np.float64).tobytes(),
                            camera.width, camera.height)
        hits = {key: value.numpy() for key, value in raycaster.cast_rays(rays.tensor).items()}
        shape = (camera.height, camera.width)
        valid = np.isfinite(hits["t_hit"])
        hit = None if valid.all() else np.flatnonzero(valid)
        count = valid.size if hit is None else len(hit)
        if hit is None:  # every pixel is written below
            out = _Outputs(depth=np.empty(shape, dtype=np.float32),
                           instance=np.empty(shape, dtype=np.int32),
                           normals=np.empty((*shape, 3), dtype=np.float32),
                           rgb=np.empty((*shape, 3), np.float64 if noise_std > 0 else np.uint8))
        else:
            out = _Outputs(depth=np.zeros(shape, dtype=np.float32),
                           instance=np.zeros(shape, dtype=np.int32),
                           normals=np.zeros((*shape, 3), dtype=np.float32),
                           rgb=(np.array(self._background(shape), dtype=np.float64)
                                if noise_std > 0 else self._background_uint8(shape)))
        blocks = [slice(start, min(start + _BLOCK, count)) for start in range(0, count, _BLOCK)]
        pixels = blocks if hit is None else [hit[block] for block in blocks]
        list(core_pool().map(lambda block: self._shade(camera, rays, hits, block, out), pixels))
        rgb = out.rgb
        if noise_std > 0:
            rng = np.random.default_rng(seed)
            rgb += rng.normal(0.0, noise_std, rgb.shape)
            rgb = _to_uint8(rgb)

        poses = {}
        for index, obj in enumerate(self.objects, start=1):
            rotation = camera.R @ obj.pose[:3, :3]
            translation = camera.R @ obj.pose[:3, 3] + camera.t
            poses[index] = (rotation, translation)
        return Frame(rgb, out.depth, valid.reshape(shape), out.instance, out.normals, camera,
                     poses)

    def _shade(self, camera: Camera, rays: _Rays, hits: dict[str, np.ndarray],
               pixels: slice | np.ndarray, out: _Outputs) -> None:
        """Depth, instance id, normal and colour of the hit ``pixels`` (a slice of the frame's
        raster order or their indices), written into ``out``. Vectors are component-major
        ([3,N]) so that numpy runs along contiguous rows."""

        def at(values: np.ndarray) -> np.ndarray:
            """``values`` [..., H*W] at ``pixels``."""
            if isinstance(pixels, slice):
                return values[..., pixels]
            return values.take(pixels, axis=-1)

        t_hit = at(hits["t_hit"].reshape(-1))
        geometry = at(hits["geometry_ids"].reshape(-1))
        points = at(rays.origins) + at(rays.directions) * t_hit
        z = _matmul_rows(np.ascontiguousarray(points.T), camera.R.T)[:, 2] + camera.t[2]
        out.depth.reshape(-1)[pixels] = z
        out.instance.reshape(-1)[pixels] = geometry + 1

        # Smooth normal: the hit's barycentric blend of its triangle's corner normals.
        uvs = at(hits["primitive_uvs"].reshape(-1, 2).T)
        u, v = uvs.astype(np.float64)
        first = (1 - uvs[0] - uvs[1]).astype(np.float64)
        triangle = self._first_triangle.take(geometry) + at(hits["primitive_ids"].reshape(-1))
        corners = self._corner_normals.take(triangle, axis=1)
        normal = first * corners[0:3]
        normal += u * corners[3:6]
        normal += v * corners[6:9]
        normal /= _norm_rows(normal) + 1e-12
        normal32 = normal.astype(np.float32)
        out.normals.reshape(-1, 3)[pixels] = normal32.T

        albedo = self._colours.take(geometry, axis=1)
        if self._textures is not None:
            albedo *= self._textures.colour(geometry, points, normal)

        # Lambertian shading with the normal turned towards the camera. Turning it negates
        # the light's dot product exactly, so the sign is flipped after the sum.
        towards_light = _dot_rows(normal32, self.light)
        facing_away = _dot_rows(normal32, at(rays.view)) > 0
        np.negative(towards_light, out=towards_light, where=facing_away)
        np.clip(towards_light, 0.0, 1.0, out=towards_light)
        towards_light *= 1 - self.ambient
        towards_light += self.ambient
        shaded = albedo * towards_light
        if out.rgb.dtype == np.uint8:
            out.rgb.reshape(-1, 3)[pixels] = _to_uint8(shaded).T
        else:
            out.rgb.reshape(-1, 3)[pixels] = shaded.T

    def _background_uint8(self, shape: tuple[int, int]) -> np.ndarray:
        """A writable uint8 copy of the background [H,W,3]."""
        return self._cached_background(shape, "uint8").copy()

    def _background(self, shape: tuple[int, int]) -> np.ndarray:
        """The background as float [H,W,3] in [0,1] (a colour broadcast, or the image resized)."""
        return self._cached_background(shape, "float")

    def _cached_background(self, shape: tuple[int, int], kind: str) -> np.ndarray:
        """The background at ``shape`` as "float" or "uint8", made once per background
        object and size (``self.background`` may be replaced between frames)."""
        source, images = self._backgrounds
        if source is not self.background:
            images = {}
            self._backgrounds = (self.background, images)
        if (shape, kind) not in images:
            background = np.asarray(self.background)
            if kind == "uint8":
                image = _to_uint8(self._background(shape).astype(np.float64))
            elif background.ndim == 1:
                image = np.broadcast_to(background.astype(np.float32), (*shape, 3))
            else:
                import cv2

                image = background.astype(np.float32)
                if image.max() > 1.0:
                    image = image / 255.0
                image = cv2.resize(image[..., :3], (shape[1], shape[0]),
                                   interpolation=cv2.INTER_AREA)
            images[shape, kind] = image
        return images[shape, kind]


# Hit pixels shaded together (by one thread): each work array of a block fits in the cache.
_BLOCK = 16384


@dataclass(frozen=True)
class _Outputs:
    """A frame's arrays, written block by block: depth, instance [H,W]; normals [H,W,3];
    rgb [H,W,3] as uint8, or as float64 when noise is added to the whole frame after."""

    depth: np.ndarray
    instance: np.ndarray
    normals: np.ndarray
    rgb: np.ndarray


@dataclass(frozen=True)
class _Rays:
    """A camera's rays: the Open3D tensor [H,W,6], its origins and directions and the unit
    view directions, each [3,H*W] float32."""

    tensor: o3d.core.Tensor
    origins: np.ndarray
    directions: np.ndarray
    view: np.ndarray


@functools.lru_cache(maxsize=2)  # the last cameras: ~19 MB each at 640x480
def _camera_rays(k_bytes: bytes, extrinsic_bytes: bytes, width: int, height: int) -> _Rays:
    """The rays of the camera with K and world->camera 4x4 given as float64 bytes."""
    import open3d as o3d

    # Open3D casts pixel (u, v) through (u + 0.5, v + 0.5); shifting the principal point
    # by half a pixel gives OpenCV's convention (pixel centres at integer coordinates).
    k_open3d = np.frombuffer(k_bytes, dtype=np.float64).reshape(3, 3).copy()
    k_open3d[:2, 2] += 0.5
    extrinsic = np.frombuffer(extrinsic_bytes, dtype=np.float64).reshape(4, 4)
    tensor = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        o3d.core.Tensor(k_open3d, dtype=o3d.core.Dtype.Float64),
        o3d.core.Tensor(extrinsic, dtype=o3d.core.Dtype.Float64), width, height)
    rows = tensor.numpy().reshape(-1, 6)
    origins = np.ascontiguousarray(rows[:, :3].T)
    directions = np.ascontiguousarray(rows[:, 3:].T)
    view = directions / np.sqrt(_dot_rows(directions, directions))
    for array in (origins, directions, view):
        array.flags.writeable = False
    return _Rays(tensor, origins, directions, view)


def _dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot product of [3,N] vectors (``b`` may be [3]), summed x, y, z in turn
    like numpy's ``sum`` over a last axis of three, so the bits are the same."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm_rows(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norm of each column of [3,N] (``np.linalg.norm``'s bits)."""
    return np.sqrt(_dot_rows(vectors, vectors))


# Rows per block in ``_matmul_rows``: small enough that OpenBLAS keeps a 3-column product on
# one thread (its threads only add overhead there, and a lot of it on a loaded machine).
_MATMUL_BLOCK = 16384


def _matmul_rows(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points [N,3] @ matrix [3,3]`` in float64, block by block (same values as one call)."""
    out = np.empty((len(points), matrix.shape[1]))
    for start in range(0, len(points), _MATMUL_BLOCK):
        np.matmul(points[start:start + _MATMUL_BLOCK], matrix,
                  out=out[start:start + _MATMUL_BLOCK])
    return out


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] (clipped) -> uint8, rounded half up; ``rgb`` is overwritten."""
    np.clip(rgb, 0, 1, out=rgb)
    rgb *= 255
    rgb += 0.5
    return rgb.astype(np.uint8)


@dataclass(frozen=True)
class _Textures:
    """The textures of a scene's objects, as tables indexed by object id: every texture in
    one float32 atlas [P,3] (rows ``offset`` .. ``offset + width * height``; an object
    without a texture has one white texel, so its colour is multiplied by exactly 1), their
    sizes, the objects' texture scales (repeats per metre), translations and the rotations
    of the textured objects that are rotated."""

    atlas: np.ndarray
    offset: np.ndarray
    width: np.ndarray
    height: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    rotation: dict[int, np.ndarray]

    @classmethod
    def of(cls, objects: list[SceneObject]) -> _Textures | None:
        """The tables of ``objects``' textures; None when none has a texture."""
        if all(obj.texture is None for obj in objects):
            return None
        images = [np.ones((1, 1, 3), dtype=np.float32) if obj.texture is None
                  else _texture_image(obj.texture) for obj in objects]
        sizes = np.array([image.shape[0] * image.shape[1] for image in images])
        return cls(
            atlas=np.concatenate([image.reshape(-1, 3) for image in images]),
            offset=np.cumsum(sizes) - sizes,
            width=np.array([image.shape[1] for image in images]),
            height=np.array([image.shape[0] for image in images]),
            scale=np.array([float(obj.texture_scale) for obj in objects]),
            translation=np.array([obj.pose[:3, 3] for obj in objects], dtype=np.float64).T,
            rotation={index: obj.pose[:3, :3] for index, obj in enumerate(objects)
                      if obj.texture is not None and not np.array_equal(obj.pose[:3, :3],
                                                                        np.eye(3))})

    def colour(self, geometry: np.ndarray, points: np.ndarray, normal: np.ndarray
               ) -> np.ndarray:
        """The triplanar texture colour [3,N] (float32) at hits on objects ``geometry`` [N],
        world ``points`` and unit ``normal`` [3,N]; 1 on objects without a texture (their
        single texel is read whatever the projection, so they are not rotated)."""
        local = points - self.translation.take(geometry, axis=1)
        local_normal = normal.copy() if self.rotation else normal
        # Rotated objects only: a product with the identity is exact, so it is skipped.
        for index, rotation in self.rotation.items():
            members = np.flatnonzero(geometry == index)
            if len(members):
                for vectors in (local, local_normal):
                    rotated = _matmul_rows(np.ascontiguousarray(vectors.take(members, axis=1).T),
                                           rotation)
                    for axis in range(3):
                        vectors[axis, members] = rotated[:, axis]
        local *= self.scale.take(geometry)
        # Triplanar projection along the normal's dominant axis (the first on ties):
        # x -> (y, z), y -> (x, z), z -> (x, y). ``x - floor(x)`` rounds exactly like
        # ``np.mod(x, 1.0)`` (both round x - trunc(x) (+ 1) once) and is several times faster.
        size = np.abs(local_normal)
        along_x = (size[0] >= size[1]) & (size[0] >= size[2])
        along_z = ~along_x & (size[2] > size[1])
        width = self.width.take(geometry)
        cols = _texel(np.where(along_x, local[1], local[0]), width)
        rows = _texel(np.where(along_z, local[1], local[2]), self.height.take(geometry))
        index = self.offset.take(geometry) + rows * width + cols
        return self.atlas.take(index, axis=0).T


def _texel(coordinate: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Texel index [N] (int64) of texture coordinates [N] (repeats) along a side of
    ``extent`` [N] texels: the fraction scaled to ``extent - 1`` and truncated;
    ``coordinate`` is overwritten."""
    coordinate -= np.floor(coordinate)
    coordinate *= extent - 1
    return coordinate.astype(np.int64)


def _texture_image(texture: np.ndarray) -> np.ndarray:
    """A texture as float32 [H,W,3] in [0,1] (uint8 or float input)."""
    image = texture.astype(np.float32)
    if image.max() > 1.0:
        image = image / 255.0
    return np.ascontiguousarray(image[..., :3])
