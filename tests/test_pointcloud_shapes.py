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


def test_embedded_writer_uses_the_modelnet_layout(tmp_path, monkeypatch) -> None:
    from bench.adapters.modelnet import ModelNetDataset
    from bench.formats.off import read_off
    from bench.synth import synthetic_shapes

    monkeypatch.setattr(synthetic_shapes, "SPLIT_SIZES", {"train": 1, "test": 2})
    synthetic_shapes.build_synthetic_shapes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == SHAPE_CLASSES
    assert sorted(p.name for p in (tmp_path / "torus" / "test").iterdir()) == [
        "torus_0002.off", "torus_0003.off"]  # numbered across train, then test
    vertices, triangles = read_off(tmp_path / "torus" / "test" / "torus_0002.off")
    radius = np.linalg.norm(vertices - vertices.mean(axis=0), axis=1).max()
    assert 0.05 < radius < 0.8 and len(triangles) > 100
    dataset = ModelNetDataset(tmp_path, "test", num_points=256, num_classes=len(SHAPE_CLASSES))
    assert len(dataset) == 2 * len(SHAPE_CLASSES)
    assert dataset[0]["points"].shape == (256, 3)
    again = tmp_path / "again"
    again.mkdir()
    synthetic_shapes.build_synthetic_shapes(again)
    assert (again / "box" / "test" / "box_0002.off").read_bytes() == (
        tmp_path / "box" / "test" / "box_0002.off").read_bytes()
