"""Shape predictions as Occupancy Networks' generate.py writes them: a folder of meshes
(.off/.obj/.ply) and point clouds (.ply/.npz with optional normals), read as they are."""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.r2n2 import R2N2Dataset
from bench.errors import ContractError, DataError, ModelError
from bench.families.shape import FolderPredictions, ShapeFamily, ZipPredictions
from bench.formats.obj import write_obj
from bench.geometry.mesh import sample_surface
from bench.metrics.shape import ShapeSurface
from bench.runner import evaluate
from bench.spec import load_spec
from bench.synth.synthetic_shapes3d import _photos, canonical_mesh, synset_of, write_model


def write_off(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """An OFF file as trimesh's ``mesh.export('x.off')`` writes it for OccNet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(f"{v:.8f}" for v in vertex) for vertex in vertices]
    lines += ["3 " + " ".join(str(i) for i in face) for face in faces]
    path.write_text("\n".join(lines) + "\n")


def write_ascii_ply(path: Path, points: np.ndarray, normals: np.ndarray | None = None) -> None:
    """A text PLY point cloud as OccNet's ``export_pointcloud`` (plyfile) writes it,
    with ``nx ny nz`` added when ``normals`` are given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
    header = ["ply", "format ascii 1.0", f"element vertex {len(points)}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    table = points if normals is None else np.hstack([points, normals])
    rows = [" ".join(f"{v:.7g}" for v in row) for row in table]
    path.write_text("\n".join(header + rows) + "\n")


def sphere_mesh(radius: float) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=40)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles).astype(np.int64)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: relative name -> (mtime ns, sha256 of its bytes)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns,
                                       hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def r2n2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes x one test shape each, written by the embedded set's writer."""
    root = tmp_path_factory.mktemp("r2n2")
    rng = np.random.default_rng(0)
    photos = _photos()[:1]
    split = []
    for index, name in enumerate(["box", "torus"]):
        synset = synset_of(index)
        write_model(root, synset, f"{name}_test", canonical_mesh(name, rng), photos, rng)
        split.append({"taxonomy_id": synset, "taxonomy_name": name, "train": [],
                      "test": [f"{name}_test"]})
    (root / "ShapeNet.json").write_text(json.dumps(split))
    return root


def test_occnet_generation_folder_end_to_end_is_read_only(r2n2_root: Path, tmp_path: Path,
                                                          run_dirs):
    dataset = R2N2Dataset(r2n2_root, "test")
    out_dir = tmp_path / "occnet_out"
    for index in range(len(dataset)):
        sample = dataset[index]
        synset, model, view = sample["id"].split("/")
        assert view == "00"
        # OccNet's layout: one mesh per model, generation/meshes/<category>/<model>.off
        write_off(out_dir / "generation" / "meshes" / synset / f"{model}.off",
                  sample["vertices"].numpy(), sample["faces"].numpy())
    before = snapshot(out_dir)
    spec = load_spec("synthetic-shapes3d", [f"dataset.root={r2n2_root}",
                                            "dataset.embedded=null"])
    spec.metrics[0].params.update(n_points=5000, iou_points=2000)
    result = evaluate(spec, predictions=str(out_dir), progress=False, **run_dirs)
    assert result.n_samples == 2
    assert result.metrics["iou"] == pytest.approx(1.0)
    assert result.metrics["normal_consistency"] > 0.95  # < 1: nearest points across edges
    assert result.metrics["fscore@5%"] > 0.95
    assert snapshot(out_dir) == before


def test_npz_normals_given_with_points_give_normal_consistency(tmp_path: Path):
    """Hand-checked: normals tilted by 60 degrees from the surface's give |cos 60| = 0.5."""
    vertices, faces = sphere_mesh(0.3)
    points, normals = sample_surface(vertices, faces, 20_000, np.random.default_rng(3))
    tangent = np.cross(normals, [0.267, 0.535, 0.802])
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    tilted = math.cos(math.radians(60)) * normals + math.sin(math.radians(60)) * tangent
    cloud_dir = tmp_path / "pointcloud" / "s"
    cloud_dir.mkdir(parents=True)
    np.savez(cloud_dir / "exact.npz", points=points, normals=-3.0 * normals)  # any length/sign
    np.savez(cloud_dir / "tilted.npz", points=points, normals=tilted)
    np.savez(cloud_dir / "bare.npz", points=points)
    folder = FolderPredictions(tmp_path, ["s/exact", "s/tilted", "s/bare"])
    batch = {"id": ["s/exact", "s/tilted", "s/bare"],
             "voxel_bounds": torch.tensor([[[-0.5] * 3, [0.5] * 3]] * 3)}
    preds = ShapeFamily().check_prediction(folder(batch), batch, None)
    assert [p.kind for p in preds] == ["points"] * 3
    assert np.allclose(np.linalg.norm(preds[0].normals, axis=1), 1.0)
    metric = ShapeSurface(n_points=20_000, iou_points=1000)
    exact, tilted_row, bare = (metric.evaluate_one(p, vertices, faces, "s/x") for p in preds)
    assert exact["normal_consistency"] == pytest.approx(1.0, abs=5e-3)
    assert tilted_row["normal_consistency"] == pytest.approx(0.5, abs=1e-2)
    assert math.isnan(bare["normal_consistency"])
    for row in (exact, tilted_row, bare):
        assert math.isnan(row["iou"])  # a point cloud has no inside
        assert row["chamfer_l1"] == exact["chamfer_l1"]  # normals change nothing else


