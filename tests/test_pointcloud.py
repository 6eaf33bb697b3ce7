"""Point clouds: OFF/HDF5/point-file reading, sampling, metrics, voting, baselines end to end."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bench.adapters.modelnet import (
    ModelNetDataset,
    normalise_unit_sphere,
    resample_points,
    sample_mesh,
)
from bench.errors import ContractError, DataError
from bench.families.pointcloud import PointCloudFamily, rotation_about_axis, with_votes
from bench.formats.off import read_off
from bench.formats.ply import read_point_cloud, write_point_cloud
from bench.metrics.pointcloud import (
    ClassAccuracy,
    OverallAccuracy,
    ShapeConfusion,
    overall_accuracy,
    per_class_accuracy,
)
from bench.synth.synthetic_shapes import write_off

SQUARE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
TETRA_V = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
TETRA_F = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


# ----------------------------------------------------------------------------- OFF files


def test_read_off_handles_glued_header_comments_and_polygons(tmp_path: Path) -> None:
    path = tmp_path / "quad.off"
    path.write_text("OFF4 1 0\n# a comment\n0 0 0\n1 0 0\n1 1 0\n\n0 1 0\n4 0 1 2 3 255 0 0\n")
    vertices, triangles = read_off(path)
    assert np.array_equal(vertices, SQUARE_V)
    assert triangles.tolist() == [[0, 1, 2], [0, 2, 3]]  # the quad fanned from vertex 0


def test_write_off_round_trips(tmp_path: Path) -> None:
    write_off(tmp_path / "t.off", TETRA_V, TETRA_F)
    vertices, triangles = read_off(tmp_path / "t.off")
    assert np.allclose(vertices, TETRA_V)
    assert np.array_equal(triangles, TETRA_F)


@pytest.mark.parametrize("text, message", [
    ("PLY\n", r"bad\.off:1: not an OFF file"),
    ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", r"bad\.off:4: bad vertex line"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", r"bad\.off:6: face index out of range"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n", r"bad\.off: truncated"),
    ("OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", r"bad\.off:4: vertex 1 has a NaN"),
    ("OFF\nthree 1 0\n", r"bad\.off:2: bad OFF counts line"),
])
def test_malformed_off_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_off(path)


# ----------------------------------------------------------------------------- sampling


def test_uniform_sampling_lies_on_the_mesh_and_is_seeded() -> None:
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    points, normals = sample_mesh(SQUARE_V, triangles, 500, "uniform", seed=3)
    assert points.shape == (500, 3)
    assert np.allclose(points[:, 2], 0.0) and (points[:, :2] >= 0).all()
    assert (points[:, :2] <= 1).all()
    assert np.allclose(np.abs(normals[:, 2]), 1.0)
    again, _ = sample_mesh(SQUARE_V, triangles, 500, "uniform", seed=3)
    other, _ = sample_mesh(SQUARE_V, triangles, 500, "uniform", seed=4)
    assert np.array_equal(points, again) and not np.array_equal(points, other)
    # area-weighted: each half of the square gets about half of the points
    assert abs((points[:, 0] > points[:, 1]).mean() - 0.5) < 0.08


def test_poisson_sampling_and_degenerate_meshes() -> None:
    points, _ = sample_mesh(TETRA_V, TETRA_F, 200, "poisson", seed=0)
    assert 0 < len(points) <= 200
    with pytest.raises(ValueError, match="no faces"):
        sample_mesh(TETRA_V, np.zeros((0, 3), dtype=int), 10)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)


def test_normalise_and_resample() -> None:
    points = np.array([[1.0, 0, 0], [3.0, 0, 0], [2.0, 2.0, 0]])
    normalised = normalise_unit_sphere(points)  # centroid (2, 2/3, 0), farthest |(0,4/3)|
    assert np.allclose(normalised.mean(axis=0), 0.0)
    assert np.isclose(np.linalg.norm(normalised, axis=1).max(), 1.0)
    assert np.allclose(normalised[2], [0.0, 1.0, 0.0])
    rng = np.random.default_rng(0)
    more = resample_points(np.zeros((3, 3)), 7, rng)  # fewer points than asked
    assert sorted(more[:3].tolist()) == [0, 1, 2] and len(more) == 7 and more.max() < 3
    fewer = resample_points(np.zeros((10, 3)), 4, rng)
    assert len(set(fewer.tolist())) == 4
    assert resample_points(np.zeros((10, 3)), 4, rng, keep_order=True).tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- adapter


def _off_set(root: Path) -> Path:
    for name, vertices in (("cube", np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T),
                           ("tetra", TETRA_V)):
        for split, count in (("train", 2), ("test", 2)):
            folder = root / name / split
            folder.mkdir(parents=True)
            for index in range(count):
                if name == "tetra":
                    write_off(folder / f"{name}_{index + 1:04d}.off", vertices * (index + 1),
                              TETRA_F)
                else:
                    cube_faces = _cube_faces()
                    write_off(folder / f"{name}_{index + 1:04d}.off", vertices.astype(float),
                              cube_faces)
    return root


def _cube_faces() -> np.ndarray:
    import open3d as o3d

    return np.asarray(o3d.geometry.TriangleMesh.create_box().triangles)


def test_off_layout_reads_classes_points_and_fingerprint(tmp_path: Path) -> None:
    root = _off_set(tmp_path / "ModelNet2")
    dataset = ModelNetDataset(root, "test", num_points=64, normals=True, votes=3)
    assert dataset.info.meta["class_names"] == ["cube", "tetra"]
    assert len(dataset) == 4 and dataset.info.meta["up_axis"] == "z"
    sample = dataset[2]
    assert sample["id"] == "tetra/tetra_0001" and sample["label"] == 1
    assert sample["points"].shape == (64, 3) and sample["normals"].shape == (64, 3)
    assert torch.isclose(sample["points"].norm(dim=1).max(), torch.tensor(1.0))
    assert sample["votes"] == 3 and sample["up_axis"] == 2
    assert torch.equal(dataset[2]["points"], sample["points"])  # seeded per shape
    other = ModelNetDataset(root, "test", num_points=64, seed=1)
    assert not torch.equal(other[2]["points"], sample["points"])
    assert dataset.info.fingerprint != ModelNetDataset(root, "train").info.fingerprint
    # the folder above ModelNet40/ or ModelNet10/ works too
    (tmp_path / "parent").mkdir()
    (tmp_path / "parent" / "ModelNet10").symlink_to(root)
    assert len(ModelNetDataset(tmp_path / "parent", "test")) == 4


def test_adapter_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ModelNetDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no ModelNet data for split 'test'"):
        ModelNetDataset(tmp_path / "empty")
    root = _off_set(tmp_path / "set")
    with pytest.raises(DataError, match="has 2 classes, the task expects 40"):
        ModelNetDataset(root, num_classes=40)
    with pytest.raises(DataError, match="sampling must be one of"):
        ModelNetDataset(root, sampling="grid")
    write_off(root / "cube" / "test" / "cube_0003.off", SQUARE_V, np.zeros((0, 3), dtype=int))
    dataset = ModelNetDataset(root)
    with pytest.raises(DataError, match=r"cube_0003\.off: cannot sample points: .*no faces"):
        dataset[2]


def test_point_cloud_files_in_the_modelnet_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    for suffix in (".ply", ".pcd", ".xyz"):
        write_point_cloud(tmp_path / f"c{suffix}", points)
        read, normals = read_point_cloud(tmp_path / f"c{suffix}")
        assert np.allclose(read, points, atol=1e-5) and normals is None
    write_point_cloud(tmp_path / "n.ply", points, normals=np.tile([0.0, 0.0, 1.0], (50, 1)))
    assert np.allclose(read_point_cloud(tmp_path / "n.ply")[1][:, 2], 1.0)
    (tmp_path / "nan.xyz").write_text("0 0 0\nnan 1 2\n")
    with pytest.raises(DataError, match=r"nan\.xyz: 1 points have NaN"):
        read_point_cloud(tmp_path / "nan.xyz")
    with pytest.raises(DataError, match="does not exist"):
        read_point_cloud(tmp_path / "missing.ply")
    root = tmp_path / "mine"
    for label in ("a", "b"):
        write_point_cloud(root / label / "test" / f"{label}1.xyz", points[:20])
    dataset = ModelNetDataset(root, "test", num_points=32)
    sample = dataset[1]
    assert sample["id"] == "b/b1" and sample["points"].shape == (32, 3)  # 20 points + 12 repeats


def _h5_set(root: Path, labels: list[int]) -> Path:
    root.mkdir(parents=True)
    data = np.arange(len(labels) * 8 * 3, dtype=np.float32).reshape(len(labels), 8, 3)
    with h5py.File(root / "ply_data_test0.h5", "w") as handle:
        handle["data"] = data
        handle["label"] = np.array(labels, dtype=np.uint8)[:, None]
        handle["normal"] = np.ones_like(data)
    (root / "shape_names.txt").write_text("airplane\nbathtub\n")
    return root


def test_hdf5_layout_takes_the_first_points(tmp_path: Path) -> None:
    root = _h5_set(tmp_path / "modelnet40_ply_hdf5_2048", [0, 1, 1])
    dataset = ModelNetDataset(tmp_path, "test", num_points=4, normals=True)
    assert dataset.info.meta["layout"] == "hdf5" and dataset.info.meta["up_axis"] == "y"
    sample = dataset[1]
    assert sample["id"] == "ply_data_test0/0001" and sample["label"] == 1
    assert torch.equal(sample["points"], torch.arange(24, 36, dtype=torch.float32).view(4, 3))
    assert torch.equal(sample["normals"], torch.ones(4, 3))
    padded = ModelNetDataset(root, "test", num_points=10)[0]["points"]
    assert torch.equal(padded[:8], torch.arange(24, dtype=torch.float32).view(8, 3))


def test_hdf5_errors(tmp_path: Path) -> None:
    root = _h5_set(tmp_path / "bad", [0, 5])
    with pytest.raises(DataError, match="label 5 outside the 2 classes"):
        ModelNetDataset(root)
    (root / "shape_names.txt").unlink()
    with pytest.raises(DataError, match=r"missing .*shape_names\.txt"):
        ModelNetDataset(root)


# ----------------------------------------------------------------------------- metrics


def _logits(predicted: list[int], classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()


def test_metrics_by_hand_and_against_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    labels = torch.tensor([0, 0, 0, 1, 1])  # class 2 absent from the test split
    predicted = [0, 1, 0, 1, 2]
    batch = {"label": labels}
    oa, ca, cm = OverallAccuracy(3), ClassAccuracy(3, ["a", "b", "c"]), ShapeConfusion(3)
    for start in (0, 3):  # two batches, the last incomplete
        part = {"label": labels[start:start + 3]}
        out = oa.update(_logits(predicted)[start:start + 3], part)
        ca.update(_logits(predicted)[start:start + 3], part)
        cm.update(_logits(predicted)[start:start + 3], part)
    assert out["correct"].tolist() == [1.0, 0.0]
    assert oa.compute()["overall_accuracy"] == pytest.approx(3 / 5)
    assert ca.compute()["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert ca.details()["per_class_accuracy"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": None}
    assert cm.details()["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert oa.compute()["overall_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert ca.compute()["mean_class_accuracy"] == pytest.approx(
        balanced_accuracy_score(labels, predicted))
    confusion = torch.tensor([[2, 1, 0], [0, 1, 1], [0, 0, 0]])
    assert overall_accuracy(confusion) == pytest.approx(0.6)
    assert per_class_accuracy(confusion)[2] is None
    with pytest.raises(ContractError, match="label 3 outside the 3 classes"):
        OverallAccuracy(3).update(_logits([0]), {"label": torch.tensor([3])})
    del batch


def test_confusion_figure(tmp_path: Path) -> None:
    metric = ShapeConfusion(3, ["a", "b", "c"])
    metric.update(_logits([0, 2]), {"label": torch.tensor([0, 1])})
    paths = metric.figures(tmp_path)
    assert paths[0].name == "confusion_matrix.png" and paths[0].stat().st_size > 1000


# ----------------------------------------------------------------------------- family


def test_rotation_and_voting() -> None:
    rotation = rotation_about_axis(math.pi / 2, 2)
    assert torch.allclose(rotation @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]),
                          atol=1e-6)
    assert torch.allclose(rotation_about_axis(math.pi / 2, 1) @ torch.tensor([0.0, 0, 1]),
                          torch.tensor([1.0, 0, 0]), atol=1e-6)

    def first_point_x(batch: dict) -> torch.Tensor:  # logits = (x, -x) of the first point
        x = batch["points"][:, 0, 0]
        return torch.stack([x, -x], dim=1)

    points = torch.tensor([[[1.0, 0.0, 0.0]]])
    batch = {"points": points, "votes": torch.tensor([4]), "up_axis": torch.tensor([2])}
    # rotations by 0, 90, 180, 270 degrees: x = 1, 0, -1, 0 -> mean 0
    assert torch.allclose(with_votes(first_point_x)(batch), torch.zeros(1, 2), atol=1e-6)
    batch["votes"] = torch.tensor([1])
    assert torch.allclose(with_votes(first_point_x)(batch), torch.tensor([[1.0, -1.0]]))


def test_family_checks_predictions() -> None:
    family = PointCloudFamily()
    info = type("Info", (), {"meta": {"num_classes": 3}})()
    batch = {"id": ["a", "b"]}
    assert family.check_prediction(torch.zeros(2, 3, dtype=torch.float64), batch, info).dtype \
        == torch.float32
    with pytest.raises(ContractError, match=r"shape \(2, 4\), expected \[2, 3\]"):
        family.check_prediction(torch.zeros(2, 4), batch, info)
    with pytest.raises(ContractError, match="NaN"):
        family.check_prediction(torch.full((2, 3), float("nan")), batch, info)
    with pytest.raises(ContractError, match="must be a torch.Tensor"):
        family.check_prediction(np.zeros((2, 3)), batch, info)
