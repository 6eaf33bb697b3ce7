"""The procedural shapes of bench.synth.shapes: closed, centred, in the unit sphere."""

from __future__ import annotations

import numpy as np
import pytest

from bench.synth.shapes import SHAPE_CLASSES, WATERTIGHT, lathe, make_shape, random_rotation


def _signed_volume(mesh) -> float:
    v = np.asarray(mesh.vertices)
    t = np.asarray(mesh.triangles)
    return float(np.einsum("ij,ij->i", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])).sum() / 6)


@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_every_shape_is_normalised_and_closed(name: str) -> None:
    mesh = make_shape(name, np.random.default_rng(3))
    vertices = np.asarray(mesh.vertices)
    assert np.isclose(np.linalg.norm(vertices, axis=1).max(), 1.0)
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    assert np.allclose(centre, 0.0, atol=1e-9)
    if name in WATERTIGHT:
        assert mesh.is_watertight()
        assert _signed_volume(mesh) > 0  # faces oriented outwards


def test_shapes_are_deterministic_and_vary_with_the_generator() -> None:
    a = np.asarray(make_shape("torus", np.random.default_rng(1)).vertices)
    b = np.asarray(make_shape("torus", np.random.default_rng(1)).vertices)
    c = np.asarray(make_shape("torus", np.random.default_rng(2)).vertices)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_lathe_cylinder_volume_matches_the_prism() -> None:
    # a unit-radius, unit-height lathe with 32 sides is a 32-gon prism: area 16 sin(2pi/32)
    mesh = lathe(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0, 1.0]), resolution=32)
    assert mesh.is_watertight()
    assert np.isclose(_signed_volume(mesh), 16 * np.sin(2 * np.pi / 32))


def test_unknown_class_and_rotation() -> None:
    with pytest.raises(ValueError, match="unknown shape class 'blob'"):
        make_shape("blob", np.random.default_rng(0))
    rotation = random_rotation(np.random.default_rng(0))
    assert np.allclose(rotation @ rotation.T, np.eye(3))
    assert np.isclose(np.linalg.det(rotation), 1.0)
    assert len(SHAPE_CLASSES) >= 10
