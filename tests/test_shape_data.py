"""Shape data formats (binvox, OBJ, R2N2 layout, Pix3D), the family contract, end to end."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.adapters.pix3d import Pix3DDataset
from bench.adapters.r2n2 import R2N2Dataset
from bench.errors import ContractError, DataError
from bench.families.shape import ShapeFamily
from bench.formats.binvox import read_binvox, write_binvox
from bench.formats.obj import parse_obj, write_obj
from bench.geometry.cameras import camera_from_metadata, project
from bench.runner import evaluate
from bench.spec import TaskSpec, load_spec
from bench.synth.synthetic_shapes3d import _photos, canonical_mesh, synset_of, write_model


@pytest.fixture(scope="module")
def r2n2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes x (1 train + 1 test) shapes written by the embedded set's writer."""
    root = tmp_path_factory.mktemp("r2n2")
    rng = np.random.default_rng(0)
    photos = _photos()[:1]
    split, taxonomy = [], []
    for index, name in enumerate(["box", "torus"]):
        synset = synset_of(index)
        for part in ("train", "test"):
            write_model(root, synset, f"{name}_{part}", canonical_mesh(name, rng), photos, rng)
        split.append({"taxonomy_id": synset, "taxonomy_name": name, "train": [f"{name}_train"],
                      "test": [f"{name}_test"]})
        taxonomy.append({"synsetId": synset, "name": f"{name}-class"})
    (root / "ShapeNet.json").write_text(json.dumps(split))
    (root / "taxonomy.json").write_text(json.dumps(taxonomy))
    (root / "test.lst").write_text(f"{synset_of(1)}/torus_test\n")
    return root


def test_binvox_round_trip_and_axis_order(tmp_path: Path):
    grid = np.zeros((4, 5, 6), dtype=bool)
    grid[1, 2, 3] = grid[3, 0, 5] = True
    grid[:, 4, :] = True
    path = tmp_path / "model.binvox"
    write_binvox(path, grid, np.array([-0.5, -0.25, 0.0]), 1.5)
    back, translate, scale = read_binvox(path)
    assert back.shape == (4, 5, 6) and (back == grid).all()
    assert translate.tolist() == [-0.5, -0.25, 0.0] and scale == 1.5
    # binvox order: x slowest, then z, then y fastest
    raw = np.repeat(*np.frombuffer(path.read_bytes().split(b"data\n", 1)[1], np.uint8)
                    .reshape(-1, 2).T)
    assert raw.reshape(4, 6, 5)[1, 3, 2] == 1


def test_long_runs_and_bad_binvox(tmp_path: Path):
    grid = np.ones((32, 32, 32), dtype=bool)
    path = tmp_path / "full.binvox"
    write_binvox(path, grid, np.zeros(3), 1.0)
    assert read_binvox(path)[0].all()
    bad = tmp_path / "bad.binvox"
    bad.write_bytes(b"#binvox 1\ndim 32 32\ndata\n\x00\x10")
    with pytest.raises(DataError, match="bad.binvox"):
        read_binvox(bad)
    bad.write_bytes(b"not a binvox\n")
    with pytest.raises(DataError, match="not a binvox"):
        read_binvox(bad)
    truncated = tmp_path / "truncated.binvox"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_binvox(truncated)


def test_obj_parsing(tmp_path: Path):
    text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1/1 2/1/1 3/1/1 4/1/1\nf -4 -3 -1\n"
    vertices, faces = parse_obj(text, "quad.obj")
    assert vertices.shape == (4, 3)
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 3]]
    with pytest.raises(DataError, match="quad.obj: a face indexes vertex 9"):
        parse_obj("v 0 0 0\nf 1 2 9\n", "quad.obj")
    write_obj(tmp_path / "m.obj", vertices, faces)
    again, faces_again = parse_obj((tmp_path / "m.obj").read_text(), "m.obj")
    assert np.allclose(again, vertices) and (faces_again == faces).all()


def test_camera_from_metadata_looks_at_origin():
    K, R, t = camera_from_metadata(90.0, 30.0, 0.0, 0.8, 50.0, 137, 137)
    centre = -R.T @ t
    assert np.linalg.norm(centre) == pytest.approx(0.8 * 1.75)
    assert centre[1] == pytest.approx(1.4 * np.sin(np.radians(30)))
    assert np.allclose(project((R @ np.zeros(3) + t)[None], K), [[68.0, 68.0]])