def test_ply_point_clouds_with_and_without_normals(tmp_path: Path):
    points = np.array([[0.1, 0.2, 0.3], [0.0, -0.1, 0.25], [-0.2, 0.0, 0.0]])
    normals = np.array([[0.0, 0.0, 2.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    write_ascii_ply(tmp_path / "pointcloud" / "c" / "plain.ply", points)
    write_ascii_ply(tmp_path / "pointcloud" / "c" / "normals.ply", points, normals)
    folder = FolderPredictions(tmp_path, [])
    plain, with_normals = folder.read("c/plain"), folder.read("c/normals")
    assert set(plain) == {"points"} and np.allclose(plain["points"], points, atol=1e-6)
    assert np.allclose(with_normals["normals"], normals)
    batch = {"id": ["c/normals"], "voxel_bounds": torch.tensor([[[-0.5] * 3, [0.5] * 3]])}
    pred = ShapeFamily().check_prediction([with_normals], batch, None)[0]
    assert pred.normals[0].tolist() == [0.0, 0.0, 1.0]


def test_mesh_formats_and_mesh_wins_over_a_point_cloud(tmp_path: Path):
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    write_off(tmp_path / "meshes" / "a" / "off.off", vertices, faces)
    write_obj(tmp_path / "meshes" / "a" / "obj.obj", vertices, faces)
    import open3d as o3d

    o3d.io.write_triangle_mesh(str(tmp_path / "meshes" / "a" / "ply.ply"),
                               o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                                         o3d.utility.Vector3iVector(faces)))
    (tmp_path / "pointcloud" / "a").mkdir(parents=True)
    np.savez(tmp_path / "pointcloud" / "a" / "off.npz", points=np.zeros((5, 3)),
             normals=np.ones((5, 3)))
    (tmp_path / "meshes" / "a" / "notes.txt").write_text("ignored")
    folder = FolderPredictions(tmp_path, [])
    for name in ("off", "obj", "ply"):
        pred = folder.read(f"a/{name}")
        assert np.allclose(pred["vertices"], vertices) and pred["faces"].tolist() == faces.tolist()
    both = folder.read("a/off")
    assert set(both) == {"vertices", "faces", "points", "normals"}
    batch = {"id": ["a/off"], "voxel_bounds": torch.tensor([[[-0.5] * 3, [0.5] * 3]])}
    assert ShapeFamily().check_prediction([both], batch, None)[0].kind == "mesh"
    write_off(tmp_path / "meshes" / "a" / "empty.off", np.zeros((0, 3)), np.zeros((0, 3), int))
    assert folder.read("a/off")["faces"].shape == (4, 3)
    assert FolderPredictions(tmp_path, []).read("a/empty")["faces"].shape == (0, 3)


def test_sample_ids_map_to_files_per_view_or_per_model(tmp_path: Path):
    vertices, faces = np.eye(3), np.array([[0, 1, 2]])
    write_off(tmp_path / "meshes" / "s1" / "m1.off", vertices, faces)  # OccNet: per model
    write_off(tmp_path / "meshes" / "s1" / "m2" / "03.off", vertices, faces)  # per view
    folder = FolderPredictions(tmp_path, ["s1/m1/00", "s1/m2/03", "s1/m2/05", "s1/m3/00"])
    assert folder.read("s1/m1/00")["faces"].tolist() == [[0, 1, 2]]
    assert folder.read("s1/m2/03")["faces"].tolist() == [[0, 1, 2]]
    with pytest.raises(ModelError, match=r"missing .*meshes/s1/m3/00\.off or .*meshes/s1/m3\.off "
                                         r"\(or \.obj, \.ply\) and .*pointcloud/s1/m3/00\.ply or "
                                         r".*pointcloud/s1/m3\.ply \(or \.npz\)"):
        folder.read("s1/m3/00")
    # two views of one model: a per-model file would serve both, so it serves neither
    ambiguous = FolderPredictions(tmp_path, ["s1/m1/00", "s1/m1/01"])
    with pytest.raises(ModelError, match=r"no prediction for sample 's1/m1/00': missing "
                                         r".*meshes/s1/m1/00\.off \(or \.obj, \.ply\) and "
                                         r".*pointcloud/s1/m1/00\.ply \(or \.npz\)"):
        ambiguous.read("s1/m1/00")


def test_flat_folder_reads_like_the_unpacked_zip(tmp_path: Path):
    np.savez(tmp_path / "x.npz", points=np.ones((4, 3)), normals=np.ones((4, 3)))
    folder = FolderPredictions(tmp_path, ["x"])
    assert np.allclose(folder.read("x")["normals"], 1.0)
    with pytest.raises(ModelError, match=r"missing .*/y\.npz \(or \.off, \.obj, \.ply\)"):
        folder.read("y")
    dataset = type("Ids", (), {"sample_ids": lambda self: ["x"]})()
    assert isinstance(ShapeFamily().load_predictions(tmp_path, dataset), FolderPredictions)


def test_zip_reads_off_members_and_npz_normals(tmp_path: Path):
    write_off(tmp_path / "m.off", np.eye(3), np.array([[0, 1, 2]]))
    (tmp_path / "bad.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 zero\n3 0 1 2\n")
    np.savez(tmp_path / "c.npz", points=np.ones((2, 3)), normals=np.ones((2, 3)))
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(tmp_path / "m.off", "a/m/00.off")
        handle.write(tmp_path / "bad.off", "a/bad/00.off")
        handle.write(tmp_path / "c.npz", "a/c/00.npz")
    predictions = ZipPredictions(archive)
    assert predictions.read("a/m/00")["faces"].tolist() == [[0, 1, 2]]
    assert set(predictions.read("a/c/00")) == {"points", "normals"}
    with pytest.raises(DataError, match=r"p\.zip:a/bad/00\.off:5: bad vertex line"):
        predictions.read("a/bad/00")


@pytest.mark.parametrize(("name", "content", "error", "message"), [
    ("meshes/s/m.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n", DataError,
     r"meshes/s/m\.off: truncated: header says 3 vertices and 1 faces"),
    ("meshes/s/m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", DataError,
     r"meshes/s/m\.obj: a face indexes vertex 9"),
    ("meshes/s/m.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
     "property float y\nproperty float z\nend_header\n0 0 0\n", ContractError,
     r"meshes/s/m\.ply: a point cloud \(no faces\) in meshes/"),
    ("pointcloud/s/m.ply", "ply\nformat ascii 1.0\nelement vertex 3\nbroken\n", ContractError,
     r"pointcloud/s/m\.ply: cannot read a mesh or point cloud"),
    ("pointcloud/s/m.npz", "not an npz", ContractError,
     r"pointcloud/s/m\.npz: not a readable \.npz"),
])
def test_malformed_files_name_the_file(tmp_path: Path, name: str, content: str,
                                       error: type, message: str):
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_text(content)
    with pytest.raises(error, match=message):
        FolderPredictions(tmp_path, ["s/m"]).read("s/m")


def test_contract_errors_of_folder_contents(tmp_path: Path):
    (tmp_path / "pointcloud" / "s").mkdir(parents=True)
    np.savez(tmp_path / "pointcloud" / "s" / "nopoints.npz", xyz=np.zeros((3, 3)))
    np.savez(tmp_path / "pointcloud" / "s" / "badnormals.npz", points=np.zeros((3, 3)),
             normals=np.zeros((2, 3)))
    np.savez(tmp_path / "pointcloud" / "s" / "zeronormal.npz", points=np.zeros((2, 3)),
             normals=np.array([[0.0, 0, 1], [0, 0, 0]]))
    write_off(tmp_path / "meshes" / "s" / "twice.off", np.eye(3), np.array([[0, 1, 2]]))
    write_obj(tmp_path / "meshes" / "s" / "twice.obj", np.eye(3), np.array([[0, 1, 2]]))
    folder = FolderPredictions(tmp_path, [])
    with pytest.raises(ContractError, match=r"nopoints\.npz: a point cloud needs 'points'"):
        folder.read("s/nopoints")
    batch = {"id": ["s/x"], "voxel_bounds": torch.tensor([[[-0.5] * 3, [0.5] * 3]])}
    family = ShapeFamily()
    with pytest.raises(ContractError, match=r"normals must be \[N,3\] like the points"):
        family.check_prediction([folder.read("s/badnormals")], batch, None)
    with pytest.raises(ContractError, match="1 normals are zero, NaN or infinite"):
        family.check_prediction([folder.read("s/zeronormal")], batch, None)
    with pytest.raises(ContractError, match=r"s/twice\.obj and twice\.off: two predictions"):
        folder.read("s/twice")