def test_r2n2_adapter_reads_the_layout(r2n2_root: Path):
    dataset = R2N2Dataset(r2n2_root, "test", views=[0, 1], background="keep")
    assert len(dataset) == 4
    assert dataset.info.meta["class_names"] == ["box-class", "torus-class"]
    sample = dataset[2]
    ShapeFamily().check_sample(sample)
    assert sample["id"] == f"{synset_of(1)}/torus_test/00"
    assert sample["class_name"] == "torus-class" and sample["class_index"] == 1
    assert sample["image"].shape == (3, 137, 137) and sample["voxels"].shape == (32, 32, 32)
    vertices = sample["vertices"].double().numpy()
    # normalised as Occupancy Networks: bbox centred, longest side 1
    assert np.allclose(vertices.max(0) + vertices.min(0), 0, atol=1e-6)
    assert (vertices.max(0) - vertices.min(0)).max() == pytest.approx(1.0)
    # the camera sees the ground truth where the mask is
    cam = vertices @ sample["R"].double().numpy().T + sample["t"].double().numpy()
    uv = np.rint(project(cam, sample["K"].double().numpy())).astype(int)
    assert ((uv >= 0) & (uv < 137)).all()
    # (vertices on the silhouette may round one pixel outside it)
    grown = cv2.dilate(sample["mask"].numpy().astype(np.uint8), np.ones((3, 3), np.uint8))
    assert grown[uv[:, 1], uv[:, 0]].all()
    # list split files and the white background of 3D-R2N2
    listed = R2N2Dataset(r2n2_root, "test", split_file="{split}.lst")
    assert listed.sample_ids() == [f"{synset_of(1)}/torus_test/00"]
    white = listed[0]
    assert torch.allclose(white["image"][:, ~white["mask"]], torch.ones(1))


def test_r2n2_missing_and_bad_files(r2n2_root: Path, tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        R2N2Dataset(tmp_path / "nowhere")
    (tmp_path / "ShapeNet.json").write_text(json.dumps(
        [{"taxonomy_id": "1", "taxonomy_name": "x", "test": ["m"]}]))
    with pytest.raises(DataError, match="rendering_metadata.txt"):
        R2N2Dataset(tmp_path)
    with pytest.raises(DataError, match="has 4 views; view 30"):
        R2N2Dataset(r2n2_root, views=[30])


def _fixture_spec(root: Path, n_points: int = 2000) -> TaskSpec:
    spec = load_spec("synthetic-shapes3d", [f"dataset.root={root}", "dataset.embedded=null"])
    spec.metrics[0].params.update(n_points=n_points, iou_points=2000)
    return spec


def test_end_to_end_with_a_predictions_zip(r2n2_root: Path, tmp_path: Path, run_dirs):
    dataset = R2N2Dataset(r2n2_root, "test")
    archive = tmp_path / "predictions.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for index in range(len(dataset)):
            sample = dataset[index]
            buffer = tmp_path / "p.npz"
            np.savez(buffer, vertices=sample["vertices"].numpy(), faces=sample["faces"].numpy())
            handle.write(buffer, f"{sample['id']}.npz")
    spec = _fixture_spec(r2n2_root, 5000)
    result = evaluate(spec, predictions=str(archive), progress=False, **run_dirs)
    assert result.metrics["iou"] == pytest.approx(1.0)
    assert result.metrics["fscore@5%"] > 0.95
    assert result.metrics["voxel_iou"] > 0.9
    per_class = result.details["shape_surface_per_class"]
    assert set(per_class) == {"box-class", "torus-class"}
    assert (Path(result.figures[0])).is_file()


def test_end_to_end_with_a_baseline(r2n2_root: Path, run_dirs):
    spec = _fixture_spec(r2n2_root)
    result = evaluate(spec, "mean-shape", progress=False, **run_dirs)
    assert 0.0 < result.metrics["iou"] < 1.0
    assert result.n_samples == 2
    board = (run_dirs["leaderboard_dir"] / "synthetic-shapes3d.csv").read_text()
    assert "mean-shape" in board


def test_family_contract():
    family = ShapeFamily()
    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3])
    batch = {"id": ["a", "b"], "voxel_bounds": torch.stack([bounds, bounds])}
    grids = family.check_prediction(torch.rand(2, 8, 8, 8), batch, None)
    assert [p.kind for p in grids] == ["grid", "grid"]
    assert np.allclose(grids[0].bounds, bounds.numpy())
    clouds = family.check_prediction(torch.rand(2, 100, 3), batch, None)
    assert clouds[1].points.shape == (100, 3)
    mixed = family.check_prediction(
        [{"points": np.zeros((5, 3))},
         {"vertices": torch.rand(4, 3), "faces": torch.tensor([[0, 1, 2], [0, 2, 3]])}],
        batch, None)
    assert [p.kind for p in mixed] == ["points", "mesh"]
    with pytest.raises(ContractError, match="probabilities in"):
        family.check_prediction(torch.randn(2, 8, 8, 8) * 5, batch, None)
    with pytest.raises(ContractError, match="NaN"):
        family.check_prediction(torch.full((2, 4, 3), float("nan")), batch, None)
    with pytest.raises(ContractError, match="index vertex 7"):
        family.check_prediction([{"vertices": torch.rand(4, 3), "faces": torch.tensor(
            [[0, 1, 7]])}] * 2, batch, None)
    with pytest.raises(ContractError, match="cubic grid"):
        family.check_prediction({"occupancy": torch.rand(2, 8, 8, 4)}, batch, None)
    with pytest.raises(ContractError, match="expected 2 shape predictions"):
        family.check_prediction([{"points": np.zeros((5, 3))}], batch, None)


def test_pix3d_adapter(tmp_path: Path):
    (tmp_path / "img" / "chair").mkdir(parents=True)
    (tmp_path / "mask" / "chair").mkdir(parents=True)
    (tmp_path / "model" / "chair" / "c1").mkdir(parents=True)
    image = np.full((120, 160, 3), 200, np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:80, 60:100] = 255
    cv2.imwrite(str(tmp_path / "img/chair/0001.png"), image)
    cv2.imwrite(str(tmp_path / "mask/chair/0001.png"), mask)
    box = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 1)], float)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    write_obj(tmp_path / "model/chair/c1/model.obj", box, faces)
    entry = {"img": "img/chair/0001.png", "mask": "mask/chair/0001.png",
             "model": "model/chair/c1/model.obj", "category": "chair", "img_size": [160, 120],
             "rot_mat": np.eye(3).tolist(), "trans_mat": [0, 0, 3], "focal_length": 35.0,
             "bbox": [60, 40, 100, 80], "truncated": False, "occluded": False}
    (tmp_path / "pix3d.json").write_text(json.dumps([entry]))
    dataset = Pix3DDataset(tmp_path, image_size=64, crop_margin=0.0)
    sample = dataset[0]
    ShapeFamily().check_sample(sample)
    assert sample["id"] == "img/chair/0001" and sample["class_name"] == "chair"
    assert sample["image"].shape == (3, 64, 64)
    assert sample["mask"].all()  # the crop is exactly the mask's box
    vertices = sample["vertices"].numpy()
    assert np.allclose(vertices.min(0), [-0.5, -0.25, -0.25])
    assert sample["voxels"].sum() == 32 * 16 * 16
    # f = 35 / 32 * 160 = 175 px; the crop scales by 64 / 40 = 1.6
    assert sample["K"][0, 0].item() == pytest.approx(175 * 1.6)
    with pytest.raises(DataError, match="no 'train' split"):
        Pix3DDataset(tmp_path, "train")
    (tmp_path / "pix3d.json").write_text(json.dumps([{"img": "x"}]))
    with pytest.raises(DataError, match="entry 0 lacks"):
        Pix3DDataset(tmp_path)


def test_zip_predictions_read_obj_and_ply(tmp_path: Path):
    import open3d as o3d

    from bench.families.shape import ZipPredictions

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.eye(3)))
    o3d.io.write_point_cloud(str(tmp_path / "c.ply"), cloud)
    write_obj(tmp_path / "m.obj", np.eye(3), np.array([[0, 1, 2]]))
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(tmp_path / "c.ply", "a/b/00.ply")
        handle.write(tmp_path / "m.obj", "a/c/00.obj")
    predictions = ZipPredictions(archive)
    assert np.allclose(predictions.read("a/b/00")["points"], np.eye(3))
    assert predictions.read("a/c/00")["faces"].tolist() == [[0, 1, 2]]
    out = predictions({"id": ["a/c/00"]})
    assert len(out) == 1 and np.allclose(out[0]["vertices"], np.eye(3))
    with pytest.raises(Exception, match="no prediction for sample 'a/d/00'"):
        predictions.read("a/d/00")
